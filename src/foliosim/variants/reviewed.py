"""reviewed: the seed's helper as its reviewer asked: lazyfree_range() returning bool, true = ok.

Lorenzo Stoakes' review of the seed (shared/seed/000_40a7ff58577b0a4a.txt, 10 Mar
2026): rename commit_ttu_lazyfree_folio() to lazyfree_range(), return bool, false
"if something breaks, otherwise true", and call it as
`if (!lazyfree_range(vma, folio, address, pvmw.pte, pteval, nr_pages)) goto walk_abort;`.
The body is the seed's, with the return values inverted.
"""

from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """lazyfree_range() as reviewed: False if the PTEs were restored, True if discarded."""
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
        return False
    if ref_count != 1 + map_count:
        set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    mm.counters[MM_ANONPAGES] -= nr_pages
    return True
