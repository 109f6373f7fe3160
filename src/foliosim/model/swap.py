"""The swap device, swap cache, swap I/O and swapoff: mm/swapfile.c, mm/swap_state.c, mm/page_io.c."""

from __future__ import annotations

from array import array

import numpy as np

from foliosim.model import cost, lru, page_alloc, rmap
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_get, folio_nr_pages, folio_put, folio_put_refs
from foliosim.model.page_flags import page_folio
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_readahead,
    PG_swapbacked,
    PG_swapcache,
    PG_workingset,
    PG_writeback,
)
from foliosim.model.vmstat import count_mthp_stat, count_vm_events


class SwapCache(dict):
    """The swap cache (swap_address_space): slot -> folio pfn, -1 where none."""

    def __missing__(self, offset: int) -> int:
        return -1

    def __setitem__(self, offset: int, folio: int) -> None:
        if folio < 0:
            self.pop(offset, None)
        else:
            super().__setitem__(offset, folio)


class SwapInfo:
    """struct swap_info_struct of a zram device: synchronous, non-rotational."""

    def __init__(self, pages: int) -> None:
        # Slot 0 holds the swap header (mkswap); the rest are usable.  array.array
        # for scalar access, numpy views (fixed size, so kept) for vector work.
        self.max = pages
        self.swap_map = array("b", bytes(pages))  # swap count of each slot
        self.cache = SwapCache()
        self.data = array("q", bytes(8 * pages))  # what the device holds per slot
        self.zeromap = array("b", bytes(pages))  # swap_zeromap: written as zero-filled
        self.shadow = array("b", bytes(pages))  # a workingset shadow entry is left
        self.swap_map_v = np.frombuffer(self.swap_map, np.int8)
        self.data_v = np.frombuffer(self.data, np.int64)
        self.zeromap_v = np.frombuffer(self.zeromap, np.int8)
        self.shadow_v = np.frombuffer(self.shadow, np.int8)
        self.swap_map[0] = -1  # the header slot is never handed out
        self.inuse_pages = 0
        self.next = 1  # cluster allocator's next offset (model: first fit from here)

    @property
    def pages(self) -> int:
        return self.max - 1

    def slot_free(self, offset: int) -> bool:
        return self.swap_map[offset] == 0 and self.cache[offset] < 0


def vm_swap_full(m: Machine) -> bool:
    """vm_swap_full(), include/linux/swap.h, Linux 6.18: more than half of swap is in use."""
    si = m.swap
    return si is not None and (si.pages - si.inuse_pages) * 2 < si.pages


def __swap_count(m: Machine, offset: int) -> int:
    """__swap_count(), mm/swapfile.c, Linux 6.18: the slot's swap count."""
    return int(m.swap.swap_map[offset])


def _swap_range_alloc(m: Machine, nr: int) -> int:
    """First offset of `nr` contiguous free, naturally aligned slots, or -1."""
    si = m.swap
    for start in (si.next, 1):
        off = start + (-start % nr)
        while off + nr <= si.max:
            if all(si.slot_free(o) for o in range(off, off + nr)):
                si.next = off + nr
                return off
            off += nr
    return -1


def folio_alloc_swap(m: Machine, folio: int) -> bool:
    """folio_alloc_swap(), mm/swapfile.c, Linux 6.18: slots + swap cache, or False."""
    si = m.swap
    if si is None:
        return False
    nr = folio_nr_pages(m, folio)
    off = _swap_range_alloc(m, nr)
    if off < 0:
        return False
    si.inuse_pages += nr
    # add_to_swap_cache(): the cache holds one reference per page.
    m.mem.swap[folio] = off
    m.mem.flags[folio] |= PG_swapcache
    m.mem.refcount[folio] += nr
    for k in range(nr):
        si.cache[off + k] = folio + k
    return True


# A slot with no swap count and no swap-cache folio is free again (swap_entries_free(),
# mm/swapfile.c): off inuse_pages, its zeromap bit and shadow entry cleared.
def _swap_entry_maybe_free(m: Machine, offset: int) -> None:
    si = m.swap
    if si.swap_map[offset] == 0 and si.cache[offset] < 0:
        si.inuse_pages -= 1
        si.zeromap[offset] = False
        si.shadow[offset] = False  # clear_shadow_from_swap_cache()


def swap_duplicate(m: Machine, offset: int) -> bool:
    """swap_duplicate(), mm/swapfile.c, Linux 6.18: one more swap PTE refers to the slot."""
    cost.count("swap_op")
    cost.count("swap_slot")
    m.swap.swap_map[offset] += 1
    return True


def swap_duplicate_nr(m: Machine, offset: int, nr: int) -> bool:
    """One more swap PTE for each of nr consecutive slots, in one call.
    swap_duplicate_nr(), mm/swapfile.c; mm-unstable's folio_dup_swap(folio,
    page, nr), which Dev Jain's batching series calls (one swap-cluster lock).
    """
    cost.count("swap_op")
    cost.count("swap_slot", nr)
    swap_map = m.swap.swap_map
    for o in range(offset, offset + nr):
        swap_map[o] += 1
    return True


def swap_free_nr(m: Machine, offset: int, nr: int = 1) -> None:
    """swap_free_nr(), mm/swapfile.c, Linux 6.18: drop swap-PTE references."""
    cost.count("swap_op")
    cost.count("swap_slot", nr)
    si = m.swap
    for o in range(offset, offset + nr):
        si.swap_map[o] -= 1
        _swap_entry_maybe_free(m, o)


def swap_cache_get_folio(m: Machine, offset: int, vma=None, vpn: int = 0) -> int:
    """swap_cache_get_folio(), mm/swap_state.c, Linux 6.18: the cached folio or -1.

    A hit on a readahead folio counts as a hit in the VMA's readahead state.
    """
    folio = int(m.swap.cache[offset])
    if folio < 0:
        return folio
    folio = page_folio(m, folio)  # the cache names each slot's page
    if vma is None or m.mem.order[folio]:
        return folio
    readahead = bool(m.mem.flags[folio] & PG_readahead)
    m.mem.flags[folio] &= ~PG_readahead
    ra_val = GET_SWAP_RA_VAL(vma)
    win, hits = SWAP_RA_WIN(ra_val), SWAP_RA_HITS(ra_val)
    if readahead:
        hits = min(hits + 1, SWAP_RA_HITS_MAX)
    vma.swap_readahead_info = SWAP_RA_VAL(vpn, win, hits)
    return folio


# VMA-based swap readahead state, mm/swap_state.c (addresses as page numbers here).
SWAP_RA_ORDER_CEILING = 5
SWAP_RA_WIN_SHIFT = 6  # PAGE_SHIFT / 2
SWAP_RA_HITS_MASK = (1 << SWAP_RA_WIN_SHIFT) - 1
SWAP_RA_HITS_MAX = SWAP_RA_HITS_MASK
PAGE_CLUSTER = 3  # /proc/sys/vm/page-cluster default


def SWAP_RA_HITS(v: int) -> int:
    """SWAP_RA_HITS(), mm/swap_state.c, Linux 6.18."""
    return v & SWAP_RA_HITS_MASK


def SWAP_RA_WIN(v: int) -> int:
    """SWAP_RA_WIN(), mm/swap_state.c, Linux 6.18."""
    return (v >> SWAP_RA_WIN_SHIFT) & SWAP_RA_HITS_MASK


def SWAP_RA_ADDR(v: int) -> int:
    """SWAP_RA_ADDR(), mm/swap_state.c, Linux 6.18 (a page number here)."""
    return v >> 12


def SWAP_RA_VAL(vpn: int, win: int, hits: int) -> int:
    """SWAP_RA_VAL(), mm/swap_state.c, Linux 6.18."""
    return (
        (vpn << 12) | ((win & SWAP_RA_HITS_MASK) << SWAP_RA_WIN_SHIFT) | (hits & SWAP_RA_HITS_MASK)
    )


def GET_SWAP_RA_VAL(vma) -> int:
    """GET_SWAP_RA_VAL(), mm/swap_state.c, Linux 6.18: "initial readahead hits is 4 to start up with a small window"."""
    return vma.swap_readahead_info or 4


def __swapin_nr_pages(
    prev_offset: int, offset: int, hits: int, max_pages: int, prev_win: int
) -> int:
    """__swapin_nr_pages(), mm/swap_state.c, Linux 6.18."""
    pages = hits + 2
    if pages == 2:
        if offset != prev_offset + 1 and offset != prev_offset - 1:
            pages = 1
    else:
        roundup = 4
        while roundup < pages:
            roundup <<= 1
        pages = roundup
    pages = min(pages, max_pages)
    return max(pages, prev_win // 2)  # don't shrink readahead too fast


def swap_vma_ra_win(vma, vpn: int) -> tuple[int, int, int]:
    """swap_vma_ra_win(), mm/swap_state.c, Linux 6.18: (win, start, end) in page numbers."""
    max_win = 1 << min(PAGE_CLUSTER, SWAP_RA_ORDER_CEILING)
    ra_val = GET_SWAP_RA_VAL(vma)
    prev = SWAP_RA_ADDR(ra_val)
    win = __swapin_nr_pages(prev, vpn, SWAP_RA_HITS(ra_val), max_win, SWAP_RA_WIN(ra_val))
    vma.swap_readahead_info = SWAP_RA_VAL(vpn, win, 0)
    if win == 1:
        return 1, vpn, vpn + 1
    if vpn == prev + 1:
        left = vpn
    elif prev == vpn + 1:
        left = vpn - win + 1
    else:
        left = vpn - (win - 1) // 2
    right = left + win
    pmd = vpn & ~511
    return win, max(left, vma.start, pmd), min(right, vma.end, pmd + 512)


def swap_vma_readahead(m: Machine, vma, vpn: int, offset: int) -> int:
    """swap_vma_readahead(), mm/swap_state.c, Linux 6.18: read around, return the target.

    The target comes back with a reference for the caller.
    """

    win, start, end = swap_vma_ra_win(vma, vpn)
    if win > 1:
        for addr in range(start, end):
            t = vma.mm.pte_table(addr)
            if t is None or not int(t.bits[addr & 511]) & PTE_SWAP:
                continue
            o = int(t.pfn[addr & 511])
            allocated = swap_cache_get_folio(m, o) < 0
            folio = read_swap_cache_async(m, o)
            if allocated and addr != vpn:
                m.mem.flags[folio] |= PG_readahead
                count_vm_events(m, "swap_ra", 1)
            folio_put_refs(m, folio, 1)
    return read_swap_cache_async(m, offset)


def folio_swapped(m: Machine, folio: int) -> bool:
    """folio_swapped(), mm/swapfile.c, Linux 6.18: does any swap PTE still refer to the folio's slots?"""
    off = int(m.mem.swap[folio])
    nr = folio_nr_pages(m, folio)
    return any(c > 0 for c in m.swap.swap_map[off : off + nr])


def delete_from_swap_cache(m: Machine, folio: int, shadow: bool = False) -> None:
    """delete_from_swap_cache() -> __delete_from_swap_cache(), mm/swap_state.c, Linux 6.18: drop the cache's references."""
    si = m.swap
    off = int(m.mem.swap[folio])
    nr = folio_nr_pages(m, folio)
    for o in range(off, off + nr):
        si.cache[o] = -1
        si.shadow[o] = shadow
    m.mem.swap[folio] = -1
    m.mem.flags[folio] &= ~PG_swapcache
    for o in range(off, off + nr):
        _swap_entry_maybe_free(m, o)
    folio_put_refs(m, folio, nr)


def folio_free_swap(m: Machine, folio: int) -> bool:
    """folio_free_swap(), mm/swapfile.c, Linux 6.18: leave the swap cache if no PTE needs it."""
    f = int(m.mem.flags[folio])
    if not (f & PG_swapcache and f & PG_swapbacked) or f & PG_writeback:
        return False
    if folio_swapped(m, folio):
        return False
    # The data now lives only in memory: it must be written again.
    m.mem.flags[folio] |= PG_dirty
    delete_from_swap_cache(m, folio)
    return True


def any_mapped(m: Machine, folio: int) -> bool:
    """Whether a PTE maps any page of the folio (the folio_mapped() test of __try_to_reclaim_swap(), mm/swapfile.c, Linux 6.18)."""
    mapcount = m.mem.mapcount
    return any(mapcount[p] for p in range(folio, folio + folio_nr_pages(m, folio)))


def free_swap_and_cache_nr(m: Machine, offset: int, nr: int = 1) -> None:
    """free_swap_and_cache_nr(), mm/swapfile.c, Linux 6.18: zap of swap PTEs."""
    si = m.swap
    for o in range(offset, offset + nr):
        si.swap_map[o] -= 1
        folio = int(si.cache[o])
        if folio >= 0:
            folio = page_folio(m, folio)
        # __try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL): the last user went away.
        if (
            si.swap_map[o] == 0
            and folio >= 0
            and (not any_mapped(m, folio) or vm_swap_full(m))
            and not folio_swapped(m, folio)
        ):
            delete_from_swap_cache(m, folio)
            continue
        _swap_entry_maybe_free(m, o)


def is_folio_zero_filled(m: Machine, folio: int) -> bool:
    """is_folio_zero_filled(), mm/page_io.c, Linux 6.18: every page of the folio holds zeroes."""
    nr = folio_nr_pages(m, folio)
    return not any(m.mem.data[folio : folio + nr])


def swap_writeout(m: Machine, folio: int) -> bool:
    """swap_writeout(), mm/page_io.c, Linux 6.18: True if an I/O (or zeromap write) was done."""
    if folio_free_swap(m, folio):
        return False
    si = m.swap
    off = int(m.mem.swap[folio])
    nr = folio_nr_pages(m, folio)
    order = int(m.mem.order[folio])
    if is_folio_zero_filled(m, folio):
        # swap_zeromap_folio_set(): no I/O for zero-filled pages.
        si.zeromap_v[off : off + nr] = True
        count_vm_events(m, "swpout_zero", nr)
        return True
    si.zeromap_v[off : off + nr] = False
    si.data_v[off : off + nr] = m.mem.data[folio : folio + nr]
    # __swap_writepage() -> swap_writepage_bdev_sync(): zram completes at once.
    count_vm_events(m, "pswpout", nr)
    if order:
        count_mthp_stat(m, order, "swpout")
        if order == 9:
            count_vm_events(m, "thp_swpout", 1)
    if m.tracing:
        m.trace("swap_writeout", f"folio {folio_name(m, folio)} written to slot {off}")
    return True


def swap_read_folio(m: Machine, folio: int, offset: int) -> None:
    """swap_read_folio(), mm/page_io.c, Linux 6.18: fill the folio from its slots."""
    si = m.swap
    nr = folio_nr_pages(m, folio)
    order = int(m.mem.order[folio])
    if si.zeromap[offset]:
        m.mem.data[folio : folio + nr] = array("q", bytes(8 * nr))
        count_vm_events(m, "swpin_zero", nr)
        return
    m.mem.data[folio : folio + nr] = si.data[offset : offset + nr]
    count_vm_events(m, "pswpin", nr)
    if order:
        count_mthp_stat(m, order, "swpin")


def workingset_refault(m: Machine, folio: int) -> None:
    """workingset_refault(), mm/workingset.c, Linux 6.18: a recent refault is activated."""
    # Model: an otherwise idle machine, so every refault is within the workingset.
    m.mem.flags[folio] |= PG_active | PG_workingset


def read_swap_cache_async(m: Machine, offset: int) -> int:
    """read_swap_cache_async(), mm/swap_state.c, Linux 6.18: the slot's folio, read if needed.

    Returns the folio with a reference for the caller.
    """
    folio = swap_cache_get_folio(m, offset)
    if folio >= 0:
        m.mem.refcount[folio] += 1
        return folio
    si = m.swap
    folio = page_alloc.folio_alloc(m, 0)  # one reference: the caller's
    m.mem.flags[folio] |= PG_swapbacked
    # add_to_swap_cache()
    m.mem.swap[folio] = offset
    m.mem.flags[folio] |= PG_swapcache
    m.mem.refcount[folio] += 1
    si.cache[offset] = folio
    if si.shadow[offset]:
        workingset_refault(m, folio)
        si.shadow[offset] = False
    lru.folio_add_lru(m, folio)
    swap_read_folio(m, folio, offset)
    if m.tracing:
        m.trace("read_swap_cache_async", f"slot {offset} read into the swap cache")
    return folio


def unuse_pte(m: Machine, vma, vpn: int, t, i: int, folio: int) -> None:
    """unuse_pte(), mm/swapfile.c, Linux 6.18: map the folio read-only and old."""
    old = int(t.bits[i])
    offset = int(t.pfn[i])
    exclusive = bool(old & PTE_SWP_EXCLUSIVE)
    vma.mm.counters[MM_SWAPENTS] -= 1
    vma.mm.counters[MM_ANONPAGES] += 1
    folio_get(m, folio)
    if not m.mem.flags[folio] & PG_anon:
        rmap.folio_add_new_anon_rmap(m, folio, vma, vpn, exclusive=exclusive)
    else:
        rmap.folio_add_anon_rmap_ptes(m, folio, folio, 1, vma, exclusive)
    # vm_page_prot of a private mapping is read-only: a later write takes a COW fault.
    t.bits[i] = PTE_PRESENT | (old & PTE_SOFT_DIRTY)
    t.pfn[i] = folio
    swap_free_nr(m, offset)


def try_to_unuse(m: Machine) -> None:
    """try_to_unuse(), mm/swapfile.c, Linux 6.18: bring every swapped page back, then the device is gone."""
    for mm in list(m.mms.values()):
        for vma in list(mm.vmas):
            for vpn in range(vma.start, vma.end):
                t = mm.pte_table(vpn)
                if t is None or not int(t.bits[vpn & 511]) & PTE_SWAP:
                    continue
                offset = int(t.pfn[vpn & 511])
                # unuse_pte_range(), 6.18: a plain swap-cache lookup (a readahead
                # folio keeps PG_readahead), else swapin_readahead() around it.
                folio = swap_cache_get_folio(m, offset)
                if folio >= 0:
                    folio_get(m, folio)
                else:
                    folio = swap_vma_readahead(m, vma, vpn, offset)
                unuse_pte(m, vma, vpn, t, vpn & 511, folio)
                folio_free_swap(m, folio)
                folio_put(m, folio)
    si = m.swap
    for offset in range(1, si.max):
        folio = int(si.cache[offset])
        if folio >= 0:
            folio_free_swap(m, folio)


def sys_swapon(m: Machine, pages: int) -> None:
    """SYSCALL_DEFINE2(swapon), mm/swapfile.c, Linux 6.18: a swap device of `pages` slots."""
    m.swap = SwapInfo(pages)


def sys_swapoff(m: Machine) -> None:
    """SYSCALL_DEFINE1(swapoff), mm/swapfile.c, Linux 6.18: try_to_unuse(), then it is gone."""
    try_to_unuse(m)
    m.swap = None
