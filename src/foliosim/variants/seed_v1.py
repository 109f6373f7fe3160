"""seed-v1: the seed's patch as posted: commit_ttu_lazyfree_folio() returning int, 1 = keep.

[PATCH 3/9] "mm/rmap: refactor lazyfree unmap commit path to
commit_ttu_lazyfree_folio()" (Dev Jain, v1 of "Optimize anonymous large folio
unmapping", 10 Mar 2026), as quoted in Lorenzo Stoakes' review
(shared/seed/000_40a7ff58577b0a4a.txt).  The post-clear part of the lazyfree
branch moves into a helper returning non-zero when it restored the PTEs (the
caller aborts the walk) and 0 after subtracting nr_pages from MM_ANONPAGES (the
caller goes to discard).  "No functional change is intended."
"""

from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


def commit_ttu_lazyfree_folio(m, vma, folio, t, i, pteval, pfn, nr_pages) -> int:
    """commit_ttu_lazyfree_folio() of the seed: 1 when the PTEs were restored, 0 when discarded."""
    mm = vma.mm
    # Synchronize with gup_pte_range(): clear PTE; barrier; read refcount.
    smp_mb()
    ref_count = folio_ref_count(m, folio)
    map_count = folio_mapcount(m, folio)
    # Order the refcount read before the dirty flag (__remove_mapping()).
    smp_rmb()
    if folio_test_dirty(m, folio) and not vma.flags & VM_DROPPABLE:
        set_ptes(t, i, pteval, pfn, nr_pages)
        m.mem.flags[folio] |= PG_swapbacked  # folio_set_swapbacked()
        return 1
    if ref_count != 1 + map_count:
        set_ptes(t, i, pteval, pfn, nr_pages)
        return 1
    mm.counters[MM_ANONPAGES] -= nr_pages  # add_mm_counter(mm, MM_ANONPAGES, -nr_pages)
    return 0


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """The seed's call site: `if (commit_ttu_lazyfree_folio(...)) goto walk_abort;` else discard."""
    return not commit_ttu_lazyfree_folio(m, vma, folio, t, i, pteval, pfn, nr_pages)
