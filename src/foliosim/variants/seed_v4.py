"""seed-v4: v4 of the seed: ttu_lazyfree_folio(vma, folio) returning bool, the caller restores.

"[PATCH v4 03/12] mm/rmap: refactor some code around lazyfree folio unmapping"
(Dev Jain, 26 May 2026, https://lkml.iu.edu/2605.3/02497.html): the helper
takes only (vma, folio), returns false when the unmap must be aborted (PG_dirty
outside a droppable VMA, with PG_swapbacked set inside; or an extra reference),
true otherwise.  "If we abort, we restore the ptes and bail out of
try_to_unmap_one.  Otherwise adjust the rss stats of the mm and jump to a
label" (the label `discard` renamed `finish_unmap`).
"""

from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.mm import folio_mapcount
from foliosim.model.page_flags import folio_test_dirty
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.rmap import set_ptes
from foliosim.model.types import MM_ANONPAGES, VM_DROPPABLE, PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


def ttu_lazyfree_folio(m, vma, folio) -> bool:
    """ttu_lazyfree_folio() of v4: False if the lazyfree unmap must be aborted."""
    # Synchronize with gup_pte_range(): clear PTE; barrier; read refcount.
    smp_mb()
    ref_count = folio_ref_count(m, folio)
    map_count = folio_mapcount(m, folio)
    # Order the refcount read before the dirty flag (__remove_mapping()).
    smp_rmb()
    if folio_test_dirty(m, folio) and not vma.flags & VM_DROPPABLE:
        m.mem.flags[folio] |= PG_swapbacked  # folio_set_swapbacked()
        return False
    return ref_count == 1 + map_count


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """v4's call site in try_to_unmap_one(): restore and abort, or account and finish_unmap."""
    if not ttu_lazyfree_folio(m, vma, folio):
        set_ptes(t, i, pteval, pfn, nr_pages)
        return False  # walk_abort
    vma.mm.counters[MM_ANONPAGES] -= nr_pages  # add_mm_counter(mm, MM_ANONPAGES, -nr_pages)
    return True  # goto finish_unmap
