"""madvise(2) on anonymous memory: mm/madvise.c."""

from __future__ import annotations

from foliosim.model.errors import SyscallError
from foliosim.model.lru import (
    folio_deactivate,
    folio_mark_lazyfree,
    folio_nr_pages,
    folio_put,
    folio_test_dirty,
    folio_test_lru,
    folio_test_swapcache,
    lru_add_drain,
)
from foliosim.model.machine import Machine
from foliosim.model.memory import zap_pte_range
from foliosim.model.mmap import vma_modify_flags, vmas_in_range
from foliosim.model.rmap import folio_mapcount
from foliosim.model.swap import folio_free_swap, free_swap_and_cache_nr, read_swap_cache_async
from foliosim.model.types import (
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_YOUNG,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    Mm,
    PG_active,
    PG_dirty,
    PG_referenced,
    PG_unevictable,
    PG_workingset,
    Vma,
)
from foliosim.model.vmscan import folio_isolate_lru, folio_putback_lru, reclaim_pages


def pmd_ranges(start: int, end: int):
    """[start, end) cut at page-table (2M) boundaries, as walk_page_range visits them."""
    while start < end:
        nxt = min(end, (start | 511) + 1)
        yield start, nxt
        start = nxt


def can_madv_lru_vma(vma: Vma) -> bool:
    """can_madv_lru_vma(): COLD/PAGEOUT refuse locked VMAs."""
    return not vma.flags & VM_LOCKED


def madvise_dontneed_free_valid_vma(vma: Vma) -> bool:
    """madvise_dontneed_free_valid_vma(), mm/madvise.c, Linux 6.18."""
    return not vma.flags & VM_LOCKED


def madvise_free_pte_range(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_free_pte_range(), mm/madvise.c, Linux 6.18 (order-0 folios)."""
    mm = vma.mm
    t = mm.pte_table(start)
    if t is None:
        return
    nr_swap = 0
    mem = m.mem
    for vpn in range(start, end):
        i = vpn & 511
        bits = int(t.bits[i])
        if not bits:
            continue
        if bits & PTE_SWAP:
            # The content is gone: drop the swap entry, the next access sees zeroes.
            nr_swap -= 1
            free_swap_and_cache_nr(m, int(t.pfn[i]), 1)
            t.bits[i] = 0
            t.pfn[i] = 0
            continue
        if bits & PTE_SPECIAL:
            continue  # the zero page
        folio = int(t.pfn[i])
        if folio_test_swapcache(m, folio) or folio_test_dirty(m, folio):
            if folio_mapcount(m, folio) != folio_nr_pages(m, folio):
                continue  # shared: not ours to clean
            if folio_test_swapcache(m, folio) and not folio_free_swap(m, folio):
                continue
            mem.flags[folio] &= ~PG_dirty
        if bits & (PTE_YOUNG | PTE_DIRTY):
            t.bits[i] = bits & ~(PTE_YOUNG | PTE_DIRTY)  # clear_young_dirty_ptes()
        folio_mark_lazyfree(m, folio)
        if m.tracing:
            m.trace(
                "madvise_free_pte_range",
                f"folio {m.folio_name(folio)}: PTE cleaned, queued for lazyfree",
            )
    if nr_swap:
        mm.counters[MM_SWAPENTS] += nr_swap


def madvise_cold_or_pageout_pte_range(
    m: Machine, vma: Vma, start: int, end: int, pageout: bool
) -> None:
    """madvise_cold_or_pageout_pte_range(), mm/madvise.c, Linux 6.18 (order-0 folios)."""
    t = vma.mm.pte_table(start)
    if t is None:
        return
    folio_list: list[int] = []
    mem = m.mem
    for vpn in range(start, end):
        i = vpn & 511
        bits = int(t.bits[i])
        if not bits & PTE_PRESENT or bits & PTE_SPECIAL:
            continue
        folio = int(t.pfn[i])
        # Do not interfere with other mappings of this folio and non-LRU folios.
        if not folio_test_lru(m, folio) or folio_mapcount(m, folio) != folio_nr_pages(m, folio):
            if m.tracing:
                why = "not on an LRU" if not folio_test_lru(m, folio) else "mapped elsewhere too"
                m.trace(
                    "madvise_cold_or_pageout_pte_range",
                    f"folio {m.folio_name(folio)} skipped: {why}",
                )
            continue
        if not pageout and bits & PTE_YOUNG:
            t.bits[i] = bits & ~PTE_YOUNG
        mem.flags[folio] &= ~PG_referenced
        if mem.flags[folio] & PG_active:
            mem.flags[folio] |= PG_workingset
        if pageout:
            if folio_isolate_lru(m, folio):
                if mem.flags[folio] & PG_unevictable:
                    folio_putback_lru(m, folio)
                else:
                    folio_list.append(folio)
        else:
            folio_deactivate(m, folio)
    if pageout:
        reclaim_pages(m, folio_list)


def madvise_free_single_vma(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_free_single_vma(), mm/madvise.c, Linux 6.18."""
    lru_add_drain(m)
    for s, e in pmd_ranges(start, end):
        madvise_free_pte_range(m, vma, s, e)


def zap_page_range_single(m: Machine, vma: Vma, start: int, end: int) -> None:
    """zap_page_range_single(), mm/memory.c, Linux 6.18 (MADV_DONTNEED)."""
    lru_add_drain(m)
    zap_pte_range(m, vma, start, end)


def madvise_willneed(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_willneed() on anonymous memory: swapin_walk_pmd_entry(), mm/madvise.c, Linux 6.18."""
    for vpn in range(start, end):
        t = vma.mm.pte_table(vpn)
        if t is None:
            continue
        i = vpn & 511
        if int(t.bits[i]) & PTE_SWAP:
            folio = read_swap_cache_async(m, int(t.pfn[i]))
            folio_put(m, folio)
    lru_add_drain(m)


def madvise_vma_behavior(m: Machine, vma: Vma, start: int, end: int, advice: str) -> None:
    """madvise_vma_behavior(), mm/madvise.c, Linux 6.18: one VMA's part of the range."""
    if advice in ("free", "dontneed"):
        if not madvise_dontneed_free_valid_vma(vma):
            raise SyscallError("EINVAL")
        if advice == "free":
            madvise_free_single_vma(m, vma, start, end)
        else:
            zap_page_range_single(m, vma, start, end)
    elif advice in ("cold", "pageout"):
        if not can_madv_lru_vma(vma):
            raise SyscallError("EINVAL")
        lru_add_drain(m)
        for s, e in pmd_ranges(start, end):
            madvise_cold_or_pageout_pte_range(m, vma, s, e, pageout=advice == "pageout")
    elif advice == "willneed":
        madvise_willneed(m, vma, start, end)
    elif advice == "hugepage":
        vma_modify_flags(m, vma, start, end, set_=VM_HUGEPAGE, clear=VM_NOHUGEPAGE)
    elif advice == "nohugepage":
        vma_modify_flags(m, vma, start, end, set_=VM_NOHUGEPAGE, clear=VM_HUGEPAGE)
    else:
        raise ValueError(advice)


def do_madvise(m: Machine, mm: Mm, start: int, end: int, advice: str) -> None:
    """do_madvise(), mm/madvise.c, Linux 6.18: raises SyscallError on failure."""
    if advice in ("populate_read", "populate_write"):
        from foliosim.model.gup import faultin_page_range

        faultin_page_range(m, mm, start, end, write=advice == "populate_write")
        return
    for vma in vmas_in_range(mm, start, end):
        madvise_vma_behavior(m, vma, max(start, vma.start), min(end, vma.end), advice)
