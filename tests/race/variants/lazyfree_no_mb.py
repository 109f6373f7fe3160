"""lazyfree-no-mb: lazyfree_range() without its smp_mb() (a refactor that loses the full barrier).

The body of the model's lazyfree_range() (mm/rmap.c, Linux 6.18) with the
smp_mb() between the PTE clear and the refcount read removed: the
store-buffering pairing with GUP-fast (clear PTE; barrier; read refcount
against inc refcount; barrier; read PTE) is broken.
"""

from foliosim.model.barrier import smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """lazyfree_range() with no smp_mb() before the refcount read."""
    ref_count = folio_ref_count(m, folio)
    map_count = folio_mapcount(m, folio)
    smp_rmb()
    if folio_test_dirty(m, folio) and not vma.flags & VM_DROPPABLE:
        set_ptes(t, i, pteval, pfn, nr_pages)
        m.mem.flags[folio] |= PG_swapbacked
        return False
    if ref_count != 1 + map_count:
        set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    vma.mm.counters[MM_ANONPAGES] -= nr_pages
    return True
