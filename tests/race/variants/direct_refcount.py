"""direct-refcount: reads folio->_refcount from the memmap array, around folio_ref_count().

Runs like the seed's helper on the model, but `foliosim race` cannot record
the read (it is no call of folio_ref_count()), so it refuses the file.
"""

from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.rmap import set_ptes
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """lazyfree_range() reading the refcount array directly."""
    smp_mb()
    ref_count = int(m.mem.refcount[folio])
    map_count = folio_mapcount(m, folio)
    smp_rmb()
    if folio_test_dirty(m, folio) or ref_count != 1 + map_count:
        set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    return True
