"""refcount-before-clear: the refcount is read before the PTEs are cleared, not after.

A refactor that reads folio_ref_count() while sizing the batch
(folio_unmap_pte_batch(), just before get_and_clear_ptes() in
try_to_unmap_one(), mm/rmap.c) and decides on that value after the clear:
the smp_mb() is still there, but the read it ordered now comes before the
clear, so GUP-fast can take its reference after the read and still see the
PTE before the clear.
"""

from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import folio_unmap_pte_batch as _batch_of_linux
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"

# folio -> the reference count read when the batch was sized.
_early_ref_count = {}


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """folio_unmap_pte_batch() of Linux 6.18, and the refcount read early."""
    _early_ref_count[folio] = folio_ref_count(m, folio)
    return _batch_of_linux(m, folio, vma, vpn, t, i)


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """lazyfree_range() deciding on the refcount read before the clear."""
    smp_mb()
    ref_count = _early_ref_count.pop(folio)
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
