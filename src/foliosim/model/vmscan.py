"""Reclaim of isolated folios: mm/vmscan.c (the MADV_PAGEOUT path, reclaim_pages)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    PG_referenced,
    PG_swapbacked,
    PG_workingset,
    VM_LOCKED,
)
from foliosim.model.vmstat import count_mthp_stat, count_vm_events


def folio_test_lazyfree(m: Machine, folio: int) -> bool:
    """Whether the folio is lazyfree: anon and not swap-backed (MADV_FREE'd or droppable)."""
    # The test shrink_folio_list(), mm/vmscan.c, Linux 6.18, spells out.
    return (int(m.mem.flags[folio]) & (PG_anon | PG_swapbacked)) == PG_anon


# --- LRU reclaim (memcg, issue 13) --------------------------------------------------

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h
DEF_PRIORITY = 12  # include/linux/mmzone.h
MAX_SWAPPINESS = 200  # include/linux/swap.h
DEACTIVATE_ANON = 1
DEACTIVATE_FILE = 2


class FolioReferences(Enum):
    """enum folio_references, mm/vmscan.c."""

    FOLIOREF_RECLAIM = 0
    FOLIOREF_RECLAIM_CLEAN = 1
    FOLIOREF_KEEP = 2
    FOLIOREF_ACTIVATE = 3


class ScanBalance(Enum):
    """enum scan_balance, mm/vmscan.c."""

    SCAN_EQUAL = 0
    SCAN_FRACT = 1
    SCAN_ANON = 2
    SCAN_FILE = 3


@dataclass
class ScanControl:
    """struct scan_control, mm/vmscan.c, the fields memcg reclaim uses.

    Model: always cgroup reclaim of the scenario's memcg (target_mem_cgroup),
    gfp GFP_KERNEL (may do I/O), may_writepage and may_unmap set, no demotion,
    no memory.low/min protection, one node.
    """

    nr_to_reclaim: int
    may_swap: bool = True
    priority: int = DEF_PRIORITY
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    may_deactivate: int = 0
    force_deactivate: bool = False
    skipped_deactivate: bool = False
    memcg_full_walk: bool = False
    cache_trim_mode: bool = False
    anon_cost: int = 0
    file_cost: int = 0
    # struct reclaim_stat of the latest shrink_folio_list() call
    nr_reclaimed_list: int = 0
    nr_pageout: int = 0
    nr_activate: list[int] = field(default_factory=lambda: [0, 0])


def folio_check_references(m: Machine, folio: int) -> FolioReferences:
    """folio_check_references(), mm/vmscan.c, Linux 6.18 (non-MGLRU).

    No anonymous VMA has VM_EXEC in the model, so a young file-LRU folio
    (lazyfree) is never activated on first use.
    """
    referenced_ptes, vm_flags = rmap.folio_referenced(m, folio)
    if vm_flags & VM_LOCKED:
        return FolioReferences.FOLIOREF_ACTIVATE
    referenced_folio = folio_test_clear(m, folio, PG_referenced)
    if referenced_ptes:
        # Mark it and spare it for another trip around the inactive list.
        m.mem.flags[folio] |= PG_referenced
        if referenced_folio or referenced_ptes > 1:
            return FolioReferences.FOLIOREF_ACTIVATE
        return FolioReferences.FOLIOREF_KEEP
    if referenced_folio and not folio_test_swapbacked(m, folio):  # folio_is_file_lru()
        return FolioReferences.FOLIOREF_RECLAIM_CLEAN
    return FolioReferences.FOLIOREF_RECLAIM


def isolate_lru_folios(m: Machine, nr_to_scan: int, lru_list: int) -> tuple[list[int], int]:
    """isolate_lru_folios(), mm/vmscan.c, Linux 6.18: (folios taken, pages scanned).

    From the tail of the list; each taken folio gets a reference and loses
    PG_lru.  Model: every folio is in a zone reclaim may use (none skipped).
    """
    taken: list[int] = []
    scan = 0
    for folio in lru.lruvec_list(m, lru_list):
        if scan >= nr_to_scan:
            break
        scan += folio_nr_pages(m, folio)
        if folio_test_clear(m, folio, PG_lru):  # folio_try_get() + folio_test_clear_lru()
            folio_get(m, folio)
            taken.append(folio)
    return taken, scan


def move_folios_to_lru(m: Machine, folios: list[int]) -> int:
    """move_folios_to_lru(), mm/vmscan.c, Linux 6.18: back on their lists' heads, in order."""
    nr_moved = 0
    for folio in folios:
        if not folio_evictable(m, folio):
            folio_putback_lru(m, folio)
            continue
        m.mem.flags[folio] |= PG_lru
        if int(m.mem.refcount[folio]) == 1:  # folio_put_testzero()
            m.mem.flags[folio] &= ~(PG_lru | PG_active)  # __folio_clear_lru_flags()
            m.mem.refcount[folio] = 0
            __folio_put(m, folio)
            continue
        folio_put(m, folio)
        lru.lruvec_add_folio(m, folio)
        nr_moved += folio_nr_pages(m, folio)
    return nr_moved


def inactive_is_low(m: Machine, inactive_lru: int) -> bool:
    """inactive_is_low(), mm/vmscan.c, Linux 6.18.

    Model: exact list sizes; the kernel reads the memcg's lruvec stats, which
    lag (mem_cgroup_flush_stats(), mm/memcontrol.c) by up to 128 updates on 2 CPUs.
    """
    inactive = lru.lruvec_lru_size(m, inactive_lru)
    active = lru.lruvec_lru_size(m, inactive_lru + lru.LRU_ACTIVE)
    gb = (inactive + active) >> (30 - 12)
    inactive_ratio = math.isqrt(10 * gb) if gb else 1
    return inactive * inactive_ratio < active


def can_reclaim_anon_pages(m: Machine) -> bool:
    """can_reclaim_anon_pages(), mm/vmscan.c, Linux 6.18: free swap (no demotion here)."""
    # mem_cgroup_get_nr_swap_pages(): v1 has no swap.max, so the device's free slots.
    si = m.swap
    return si is not None and si.pages - si.inuse_pages > 0


def can_age_anon_pages(m: Machine) -> bool:
    """can_age_anon_pages(), mm/vmscan.c, Linux 6.18: swap is present (total_swap_pages)."""
    return m.swap is not None


def prepare_scan_control(m: Machine, sc: ScanControl) -> None:
    """prepare_scan_control(), mm/vmscan.c, Linux 6.18, for cgroup reclaim.

    Model: the memcg's WORKINGSET_ACTIVATE_* counts never move between
    reclaims (no refault activates a folio in the model), so only
    inactive_is_low() sets may_deactivate.
    """
    cg = m.memcg
    sc.anon_cost = cg.anon_cost
    sc.file_cost = cg.file_cost
    if not sc.force_deactivate:
        sc.may_deactivate = 0
        if inactive_is_low(m, lru.LRU_INACTIVE_ANON):
            sc.may_deactivate |= DEACTIVATE_ANON
        if inactive_is_low(m, lru.LRU_INACTIVE_FILE):
            sc.may_deactivate |= DEACTIVATE_FILE
    else:
        sc.may_deactivate = DEACTIVATE_ANON | DEACTIVATE_FILE
    file = lru.lruvec_lru_size(m, lru.LRU_INACTIVE_FILE)
    sc.cache_trim_mode = bool(file >> sc.priority) and not sc.may_deactivate & DEACTIVATE_FILE


def calculate_pressure_balance(sc: ScanControl, swappiness: int) -> tuple[list[int], int]:
    """calculate_pressure_balance(), mm/vmscan.c, Linux 6.18: (fraction, denominator)."""
    total_cost = sc.anon_cost + sc.file_cost
    anon_cost = total_cost + sc.anon_cost
    file_cost = total_cost + sc.file_cost
    total_cost = anon_cost + file_cost
    ap = swappiness * (total_cost + 1) // (anon_cost + 1)
    fp = (MAX_SWAPPINESS - swappiness) * (total_cost + 1) // (file_cost + 1)
    return [ap, fp], ap + fp


def get_scan_count(m: Machine, sc: ScanControl) -> list[int]:
    """get_scan_count(), mm/vmscan.c, Linux 6.18: how many of each evictable list to scan."""
    swappiness = m.memcg.swappiness
    fraction, denominator = [0, 0], 0
    if not sc.may_swap or not can_reclaim_anon_pages(m):
        balance = ScanBalance.SCAN_FILE  # no swap space: do not bother scanning anon
    elif not swappiness:
        balance = ScanBalance.SCAN_FILE  # cgroup reclaim with swappiness 0
    elif not sc.priority:
        balance = ScanBalance.SCAN_EQUAL
    elif sc.cache_trim_mode:
        balance = ScanBalance.SCAN_FILE
    else:
        balance = ScanBalance.SCAN_FRACT
        fraction, denominator = calculate_pressure_balance(sc, swappiness)
    nr = [0, 0, 0, 0]
    for lru_list in lru.EVICTABLE_LRUS:
        file = lru_list >= lru.LRU_FILE
        scan = lru.lruvec_lru_size(m, lru_list) >> sc.priority
        if balance is ScanBalance.SCAN_FRACT:
            scan = scan * fraction[file] // denominator
        elif balance is ScanBalance.SCAN_FILE and not file:
            scan = 0
        elif balance is ScanBalance.SCAN_ANON and file:
            scan = 0
        nr[lru_list] = scan
    return nr


def shrink_inactive_list(m: Machine, nr_to_scan: int, sc: ScanControl, lru_list: int) -> int:
    """shrink_inactive_list(), mm/vmscan.c, Linux 6.18: pages reclaimed."""
    file = lru_list >= lru.LRU_FILE
    lru.lru_add_drain(m)
    folios, nr_scanned = isolate_lru_folios(m, nr_to_scan, lru_list)
    # Cgroup reclaim counts only the memcg's pgscan_direct; the global ones always.
    count_vm_events(m, "pgscan_file" if file else "pgscan_anon", nr_scanned)
    if not folios:
        return 0
    sc.nr_reclaimed_list = 0
    sc.nr_pageout = 0
    kept = shrink_folio_list(m, folios, sc)
    nr_reclaimed = sc.nr_reclaimed_list
    move_folios_to_lru(m, kept)
    count_vm_events(m, "pgsteal_file" if file else "pgsteal_anon", nr_reclaimed)
    if m.tracing:
        m.trace(
            "shrink_inactive_list",
            f"{lru.LRU_NAMES[lru_list]}: scanned {nr_scanned}, reclaimed {nr_reclaimed} "
            f"(priority {sc.priority})",
        )
    lru.lru_note_cost(m, file, sc.nr_pageout, nr_scanned - nr_reclaimed)
    return nr_reclaimed


def shrink_active_list(m: Machine, nr_to_scan: int, sc: ScanControl, lru_list: int) -> None:
    """shrink_active_list(), mm/vmscan.c, Linux 6.18: deactivate what it takes.

    No anonymous VMA has VM_EXEC, so no referenced folio stays active.
    """
    file = lru_list >= lru.LRU_FILE
    lru.lru_add_drain(m)
    hold, nr_scanned = isolate_lru_folios(m, nr_to_scan, lru_list)
    count_vm_events(m, "pgrefill", nr_scanned)
    inactive: list[int] = []
    for folio in hold:
        if not folio_evictable(m, folio):
            folio_putback_lru(m, folio)
            continue
        rmap.folio_referenced(m, folio)  # clears the young bits either way
        m.mem.flags[folio] &= ~PG_active
        m.mem.flags[folio] |= PG_workingset
        inactive.append(folio)
    # l_inactive is built with list_add() and moved tail first: in scan order.
    nr_deactivate = move_folios_to_lru(m, inactive)
    count_vm_events(m, "pgdeactivate", nr_deactivate)
    lru.lru_note_cost(m, file, 0, 0)


def shrink_list(m: Machine, lru_list: int, nr_to_scan: int, sc: ScanControl) -> int:
    """shrink_list(), mm/vmscan.c, Linux 6.18."""
    if lru_list & lru.LRU_ACTIVE:
        if sc.may_deactivate & (1 << (lru_list >= lru.LRU_FILE)):
            shrink_active_list(m, nr_to_scan, sc, lru_list)
        else:
            sc.skipped_deactivate = True
        return 0
    return shrink_inactive_list(m, nr_to_scan, sc, lru_list)


def shrink_lruvec(m: Machine, sc: ScanControl) -> None:
    """shrink_lruvec(), mm/vmscan.c, Linux 6.18 (non-MGLRU, cgroup reclaim)."""
    nr = get_scan_count(m, sc)
    targets = list(nr)
    nr_reclaimed = 0
    nr_to_reclaim = sc.nr_to_reclaim
    IA, AA, IF, AF = lru.EVICTABLE_LRUS
    while nr[IA] or nr[AF] or nr[IF]:
        for lru_list in lru.EVICTABLE_LRUS:
            if nr[lru_list]:
                nr_to_scan = min(nr[lru_list], SWAP_CLUSTER_MAX)
                nr[lru_list] -= nr_to_scan
                nr_reclaimed += shrink_list(m, lru_list, nr_to_scan, sc)
        if nr_reclaimed < nr_to_reclaim:
            continue  # proportional_reclaim is false in cgroup reclaim
        nr_file = nr[IF] + nr[AF]
        nr_anon = nr[IA] + nr[AA]
        if not nr_file or not nr_anon:
            break
        if nr_file > nr_anon:
            scan_target = targets[IA] + targets[AA] + 1
            stop = IA
            percentage = nr_anon * 100 // scan_target
        else:
            scan_target = targets[IF] + targets[AF] + 1
            stop = IF
            percentage = nr_file * 100 // scan_target
        nr[stop] = 0
        nr[stop + lru.LRU_ACTIVE] = 0
        other = IA if stop == IF else IF
        for lst in (other, other + lru.LRU_ACTIVE):
            nr_scanned = targets[lst] - nr[lst]
            nr[lst] = targets[lst] * (100 - percentage) // 100
            nr[lst] -= min(nr[lst], nr_scanned)
    sc.nr_reclaimed += nr_reclaimed
    # Rebalance the anon lists even if anon was not scanned.
    if can_age_anon_pages(m) and inactive_is_low(m, IA):
        shrink_active_list(m, SWAP_CLUSTER_MAX, sc, AA)


def shrink_node(m: Machine, sc: ScanControl) -> None:
    """shrink_node() -> shrink_node_memcgs(), mm/vmscan.c, Linux 6.18: the one memcg's lruvec.

    should_continue_reclaim() is false for order-0 reclaim; shrink_slab() frees
    no folio the model has.
    """
    prepare_scan_control(m, sc)
    shrink_lruvec(m, sc)


def do_try_to_free_pages(m: Machine, sc: ScanControl) -> int:
    """do_try_to_free_pages(), mm/vmscan.c, Linux 6.18: the priority loop, for cgroup reclaim."""
    initial_priority = sc.priority
    while True:
        while True:
            sc.nr_scanned = 0
            shrink_node(m, sc)  # shrink_zones(): each node once
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            sc.priority -= 1
            if sc.priority < 0:
                break
        if sc.nr_reclaimed:
            return sc.nr_reclaimed
        if not sc.memcg_full_walk:
            sc.priority = initial_priority
            sc.memcg_full_walk = True
            continue
        if sc.skipped_deactivate:
            sc.priority = initial_priority
            sc.force_deactivate = True
            sc.skipped_deactivate = False
            continue
        return 0


def try_to_free_mem_cgroup_pages(m: Machine, nr_pages: int, may_swap: bool = True) -> int:
    """try_to_free_mem_cgroup_pages(), mm/vmscan.c, Linux 6.18: pages reclaimed from the memcg."""
    sc = ScanControl(nr_to_reclaim=max(nr_pages, SWAP_CLUSTER_MAX), may_swap=may_swap)
    return do_try_to_free_pages(m, sc)


# --- end LRU reclaim -----------------------------------------------------------------


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


def shrink_folio_list(
    m: Machine, folio_list: list[int], sc: ScanControl | None = None
) -> list[int]:
    """shrink_folio_list(), mm/vmscan.c, Linux 6.18 (anonymous folios): the folios kept.

    reclaim_pages() calls it without `sc` (ignore_references=true); LRU reclaim
    (shrink_inactive_list()) with its scan_control, whose stat it fills and
    whose folios go through folio_check_references() first.
    """
    ret: list[int] = []
    pgactivate = 0
    mem = m.mem
    for folio in folio_list:  # split folios append their tails, which get their own pass
        nr_pages = folio_nr_pages(m, folio)
        activate = False
        keep = False
        references = FolioReferences.FOLIOREF_RECLAIM
        name = folio_name(m, folio) if m.tracing else ""
        if sc is not None:
            sc.nr_scanned += nr_pages
        if not folio_evictable(m, folio):
            activate = True
        elif sc is not None and (references := folio_check_references(m, folio)) in (
            FolioReferences.FOLIOREF_ACTIVATE,
            FolioReferences.FOLIOREF_KEEP,
        ):
            if m.tracing:
                m.trace("folio_check_references", f"folio {name}: {references.name}")
            if references is FolioReferences.FOLIOREF_ACTIVATE:
                activate = True
            else:
                keep = True
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
                elif references is FolioReferences.FOLIOREF_RECLAIM_CLEAN:
                    keep = True
                else:
                    res = pageout(m, folio)
                    if sc is not None and res is PageoutResult.PAGE_SUCCESS:
                        sc.nr_pageout += nr_pages
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
                        if sc is not None:
                            sc.nr_reclaimed_list += nr_pages
                        continue
                elif not __remove_mapping(m, folio):
                    keep = True
                else:
                    # __remove_mapping() froze the count at the isolation reference.
                    mem.refcount[folio] = 0
                    __folio_put(m, folio)
                    if sc is not None:
                        sc.nr_reclaimed_list += nr_pages
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
                if sc is not None:
                    sc.nr_activate[int(not folio_test_swapbacked(m, folio))] += nr_pages
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
