"""shrink_folio_list() and pageout(), mm/vmscan.c, Linux 6.18: what reclaim does to one
isolated anonymous folio in each state (the MADV_PAGEOUT path: reclaim_pages() ->
reclaim_folio_list(), ignore_references)."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import gup, lru, swap, vmscan
from foliosim.model.rmap import TTU, try_to_unmap
from foliosim.model.types import (
    PTE_PRESENT,
    PTE_SWAP,
    PG_active,
    PG_dirty,
    PG_mlocked,
    PG_swapbacked,
    PG_swapcache,
)


def _folio_in_state(state: str) -> tuple[Sim, int]:
    """One written, drained folio of mapping A (page 0), put into `state`."""
    sim = Sim(
        swap_pages=None if "no swap" in state else 64,
        mthp_kb=64 if state.startswith("large") else None,
    )
    sim.mmap("A", 16)
    sim.write("A", *range(16 if state.startswith("large") else 1), zero="zero" in state)
    sim.drain()
    if state.startswith("lazyfree"):
        sim.madvise("A", 0, 0, "free")
        sim.drain()
        if state == "lazyfree redirtied":
            sim.write("A", 0)
        elif state == "lazyfree with a GUP reference":
            vpn = sim.mm.mappings["A"].start
            sim.m.gup_refs["ref"] = gup.get_user_pages_fast(sim.m, sim.mm, vpn, vpn + 1)
    elif state == "pinned":
        sim.pin("A", 0)
    elif state == "mlocked":
        sim.mlock("A")
    return sim, sim.folio("A", 0)


# (state, kept, freed, active afterwards, swapbacked afterwards, PTE afterwards, counters)
SHRINK_CASES = [
    pytest.param(
        "lazyfree clean",
        False,
        True,
        None,
        None,
        "none",
        {"pglazyfreed": 1},
        id="clean lazyfree: discarded, PGLAZYFREED",
    ),
    pytest.param(
        "lazyfree redirtied",
        True,
        False,
        True,
        True,
        "present",
        {"pgactivate": 1},
        id="redirtied lazyfree: swapbacked again, activated",
    ),
    pytest.param(
        "lazyfree with a GUP reference",
        True,
        False,
        True,
        False,
        "present",
        {"pgactivate": 1, "pglazyfreed": 0},
        id="lazyfree with an extra reference: stays lazyfree, activated",
    ),
    pytest.param(
        "swapbacked, no swap",
        True,
        False,
        True,
        True,
        "present",
        {"pgactivate": 1},
        id="swapbacked without swap space: activated",
    ),
    pytest.param(
        "swapbacked",
        False,
        True,
        None,
        None,
        "swap",
        {"pswpout": 1},
        id="swapbacked with swap: written out, freed",
    ),
    pytest.param(
        "swapbacked zero",
        False,
        True,
        None,
        None,
        "swap",
        {"pswpout": 0, "swpout_zero": 1},
        id="zero-filled swapbacked: zeromap, no I/O",
    ),
    pytest.param(
        "pinned",
        True,
        False,
        False,
        True,
        "present",
        {"pgactivate": 0},
        id="maybe DMA-pinned: kept, not activated, no swap slot",
    ),
    pytest.param(
        "mlocked",
        True,
        False,
        False,
        True,
        "present",
        {"pgactivate": 0},
        id="mlocked: unevictable, not activated",
    ),
]


@pytest.mark.parametrize("state, kept, freed, active, swapbacked, pte, counters", SHRINK_CASES)
def test_shrink_folio_list(
    state: str, kept: bool, freed: bool, active, swapbacked, pte: str, counters: dict
):
    """shrink_folio_list(), mm/vmscan.c, Linux 6.18: the folio comes back (keep or activate)
    or is freed; activate_locked sets PG_active unless mlocked."""
    sim, folio = _folio_in_state(state)
    assert vmscan.folio_isolate_lru(sim.m, folio)
    before = {k: sim.vmstat(k) for k in counters}
    ret = vmscan.shrink_folio_list(sim.m, [folio])
    assert (ret == [folio]) == kept
    assert (sim.refcount(folio) == 0) == freed
    if active is not None:
        assert bool(sim.flags(folio) & PG_active) == active
        assert bool(sim.flags(folio) & PG_swapbacked) == swapbacked
    bits, _ = sim.pte("A", 0)
    assert {"none": 0, "present": PTE_PRESENT, "swap": PTE_SWAP}[pte] == bits & (
        PTE_PRESENT | PTE_SWAP
    )
    assert {k: sim.vmstat(k) - before[k] for k in counters} == counters
    if state == "pinned":
        assert sim.m.swap.inuse_pages == 0  # kept before folio_alloc_swap()
    for f in ret:  # what reclaim_folio_list() does with the folios kept
        vmscan.folio_putback_lru(sim.m, f)
    sim.drain()
    sim.unpin()
    sim.validate()


@pytest.mark.parametrize(
    "swap_pages, split, fallback, kept, pswpout",
    [
        pytest.param(
            None, 1, 1, 16, 0, id="no swap: split, swpout_fallback, 16 small folios activated"
        ),
        pytest.param(
            24,
            1,
            1,
            0,
            16,
            id="no 16 aligned free slots: split, swpout_fallback, pages swapped one by one",
        ),
        pytest.param(64, 0, 0, 0, 16, id="16 aligned slots free: swapped out whole"),
    ],
)
def test_shrink_folio_list_large_folio(
    swap_pages, split: int, fallback: int, kept: int, pswpout: int
):
    """shrink_folio_list(), mm/vmscan.c, Linux 6.18: a large folio that folio_alloc_swap()
    cannot place is split (split_folio_to_list()), MTHP_STAT_SWPOUT_FALLBACK counted, and
    folio_alloc_swap() tried again on the head; the tails get their own pass."""
    sim = Sim(swap_pages=swap_pages, mthp_kb=64)
    sim.mmap("A", 16)
    sim.write("A", *range(16))
    sim.drain()
    if swap_pages == 24:
        # Slots 1..23 free: no naturally aligned run of 16 (16..31 needs slot 24+).
        assert swap._swap_range_alloc(sim.m, 16) < 0
    folio = sim.folio("A", 0)
    assert vmscan.folio_isolate_lru(sim.m, folio)
    ret = vmscan.shrink_folio_list(sim.m, [folio])
    stats = sim.m.mthp_stats[4]
    assert (stats["split"], stats["swpout_fallback"]) == (split, fallback)
    assert len(ret) == kept
    assert all(sim.flags(f) & PG_active for f in ret)
    assert sim.vmstat("pswpout") == pswpout
    assert sim.vmstat("pgactivate") == kept
    for f in ret:
        vmscan.folio_putback_lru(sim.m, f)
    sim.drain()
    sim.validate()


# --- pageout() and is_page_cache_freeable() -------------------------------------------


def _isolated_swapcache_folio(extra_ref: bool, dirty: bool) -> tuple[Sim, int]:
    """A folio as shrink_folio_list() hands it to pageout(): isolated, in the swap cache,
    unmapped by try_to_unmap()."""
    sim = Sim(swap_pages=64)
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    if not dirty:
        sim.madvise("A", 0, 0, "free")  # clean PTE and folio, still swapbacked in lru_lazyfree
    if extra_ref:
        vpn = sim.mm.mappings["A"].start
        sim.m.gup_refs["ref"] = gup.get_user_pages_fast(sim.m, sim.mm, vpn, vpn + 1)
    assert vmscan.folio_isolate_lru(sim.m, folio)
    lru.lru_add_drain(sim.m)  # the lazyfree batch skips the isolated folio
    assert swap.folio_alloc_swap(sim.m, folio)
    try_to_unmap(sim.m, folio, TTU.BATCH_FLUSH)
    return sim, folio


@pytest.mark.parametrize(
    "extra_ref, dirty, freeable, result, pswpout",
    [
        pytest.param(
            False,
            True,
            True,
            vmscan.PageoutResult.PAGE_SUCCESS,
            1,
            id="isolation + swap cache only, dirty: written (PAGE_SUCCESS)",
        ),
        pytest.param(
            False, False, True, vmscan.PageoutResult.PAGE_CLEAN, 0, id="clean: PAGE_CLEAN, no I/O"
        ),
        pytest.param(
            True,
            True,
            False,
            vmscan.PageoutResult.PAGE_KEEP,
            0,
            id="an extra reference: not freeable, PAGE_KEEP",
        ),
    ],
)
def test_pageout(extra_ref: bool, dirty: bool, freeable: bool, result, pswpout: int):
    """pageout(), mm/vmscan.c, Linux 6.18: is_page_cache_freeable() (refcount ==
    1 + folio_nr_pages()) or PAGE_KEEP; folio_clear_dirty_for_io() or PAGE_CLEAN;
    then swap_writeout()."""
    sim, folio = _isolated_swapcache_folio(extra_ref, dirty)
    assert sim.flags(folio) & PG_swapcache
    assert bool(sim.flags(folio) & PG_dirty) == dirty
    assert vmscan.is_page_cache_freeable(sim.m, folio) is freeable
    assert vmscan.pageout(sim.m, folio) is result
    assert sim.vmstat("pswpout") == pswpout
    if result is vmscan.PageoutResult.PAGE_SUCCESS:
        assert not sim.flags(folio) & PG_dirty


@pytest.mark.parametrize(
    "mlocked, expected",
    [
        pytest.param(False, True, id="on an LRU: isolated"),
        pytest.param(True, True, id="unevictable LRU: isolated too"),
    ],
)
def test_folio_isolate_lru_takes_a_reference(mlocked: bool, expected: bool):
    """folio_isolate_lru(), mm/vmscan.c, Linux 6.18: folio_test_clear_lru() then folio_get();
    a second isolation fails."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    if mlocked:
        sim.mlock("A")
        assert sim.flags(sim.folio("A", 0)) & PG_mlocked
    folio = sim.folio("A", 0)
    assert vmscan.folio_isolate_lru(sim.m, folio) is expected
    assert sim.refcount(folio) == 2
    assert vmscan.folio_isolate_lru(sim.m, folio) is False
    assert sim.refcount(folio) == 2
