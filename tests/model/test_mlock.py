"""mlock_folio(), munlock_folio() and the per-CPU mlock batch: mm/mlock.c, Linux 6.18."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import lru, mlock
from foliosim.model.machine import FOLIO_BATCH_SIZE
from foliosim.model.types import (
    VM_DROPPABLE,
    VM_LOCKED,
    PG_active,
    PG_lru,
    PG_mlocked,
    PG_unevictable,
)


def _lru_folio(active: bool = False, mthp_kb: int | None = None, pages: int = 1):
    sim = Sim(mthp_kb=mthp_kb)
    sim.mmap("A", 16)
    sim.write("A", *range(pages))
    sim.drain()
    folio = sim.folio("A", 0)
    if active:
        lru.folio_activate(sim.m, folio)
        sim.drain()
    return sim, folio


@pytest.mark.parametrize(
    "active, mthp_kb, nr, queued",
    [
        pytest.param(False, None, 1, True, id="small inactive folio: queued in the mlock batch"),
        pytest.param(True, None, 1, True, id="small active folio: queued"),
        pytest.param(False, 64, 16, False, id="64K folio: the batch is moved at once"),
    ],
)
def test_mlock_folio(active: bool, mthp_kb, nr: int, queued: bool):
    """mlock_folio(), mm/mlock.c, Linux 6.18: folio_test_set_mlocked() counts
    UNEVICTABLE_PGMLOCKED once; the batch (moved at once for a large folio,
    !folio_may_be_lru_cached()) runs __mlock_folio(): PG_active cleared,
    PG_unevictable set, UNEVICTABLE_PGCULLED."""
    sim, folio = _lru_folio(active, mthp_kb, nr)
    mlock.mlock_folio(sim.m, folio)
    assert sim.flags(folio) & PG_mlocked
    assert sim.vmstat("unevictable_pgs_mlocked") == nr
    assert (len(sim.m.mlock_fbatch) == 1) is queued
    assert bool(sim.flags(folio) & PG_unevictable) is not queued
    sim.drain()  # lru_add_drain() -> mlock_drain_local()
    f = sim.flags(folio)
    assert f & PG_unevictable and f & PG_lru and not f & PG_active
    assert sim.vmstat("unevictable_pgs_culled") == nr
    sim.validate()


def test_mlock_folio_counts_an_already_mlocked_folio_once():
    """mlock_folio(), mm/mlock.c, Linux 6.18: only the 0 -> 1 change of PG_mlocked counts."""
    sim, folio = _lru_folio()
    mlock.mlock_folio(sim.m, folio)
    mlock.mlock_folio(sim.m, folio)
    assert sim.vmstat("unevictable_pgs_mlocked") == 1
    sim.drain()
    assert sim.vmstat("unevictable_pgs_culled") == 1  # the second __mlock_folio() finds it culled


@pytest.mark.parametrize(
    "folios, queued",
    [
        pytest.param(FOLIO_BATCH_SIZE - 1, FOLIO_BATCH_SIZE - 1, id="30 folios: all queued"),
        pytest.param(FOLIO_BATCH_SIZE, 0, id="the 31st fills the batch: all moved"),
    ],
)
def test_the_mlock_batch_moves_when_full(folios: int, queued: int):
    """mlock_folio(), mm/mlock.c, Linux 6.18: !folio_batch_add() -> mlock_folio_batch()."""
    sim = Sim()
    sim.mmap("A", 40)
    sim.write("A", *range(folios))
    sim.drain()
    for k in range(folios):
        mlock.mlock_folio(sim.m, sim.folio("A", k))
    assert len(sim.m.mlock_fbatch) == queued
    assert sim.vmstat("unevictable_pgs_culled") == folios - queued


def test_munlock_folio_of_an_unevictable_folio_waits_in_the_batch():
    """munlock_folio(), mm/mlock.c, Linux 6.18: queued; the batch's __munlock_folio()
    clears PG_mlocked (UNEVICTABLE_PGMUNLOCKED, the folio was isolated) and, now
    evictable, PG_unevictable (UNEVICTABLE_PGRESCUED)."""
    sim, folio = _lru_folio()
    mlock.mlock_folio(sim.m, folio)
    sim.drain()
    assert sim.flags(folio) & PG_unevictable
    mlock.munlock_folio(sim.m, folio)
    assert len(sim.m.mlock_fbatch) == 1
    assert sim.flags(folio) & PG_mlocked
    sim.drain()
    f = sim.flags(folio)
    assert not f & (PG_mlocked | PG_unevictable) and f & PG_lru
    assert (sim.vmstat("unevictable_pgs_munlocked"), sim.vmstat("unevictable_pgs_rescued")) == (
        1,
        1,
    )
    sim.validate()


@pytest.mark.xfail(
    strict=True,
    reason="model: munlock_folio() drains the mlock batch at once for a folio without "
    "PG_unevictable (force=not PG_unevictable); munlock_folio(), mm/mlock.c, 6.18.y "
    "drains only when the batch is full, the folio is large or the LRU cache is disabled",
)
def test_munlock_folio_of_an_evictable_folio_waits_in_the_batch_too():
    """munlock_folio(), mm/mlock.c, Linux 6.18: folio_get(); if (!folio_batch_add() ||
    !folio_may_be_lru_cached() || lru_cache_disabled()) mlock_folio_batch(): a small
    folio is queued whatever its flags."""
    sim, folio = _lru_folio()
    mlock.mlock_folio(sim.m, folio)  # PG_mlocked, queued: not culled yet
    assert not sim.flags(folio) & PG_unevictable
    mlock.munlock_folio(sim.m, folio)
    assert len(sim.m.mlock_fbatch) == 2


def test_mlock_vma_pages_range_mlocks_present_folios_and_munlock_reverses_it():
    """mlock_vma_pages_range() -> mlock_pte_range(), mm/mlock.c, Linux 6.18: every present
    folio of the range is mlocked, and munlocked when VM_LOCKED is cleared."""
    sim = Sim()
    sim.mmap("A", 4)
    sim.write("A", 0, 2)
    sim.read("A", 1)  # the zero page: not a normal folio, skipped
    sim.mlock("A")
    vma = sim.vma("A")
    locked = [
        k for k in range(4) if sim.pte("A", k)[0] and sim.flags(sim.folio("A", k)) & PG_mlocked
    ]
    assert locked == [0, 2]
    assert sim.vmstat("unevictable_pgs_mlocked") == 2
    mlock.mlock_vma_pages_range(sim.m, vma, vma.start, vma.end, vma.flags & ~VM_LOCKED)
    assert not any(sim.flags(sim.folio("A", k)) & (PG_mlocked | PG_unevictable) for k in (0, 2))
    assert sim.vmstat("unevictable_pgs_munlocked") == 2
    sim.validate()


@pytest.mark.parametrize(
    "droppable, mlockable",
    [
        pytest.param(False, True, id="private anonymous VMA: mlockable"),
        pytest.param(True, False, id="MAP_DROPPABLE (VM_DROPPABLE): not mlockable"),
    ],
)
def test_vma_is_mlockable(droppable: bool, mlockable: bool):
    """vma_supports_mlock(), mm/internal.h, Linux 6.18: VM_SPECIAL | VM_DROPPABLE refuse
    VM_LOCKED (mlock_fixup() leaves such VMAs alone)."""
    sim = Sim()
    vma = sim.mmap("A", 1, droppable=droppable)
    assert bool(vma.flags & VM_DROPPABLE) is droppable
    assert mlock.vma_is_mlockable(vma) is mlockable
