"""Swap slots, swap counts and the swap cache: mm/swapfile.c, mm/swap_state.c and
mm/page_io.c, Linux 6.18."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import swap, vmscan
from foliosim.model.rmap import TTU, try_to_unmap
from foliosim.model.types import PTE_SWAP, PG_dirty, PG_swapcache


def _written(nr: int = 1, swap_pages: int = 64, mthp_kb: int | None = None, zero: bool = False):
    sim = Sim(swap_pages=swap_pages, mthp_kb=mthp_kb)
    sim.mmap("A", 16)
    sim.write("A", *range(nr), zero=zero)
    sim.drain()
    return sim, sim.folio("A", 0)


@pytest.mark.parametrize(
    "mthp_kb, nr",
    [
        pytest.param(None, 1, id="order 0: one slot"),
        pytest.param(16, 4, id="order 2: 4 slots, 4-aligned"),
        pytest.param(64, 16, id="order 4: 16 slots, 16-aligned"),
    ],
)
def test_folio_alloc_swap_gives_naturally_aligned_slots_and_the_cache_refs(mthp_kb, nr: int):
    """folio_alloc_swap(), mm/swapfile.c, Linux 6.18: the cluster allocator hands an order-n
    folio 2^n contiguous slots at an offset aligned to 2^n, never slot 0 (the swap header);
    the swap cache takes one reference per page and sets PG_swapcache and folio->swap."""
    sim, folio = _written(nr, mthp_kb=mthp_kb)
    refs = sim.refcount(folio)
    assert swap.folio_alloc_swap(sim.m, folio)
    off = int(sim.m.mem.swap[folio])
    assert off > 0 and off % nr == 0
    assert [sim.m.swap.cache[o] for o in range(off, off + nr)] == list(range(folio, folio + nr))
    assert sim.refcount(folio) == refs + nr
    assert sim.flags(folio) & PG_swapcache
    assert sim.m.swap.inuse_pages == nr


@pytest.mark.parametrize(
    "swap_pages, mthp_kb, ok",
    [
        pytest.param(None, None, False, id="no swap device"),
        pytest.param(2, None, True, id="one free slot: order 0 fits"),
        pytest.param(16, 64, False, id="15 usable slots: no room for 16"),
    ],
)
def test_folio_alloc_swap_fails_without_room(swap_pages, mthp_kb, ok: bool):
    """folio_alloc_swap(), mm/swapfile.c, Linux 6.18: -ENOMEM when no device has room; the
    folio is left as it was."""
    sim, folio = _written(16 if mthp_kb else 1, swap_pages=swap_pages, mthp_kb=mthp_kb)
    refs = sim.refcount(folio)
    assert swap.folio_alloc_swap(sim.m, folio) is ok
    assert bool(sim.flags(folio) & PG_swapcache) is ok
    assert sim.refcount(folio) == refs + (1 if ok else 0)


def _swapped_out(zero: bool = False) -> tuple[Sim, int, int]:
    """Page 0 swapped out by MADV_PAGEOUT: (sim, slot, the old folio)."""
    sim, folio = _written(zero=zero)
    sim.madvise("A", 0, 0, "pageout")
    bits, off = sim.pte("A", 0)
    assert bits & PTE_SWAP
    return sim, off, folio


def test_swap_duplicate_and_swap_free_count_swap_ptes():
    """swap_duplicate() / swap_free_nr(), mm/swapfile.c, Linux 6.18: each swap PTE holds one
    count on its slot; the last free with no swap-cache folio frees the slot."""
    sim, off, _ = _swapped_out()
    si = sim.m.swap
    assert swap.__swap_count(sim.m, off) == 1  # the one swap PTE
    child = sim.fork()
    assert swap.__swap_count(sim.m, off) == 2  # copy_nonpresent_pte() -> swap_duplicate()
    assert child.pte_table(sim.mm.mappings["A"].start) is not None
    swap.swap_free_nr(sim.m, off)
    assert (swap.__swap_count(sim.m, off), si.inuse_pages) == (1, 1)
    swap.swap_free_nr(sim.m, off)
    assert (swap.__swap_count(sim.m, off), si.inuse_pages) == (0, 0)


def test_swap_free_keeps_a_slot_the_swap_cache_still_holds():
    """swap_entries_free() runs only when the count is 0 and no folio is cached
    (mm/swapfile.c, Linux 6.18): the swap cache keeps the slot in use."""
    sim, folio = _written()
    assert vmscan.folio_isolate_lru(sim.m, folio)
    assert swap.folio_alloc_swap(sim.m, folio)
    try_to_unmap(sim.m, folio, TTU.BATCH_FLUSH)
    off = int(sim.m.mem.swap[folio])
    assert swap.__swap_count(sim.m, off) == 1
    swap.swap_free_nr(sim.m, off)
    assert swap.__swap_count(sim.m, off) == 0
    assert sim.m.swap.inuse_pages == 1  # the cached folio still owns it
    assert sim.m.swap.cache[off] == folio


@pytest.mark.parametrize(
    "state, freed",
    [
        pytest.param("not in the swap cache", False, id="not in the swap cache: false"),
        pytest.param("a swap PTE refers to it", False, id="folio_swapped(): false"),
        pytest.param("every PTE maps it again", True, id="no swap PTE left: freed, dirtied"),
    ],
)
def test_folio_free_swap(state: str, freed: bool):
    """folio_free_swap(), mm/swapfile.c, Linux 6.18: only a swap-cache folio not under
    writeback and with no swap count left leaves the cache, and is then marked dirty
    (its data now lives only in memory)."""
    sim, folio = _written()
    assert vmscan.folio_isolate_lru(sim.m, folio)
    if state != "not in the swap cache":
        assert swap.folio_alloc_swap(sim.m, folio)
        try_to_unmap(sim.m, folio, TTU.BATCH_FLUSH)  # PTE -> swap PTE, count 1
        # Written out: folio_clear_dirty_for_io() leaves a clean swap-cache folio.
        assert vmscan.pageout(sim.m, folio) is vmscan.PageoutResult.PAGE_SUCCESS
        if state == "every PTE maps it again":
            # The swap-cache hit of a read fault maps it back and drops the count.
            sim.read("A", 0)
            assert sim.folio("A", 0) == folio
        assert not sim.flags(folio) & PG_dirty
    refs = sim.refcount(folio)
    assert swap.folio_free_swap(sim.m, folio) is freed
    assert bool(sim.flags(folio) & PG_swapcache) is (state == "a swap PTE refers to it")
    if freed:
        assert sim.flags(folio) & PG_dirty
        assert sim.refcount(folio) == refs - 1
        assert sim.m.swap.inuse_pages == 0


@pytest.mark.parametrize(
    "zero, pswpout, swpout_zero",
    [
        pytest.param(True, 0, 1, id="zero-filled: zeromap bit, SWPOUT_ZERO, no I/O"),
        pytest.param(False, 1, 0, id="data: written, PSWPOUT"),
    ],
)
def test_swap_writeout_zeromap(zero: bool, pswpout: int, swpout_zero: int):
    """swap_writeout(), mm/page_io.c, Linux 6.18: is_folio_zero_filled() ->
    swap_zeromap_folio_set() (SWPOUT_ZERO) instead of I/O; swap_read_folio() of such a
    slot fills zeroes and counts SWPIN_ZERO."""
    sim, off, _ = _swapped_out(zero=zero)
    si = sim.m.swap
    assert bool(si.zeromap[off]) is zero
    assert (sim.vmstat("pswpout"), sim.vmstat("swpout_zero")) == (pswpout, swpout_zero)
    sim.read("A", 0)  # swap-in
    assert (sim.vmstat("pswpin"), sim.vmstat("swpin_zero")) == (pswpout, swpout_zero)
    assert (sim.m.mem.data[sim.folio("A", 0)] == 0) is zero
    sim.validate()


def test_freeing_a_zeromap_slot_clears_its_bit():
    """swap_entries_free() -> swap_zeromap clear, mm/swapfile.c, Linux 6.18: a freed slot
    must not read back as zeroes for its next user."""
    sim, off, _ = _swapped_out(zero=True)
    sim.madvise("A", 0, 0, "dontneed")  # zap the swap PTE: free_swap_and_cache_nr()
    assert not sim.m.swap.zeromap[off]
    assert sim.m.swap.inuse_pages == 0


@pytest.mark.parametrize(
    "used, full",
    [
        pytest.param(0, False, id="empty"),
        pytest.param(8, False, id="half of 16 in use: not full"),
        pytest.param(9, True, id="more than half in use: full"),
    ],
)
def test_vm_swap_full(used: int, full: bool):
    """vm_swap_full(), include/linux/swap.h, Linux 6.18: nr_swap_pages * 2 < total."""
    sim = Sim(swap_pages=17)  # 16 usable slots besides the header
    sim.mmap("A", 16)
    sim.write("A", *range(used))
    sim.drain()
    for k in range(used):
        assert swap.folio_alloc_swap(sim.m, sim.folio("A", k))
    assert swap.vm_swap_full(sim.m) is full


@pytest.mark.parametrize(
    "prev_offset, offset, hits, max_pages, prev_win, pages",
    [
        pytest.param(10, 20, 0, 8, 0, 1, id="no hits, not adjacent: 1"),
        pytest.param(10, 11, 0, 8, 0, 2, id="no hits, next offset: 2"),
        pytest.param(10, 9, 0, 8, 0, 2, id="no hits, previous offset: 2"),
        pytest.param(10, 20, 1, 8, 0, 4, id="1 hit: 3 rounded up to 4"),
        pytest.param(10, 20, 3, 8, 0, 8, id="3 hits: 5 rounded up to 8"),
        pytest.param(10, 20, 10, 8, 0, 8, id="10 hits: 16, capped at max_pages"),
        pytest.param(10, 20, 0, 8, 8, 4, id="no hits after a window of 8: halved, not 1"),
    ],
)
def test_swapin_nr_pages_readahead_window(
    prev_offset: int, offset: int, hits: int, max_pages: int, prev_win: int, pages: int
):
    """__swapin_nr_pages(), mm/swap_state.c, Linux 6.18: hits + 2 rounded up to a power of
    two from 4 (or 1/2 by adjacency with no hits), capped at max_pages, never below half
    the previous window."""
    assert swap.__swapin_nr_pages(prev_offset, offset, hits, max_pages, prev_win) == pages
