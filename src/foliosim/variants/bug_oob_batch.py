"""bug-oob-batch: the lazyfree batch is the whole folio from its first PTE, unbounded (v6.15).

Linux commit 354dffd29575 ("mm: support batched unmap for lazyfree large folios
during reclamation") (v6.15) batched a lazyfree large folio only whole:
can_batch_unmap_folio_ptes() required the PTE to map the folio's first page and
folio_pte_batch() to match folio_nr_pages() PTEs from it, with no bound by the
VMA or the page table.  A folio whose mapping straddles a page-table boundary
(mremap) or is cut by a VMA boundary (mprotect, madvise on part of it) made it
read, and clear, PTEs past the page-table page or of the next VMA.  Fixed by
ddd05742b45b ("mm/rmap: fix potential out-of-bounds page table access during
batched unmap", Lance Yang, v6.16 and 6.15.y; linux-anon-reclaim.md §11 bug 3).
In the model such a batch is a fault: folio_pte_batch_flags() refuses to read
past the page table, validate_pte_batch() a batch leaving the VMA.
"""

from foliosim.model.internal import FPB_RESPECT_WRITE, folio_pte_batch_flags
from foliosim.model.mm import folio_nr_pages
from foliosim.model.page_flags import folio_test_anon, folio_test_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


def can_batch_unmap_folio_ptes(m, folio, t, i):
    """can_batch_unmap_folio_ptes(), mm/rmap.c, v6.15: all folio_nr_pages() PTEs from here match."""
    if not folio_test_anon(m, folio) or folio_test_swapbacked(m, folio):
        return False
    if t.pfn[i] != folio:
        return False
    max_nr = folio_nr_pages(m, folio)
    # FPB_IGNORE_DIRTY | FPB_IGNORE_SOFT_DIRTY: the write bit still counted then.
    return folio_pte_batch_flags(t, i, folio, folio, max_nr, max_nr, FPB_RESPECT_WRITE) == max_nr


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """The v6.15 batch: the whole folio if can_batch_unmap_folio_ptes(), else one PTE."""
    if folio_nr_pages(m, folio) > 1 and can_batch_unmap_folio_ptes(m, folio, t, i):
        return folio_nr_pages(m, folio)
    return 1
