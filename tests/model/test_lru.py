"""The per-CPU folio batches and LRU moves of mm/swap.c, Linux 6.18 (non-MGLRU)."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import lru
from foliosim.model.machine import FOLIO_BATCH_SIZE
from foliosim.model.types import (
    PG_active,
    PG_lru,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
)


@pytest.mark.parametrize(
    "faults, queued",
    [
        pytest.param(1, 1, id="1 new folio: waits in lru_add"),
        pytest.param(FOLIO_BATCH_SIZE - 1, 30, id="30: still waiting"),
        pytest.param(FOLIO_BATCH_SIZE, 0, id="the 31st fills the batch: all moved"),
        pytest.param(FOLIO_BATCH_SIZE + 1, 1, id="the 32nd starts a new batch"),
    ],
)
def test_folio_batch_add_and_move_moves_a_full_batch(faults: int, queued: int):
    """__folio_batch_add_and_move(), mm/swap.c, Linux 6.18: folio_batch_add() returns the
    space left (PAGEVEC_SIZE 31 minus count); at 0 folio_batch_move_lru() moves them all."""
    sim = Sim()
    sim.mmap("A", 40)
    sim.write("A", *range(faults))
    folios = [sim.folio("A", k) for k in range(faults)]
    assert len(sim.m.fbatches["lru_add"]) == queued
    on_lru = [f for f in folios if sim.flags(f) & PG_lru]
    assert len(on_lru) == faults - queued
    # The batch held a reference on each folio queued; moved folios dropped it.
    assert [sim.refcount(f) for f in folios] == [1] * (faults - queued) + [2] * queued


def test_a_large_folio_is_moved_at_once():
    """folio_may_be_lru_cached(), include/linux/swap.h, Linux 6.18: !folio_test_large()."""
    sim = Sim(mthp_kb=64)
    sim.mmap("A", 16)
    sim.write("A", 0)
    folio = sim.folio("A", 0)
    assert sim.m.fbatches["lru_add"] == []
    assert sim.flags(folio) & PG_lru
    assert sim.refcount(folio) == 16  # one per PTE, none left from the batch


# --- lru_lazyfree(): what the move does, and what it skips ---------------------------


def _lazyfree_candidate(state: str) -> tuple[Sim, int]:
    sim = Sim(swap_pages=64, mthp_kb=64 if state == "large" else None)
    sim.mmap("A", 16)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    if state in ("active, referenced", "large"):
        lru.folio_activate(sim.m, folio)
        sim.drain()
        lru.folio_mark_accessed(sim.m, folio)  # active, unreferenced -> active, referenced
    elif state == "swapcache":
        from foliosim.model.swap import folio_alloc_swap

        assert folio_alloc_swap(sim.m, folio)
    elif state == "lazyfree already":
        sim.madvise("A", 0, 0, "free")
        sim.drain()
    elif state == "unevictable":
        sim.mlock("A")
    return sim, folio


@pytest.mark.parametrize(
    "state, moved, nr",
    [
        pytest.param("active, referenced", True, 1, id="active referenced anon: lazyfree"),
        pytest.param("large", True, 16, id="a 64K folio counts 16 pages"),
        pytest.param("swapcache", False, 0, id="in the swap cache: skipped"),
        pytest.param("lazyfree already", False, 0, id="not swapbacked: skipped"),
        pytest.param("unevictable", False, 0, id="unevictable: skipped"),
    ],
)
def test_lru_lazyfree(state: str, moved: bool, nr: int):
    """lru_lazyfree(), mm/swap.c, Linux 6.18: an anon, swapbacked folio neither in the swap
    cache nor unevictable loses PG_active, PG_referenced and PG_swapbacked; PGLAZYFREE += nr."""
    sim, folio = _lazyfree_candidate(state)
    before = sim.flags(folio)
    counted = sim.vmstat("pglazyfree")
    lru.lru_lazyfree(sim.m, folio)
    after = sim.flags(folio)
    if moved:
        assert before & (PG_active | PG_referenced | PG_swapbacked) == (
            PG_active | PG_referenced | PG_swapbacked
        )
        assert not after & (PG_active | PG_referenced | PG_swapbacked)
        assert after & ~(PG_active | PG_referenced | PG_swapbacked) == before & ~(
            PG_active | PG_referenced | PG_swapbacked
        )
    else:
        assert after == before
    assert sim.vmstat("pglazyfree") - counted == nr


@pytest.mark.parametrize(
    "state, queued",
    [
        pytest.param("active, referenced", True, id="swapbacked LRU folio: queued"),
        pytest.param("swapcache", False, id="in the swap cache: not queued"),
        pytest.param("lazyfree already", False, id="not swapbacked: not queued"),
        pytest.param("unevictable", False, id="unevictable: not queued"),
    ],
)
def test_folio_mark_lazyfree_queues_only_what_lru_lazyfree_would_move(state: str, queued: bool):
    """folio_mark_lazyfree(), mm/swap.c, Linux 6.18: the same tests as lru_lazyfree() plus
    folio_test_lru()."""
    sim, folio = _lazyfree_candidate(state)
    lru.folio_mark_lazyfree(sim.m, folio)
    assert (folio in sim.m.fbatches["lru_lazyfree"]) == queued


def test_folio_mark_lazyfree_skips_a_folio_not_yet_on_an_lru():
    """folio_mark_lazyfree(), mm/swap.c, Linux 6.18: !folio_test_lru() -> return."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)  # still in lru_add: PG_lru clear
    folio = sim.folio("A", 0)
    lru.folio_mark_lazyfree(sim.m, folio)
    assert sim.m.fbatches["lru_lazyfree"] == []


# --- folio_mark_accessed(): the two-step activation ----------------------------------


@pytest.mark.parametrize(
    "start, calls, active, referenced, queued_for_activation",
    [
        pytest.param("inactive", 1, False, True, False, id="inactive,unreferenced -> referenced"),
        pytest.param(
            "inactive",
            2,
            False,
            False,
            True,
            id="inactive,referenced -> queued in lru_activate, referenced cleared",
        ),
        pytest.param("active", 1, True, True, False, id="active,unreferenced -> active,referenced"),
        pytest.param("active", 2, True, True, False, id="active,referenced: unchanged"),
        pytest.param(
            "in lru_add",
            2,
            True,
            False,
            False,
            id="still in lru_add: PG_active set at once (__lru_cache_activate_folio)",
        ),
        pytest.param("unevictable", 2, False, True, False, id="unevictable,referenced: no effect"),
    ],
)
def test_folio_mark_accessed(
    start: str, calls: int, active: bool, referenced: bool, queued_for_activation: bool
):
    """folio_mark_accessed(), mm/swap.c, Linux 6.18 (non-MGLRU): inactive,unreferenced ->
    inactive,referenced -> active,unreferenced; active,unreferenced -> active,referenced."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    folio = sim.folio("A", 0)
    if start != "in lru_add":
        sim.drain()
    if start == "active":
        lru.folio_activate(sim.m, folio)
        sim.drain()
    elif start == "unevictable":
        sim.mlock("A")
    for _ in range(calls):
        lru.folio_mark_accessed(sim.m, folio)
    f = sim.flags(folio)
    assert (bool(f & PG_active), bool(f & PG_referenced)) == (active, referenced)
    assert (folio in sim.m.fbatches["lru_activate"]) == queued_for_activation


def test_the_activation_folio_mark_accessed_queued_is_applied_at_the_drain():
    """lru_activate(), mm/swap.c, Linux 6.18: PG_active set, PGACTIVATE += nr, at the drain."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    lru.folio_mark_accessed(sim.m, folio)
    lru.folio_mark_accessed(sim.m, folio)
    assert not sim.flags(folio) & PG_active
    sim.drain()
    assert sim.flags(folio) & PG_active
    assert sim.vmstat("pgactivate") == 1


# --- folio_deactivate() ---------------------------------------------------------------


@pytest.mark.parametrize(
    "start, queued",
    [
        pytest.param("active", True, id="active LRU folio: queued"),
        pytest.param("inactive", False, id="inactive: not queued"),
        pytest.param("unevictable", False, id="unevictable: not queued"),
    ],
)
def test_folio_deactivate(start: str, queued: bool):
    """folio_deactivate(), mm/swap.c, Linux 6.18: only an evictable, active LRU folio is queued."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    if start == "active":
        lru.folio_activate(sim.m, folio)
        sim.drain()
    elif start == "unevictable":
        lru.folio_activate(sim.m, folio)
        sim.drain()
        sim.mlock("A")
    lru.folio_deactivate(sim.m, folio)
    assert (folio in sim.m.fbatches["lru_deactivate"]) == queued
    sim.drain()
    assert sim.vmstat("pgdeactivate") == (1 if queued else 0)


# --- lru_add_drain(): every batch, in lru_add_drain_cpu()'s order ---------------------


@pytest.mark.parametrize(
    "start, queue, active, swapbacked, pgdeactivate",
    [
        # lru_deactivate runs before lru_lazyfree: the deactivation is counted.
        pytest.param(
            "active",
            ("deactivate", "lazyfree"),
            False,
            False,
            1,
            id="deactivate drained before lazyfree",
        ),
        # lru_lazyfree runs before folio_activate_drain(): the folio ends active.
        pytest.param(
            "inactive",
            ("lazyfree", "activate"),
            True,
            False,
            0,
            id="lazyfree drained before activate",
        ),
    ],
)
def test_lru_add_drain_order(
    start: str, queue: tuple[str, ...], active: bool, swapbacked: bool, pgdeactivate: int
):
    """lru_add_drain() -> lru_add_drain_cpu(), mm/swap.c, Linux 6.18: lru_add,
    lru_move_tail, lru_deactivate_file, lru_deactivate, lru_lazyfree, then
    folio_activate_drain().  Queueing leaves PG_lru set, so one folio can sit in
    several batches and the drain order decides the outcome."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    if start == "active":
        lru.folio_activate(sim.m, folio)
        sim.drain()
    for q in queue:
        {
            "deactivate": lru.folio_deactivate,
            "lazyfree": lru.folio_mark_lazyfree,
            "activate": lru.folio_activate,
        }[q](sim.m, folio)
    assert sim.refcount(folio) == 1 + len(queue)  # each batch holds a reference
    sim.drain()
    f = sim.flags(folio)
    assert (bool(f & PG_active), bool(f & PG_swapbacked)) == (active, swapbacked)
    assert sim.vmstat("pgdeactivate") == pgdeactivate
    assert sim.vmstat("pglazyfree") == 1
    assert all(not batch for batch in sim.m.fbatches.values())
    assert sim.refcount(folio) == 1
    sim.validate()


def test_folio_batch_move_lru_skips_a_folio_that_left_its_lru():
    """folio_batch_move_lru(), mm/swap.c, Linux 6.18: move_fn != lru_add &&
    !folio_test_clear_lru() -> skip (an isolated folio is not moved)."""
    from foliosim.model.vmscan import folio_isolate_lru, folio_putback_lru

    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    lru.folio_mark_lazyfree(sim.m, folio)
    assert folio_isolate_lru(sim.m, folio)
    sim.drain()
    assert sim.flags(folio) & PG_swapbacked  # not made lazyfree
    assert sim.vmstat("pglazyfree") == 0
    folio_putback_lru(sim.m, folio)
    sim.drain()
    assert sim.flags(folio) & PG_lru and not sim.flags(folio) & PG_swapcache
    assert not sim.flags(folio) & PG_unevictable
    sim.validate()
