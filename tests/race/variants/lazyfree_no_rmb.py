"""lazyfree-no-rmb: lazyfree_range() without its smp_rmb() (the refcount and PG_dirty reads unordered).

The body of the model's lazyfree_range() (mm/rmap.c, Linux 6.18) with the
smp_rmb() between the refcount read and the PG_dirty read removed: the
message-passing pairing with a GUP user's folio_mark_dirty(); folio_put()
(see __remove_mapping(), mm/vmscan.c) is broken.
"""

from foliosim.model.barrier import smp_mb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """lazyfree_range() with no smp_rmb() between the refcount and PG_dirty reads."""
    smp_mb()
    ref_count = folio_ref_count(m, folio)
    map_count = folio_mapcount(m, folio)
    if folio_test_dirty(m, folio) and not vma.flags & VM_DROPPABLE:
        set_ptes(t, i, pteval, pfn, nr_pages)
        m.mem.flags[folio] |= PG_swapbacked
        return False
    if ref_count != 1 + map_count:
        set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    vma.mm.counters[MM_ANONPAGES] -= nr_pages
    return True
