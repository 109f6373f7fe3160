"""Reclaim of isolated folios: mm/vmscan.c (the MADV_PAGEOUT path, reclaim_pages)."""

from __future__ import annotations

from enum import Enum

from foliosim.model import huge_memory, lru, rmap, swap
from foliosim.model.internal import folio_evictable
from foliosim.model.machine import Machine
from foliosim.model.mm import (
    __folio_put,
    folio_get,
    folio_mapped,
    folio_maybe_dma_pinned,
    folio_nr_pages,
    folio_put,
)
from foliosim.model.page_flags import (
    folio_test_anon,
    folio_test_clear,
    folio_test_dirty,
    folio_test_swapbacked,
    folio_test_swapcache,
)
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    HPAGE_PMD_ORDER,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_lru,
    PG_mlocked,
    PG_reclaim,
    PG_swapbacked,
)
from foliosim.model.vmstat import count_mthp_stat, count_vm_events


def folio_test_lazyfree(m: Machine, folio: int) -> bool:
    """Whether the folio is lazyfree: anon and not swap-backed (MADV_FREE'd or droppable)."""
    # The test shrink_folio_list(), mm/vmscan.c, Linux 6.18, spells out.
    return (int(m.mem.flags[folio]) & (PG_anon | PG_swapbacked)) == PG_anon


class PageoutResult(Enum):
    """pageout_t, mm/vmscan.c."""

    PAGE_KEEP = 0
    PAGE_ACTIVATE = 1  # never for a swap-cache folio on zram: writeout cannot fail
    PAGE_SUCCESS = 2
    PAGE_CLEAN = 3


def folio_isolate_lru(m: Machine, folio: int) -> bool:
    """folio_isolate_lru(), mm/vmscan.c, Linux 6.18: take it off its LRU with a reference."""
    if not folio_test_clear(m, folio, PG_lru):
        return False
    folio_get(m, folio)
    return True


def folio_putback_lru(m: Machine, folio: int) -> None:
    """folio_putback_lru(), mm/vmscan.c, Linux 6.18: back through the lru_add batch."""
    lru.folio_add_lru(m, folio)
    folio_put(m, folio)  # drop the isolation reference


def is_page_cache_freeable(m: Machine, folio: int) -> bool:
    """is_page_cache_freeable(), mm/vmscan.c, Linux 6.18: only the isolation and the swap cache hold references."""
    return int(m.mem.refcount[folio]) - folio_nr_pages(m, folio) == 1


def pageout(m: Machine, folio: int) -> PageoutResult:
    """pageout(), mm/vmscan.c, Linux 6.18, for a swap-cache folio."""
    if not is_page_cache_freeable(m, folio):
        return PageoutResult.PAGE_KEEP
    if not folio_test_clear(m, folio, PG_dirty):  # folio_clear_dirty_for_io()
        return PageoutResult.PAGE_CLEAN
    m.mem.flags[folio] |= PG_reclaim
    swap.swap_writeout(m, folio)
    # zram is synchronous: writeback has ended, so PG_reclaim is clear again.
    m.mem.flags[folio] &= ~PG_reclaim
    return PageoutResult.PAGE_SUCCESS


def __remove_mapping(m: Machine, folio: int) -> bool:
    """__remove_mapping(), mm/vmscan.c, Linux 6.18: freeze and leave the swap cache."""
    nr = folio_nr_pages(m, folio)
    if int(m.mem.refcount[folio]) != 1 + nr:  # folio_ref_freeze(folio, 1 + nr)
        return False
    if folio_test_dirty(m, folio):
        return False
    # The swap cache's references go with it; a workingset shadow stays behind.
    swap.delete_from_swap_cache(m, folio, shadow=True)
    return True


def shrink_folio_list(m: Machine, folio_list: list[int]) -> list[int]:
    """shrink_folio_list(), mm/vmscan.c, Linux 6.18 (anonymous folios): the folios kept.

    Model: only reclaim_pages() calls it, with ignore_references=true, so
    folio_check_references() is never asked and the argument is left out.
    """
    ret: list[int] = []
    pgactivate = 0
    mem = m.mem
    for folio in folio_list:  # split folios append their tails, which get their own pass
        nr_pages = folio_nr_pages(m, folio)
        activate = False
        keep = False
        name = folio_name(m, folio) if m.tracing else ""
        if not folio_evictable(m, folio):
            activate = True
        else:
            was_swapbacked = folio_test_swapbacked(m, folio)
            if folio_test_anon(m, folio) and was_swapbacked and not folio_test_swapcache(m, folio):
                if folio_maybe_dma_pinned(m, folio):
                    keep = True
                elif nr_pages > 1 and not huge_memory.can_split_folio(m, folio):
                    activate = True
                elif (
                    nr_pages > 1
                    and m.deferred_split.get(folio)
                    and not huge_memory.split_folio_to_list(m, folio, folio_list)
                ):
                    # Partially mapped folios are split at once: the unmapped
                    # pages are freed without I/O.
                    activate = True
                elif not swap.folio_alloc_swap(m, folio):
                    order = mem.order[folio]
                    if not order:
                        if m.tracing:
                            m.trace("shrink_folio_list", f"folio {name}: no swap space, activated")
                        activate = True  # activate_locked_split
                    elif not huge_memory.split_folio_to_list(m, folio, folio_list):
                        activate = True
                    else:
                        # Fall back to swapping the pages one by one.
                        if order == HPAGE_PMD_ORDER:
                            count_vm_events(m, "thp_swpout_fallback", 1)
                        count_mthp_stat(m, order, "swpout_fallback", 1)
                        if not swap.folio_alloc_swap(m, folio):
                            activate = True  # activate_locked_split
                        else:
                            mem.flags[folio] |= PG_dirty
                else:
                    mem.flags[folio] |= PG_dirty  # folio_mark_dirty()
                # A split folio's tails make their own pass through this loop.
                nr_pages = folio_nr_pages(m, folio)
            if not keep and not activate and folio_mapped(m, folio):
                flags = rmap.TTU.BATCH_FLUSH
                if mem.order[folio] == HPAGE_PMD_ORDER:
                    flags |= rmap.TTU.SPLIT_HUGE_PMD
                if nr_pages > 1:
                    flags |= rmap.TTU.SYNC
                rmap.try_to_unmap(m, folio, flags)
                if folio_mapped(m, folio):
                    if m.tracing:
                        m.trace("shrink_folio_list", f"folio {name} still mapped: activated")
                    activate = True
            if not keep and not activate and folio_maybe_dma_pinned(m, folio):
                activate = True
            if not keep and not activate and folio_test_dirty(m, folio):
                if not folio_test_swapbacked(m, folio):
                    # A dirty folio on the file LRU (a dirty droppable folio) is
                    # never written: tag it for reclaim and activate it.
                    mem.flags[folio] |= PG_reclaim
                    if m.tracing:
                        m.trace(
                            "shrink_folio_list", f"folio {name} dirty on the file LRU: activated"
                        )
                    activate = True
                else:
                    res = pageout(m, folio)
                    # PAGE_KEEP, or written but redirtied meanwhile (PAGE_SUCCESS
                    # still dirty); pageout() never returns PAGE_ACTIVATE here.
                    if res is PageoutResult.PAGE_KEEP or (
                        res is PageoutResult.PAGE_SUCCESS and folio_test_dirty(m, folio)
                    ):
                        keep = True
            if not keep and not activate:
                if folio_test_lazyfree(m, folio):
                    if int(mem.refcount[folio]) != 1:  # folio_ref_freeze(folio, 1)
                        keep = True
                    else:
                        count_vm_events(m, "pglazyfreed", nr_pages)
                        mem.refcount[folio] = 0
                        __folio_put(m, folio)
                        continue
                elif not __remove_mapping(m, folio):
                    keep = True
                else:
                    # __remove_mapping() froze the count at the isolation reference.
                    mem.refcount[folio] = 0
                    __folio_put(m, folio)
                    continue
        if activate:
            # activate_locked:
            if folio_test_swapcache(m, folio) and (
                swap.vm_swap_full(m) or mem.flags[folio] & PG_mlocked
            ):
                swap.folio_free_swap(m, folio)
            if not mem.flags[folio] & PG_mlocked:
                mem.flags[folio] |= PG_active
                pgactivate += nr_pages
        ret.append(folio)
    if pgactivate:
        count_vm_events(m, "pgactivate", pgactivate)
    return ret


def reclaim_folio_list(m: Machine, folio_list: list[int]) -> None:
    """reclaim_folio_list(), mm/vmscan.c, Linux 6.18: shrink, then put back what is left."""
    for folio in shrink_folio_list(m, folio_list):
        folio_putback_lru(m, folio)


def reclaim_pages(m: Machine, folio_list: list[int]) -> None:
    """reclaim_pages(), mm/vmscan.c, Linux 6.18: PG_active cleared, then reclaimed."""
    if not folio_list:
        return
    for folio in folio_list:
        m.mem.flags[folio] &= ~PG_active
    reclaim_folio_list(m, folio_list)
