"""bug-pte-restore: the lazyfree unmap batch ignores write and soft-dirty bits (no 29f40594a281).

Linux commit 29f40594a281 ("mm/rmap: fix incorrect pte restoration for lazyfree
folios", Dev Jain, v7.0-rc, in the 6.18.y stable tree) made folio_unmap_pte_batch()
call folio_pte_batch_flags(..., FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY).
Before it (ddd05742b45b, v6.16), the batch ran over PTEs differing in those
bits, and the redirtied-lazyfree restore wrote the first PTE's value to all of
them: read-only COW-shared PTEs became writable (a write in the parent lands in
the child's page), soft-dirty bits were lost (linux-anon-reclaim.md §11 bug 4).
scenarios/mthp-lazyfree-mixed-write.scn shows the live 6.18.44 kernel has the fix.
"""

from foliosim.model.internal import folio_pte_batch
from foliosim.model.mm import folio_nr_pages
from foliosim.model.page_flags import folio_test_large, folio_test_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """folio_unmap_pte_batch() of v6.16: folio_pte_batch() without FPB flags."""
    if not folio_test_large(m, folio) or folio_test_swapbacked(m, folio):
        return 1
    max_nr = min(vma.end, (vpn | 511) + 1) - vpn
    return folio_pte_batch(t, i, t.pfn[i], folio, folio_nr_pages(m, folio), max_nr)
