"""madvise(2) on anonymous memory: mm/madvise.c, Linux 6.18."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model.errors import SyscallError
from foliosim.model.types import (
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SWAP,
    PTE_YOUNG,
    PG_active,
    PG_dirty,
    PG_referenced,
    PG_swapbacked,
    PG_workingset,
)


def _written(pages: int = 1, swap_pages: int | None = 64) -> Sim:
    sim = Sim(swap_pages=swap_pages)
    sim.mmap("A", 16)
    sim.write("A", *range(pages))
    sim.drain()
    return sim


# --- MADV_FREE ----------------------------------------------------------------------


def test_madv_free_on_a_swap_pte_drops_the_entry():
    """madvise_free_pte_range(), mm/madvise.c, Linux 6.18: a swap PTE is cleared
    (clear_not_present_full_ptes()) and free_swap_and_cache_nr() drops its slot;
    MM_SWAPENTS -= nr.  The next access sees zeroes."""
    sim = _written()
    sim.madvise("A", 0, 0, "pageout")
    bits, off = sim.pte("A", 0)
    assert bits & PTE_SWAP and sim.mm.counters[MM_SWAPENTS] == 1
    sim.madvise("A", 0, 0, "free")
    assert sim.pte("A", 0)[0] == 0
    assert sim.mm.counters[MM_SWAPENTS] == 0
    assert sim.m.swap.swap_map[off] == 0 and sim.m.swap.inuse_pages == 0
    sim.validate()


@pytest.mark.parametrize(
    "gup_dirtied, shared, lazyfree",
    [
        pytest.param(False, False, True, id="exclusive folio: queued for lazyfree"),
        pytest.param(
            True, False, True, id="exclusive PG_dirty folio: PG_dirty cleared, queued for lazyfree"
        ),
        pytest.param(
            True, True, False, id="PG_dirty folio mapped twice (fork): skipped, stays dirty"
        ),
        pytest.param(
            False,
            True,
            True,
            id="folio mapped twice, PG_dirty clear: the mapcount is not asked, lazyfree",
        ),
    ],
)
def test_madv_free_on_a_present_page(gup_dirtied: bool, shared: bool, lazyfree: bool):
    """madvise_free_pte_range(), mm/madvise.c, Linux 6.18: only a folio in the swap cache or
    with PG_dirty must have folio_mapcount() == folio_nr_pages() (else `continue`, PTE
    untouched); the others lose the PTE's young and dirty bits (clear_young_dirty_ptes())
    and go to folio_mark_lazyfree()."""
    sim = _written()
    folio = sim.folio("A", 0)
    if gup_dirtied:
        sim.pin("A", 0)
        sim.unpin()  # unpin_user_pages_dirty_lock(): folio_mark_dirty()
    assert bool(sim.flags(folio) & PG_dirty) is gup_dirtied
    if shared:
        sim.fork()
    sim.madvise("A", 0, 0, "free")
    sim.drain()
    assert (not sim.flags(folio) & PG_swapbacked) is lazyfree
    assert bool(sim.flags(folio) & PG_dirty) is (gup_dirtied and not lazyfree)
    assert sim.vmstat("pglazyfree") == (1 if lazyfree else 0)
    assert bool(sim.pte("A", 0)[0] & (PTE_YOUNG | PTE_DIRTY)) is not lazyfree
    sim.validate()


# --- MADV_COLD ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "active, pgdeactivate",
    [
        pytest.param(True, 1, id="active folio: deactivated, PG_workingset kept"),
        pytest.param(False, 0, id="inactive folio: not deactivated (already inactive)"),
    ],
)
def test_madv_cold_deactivates_only_active_folios(active: bool, pgdeactivate: int):
    """madvise_cold_or_pageout_pte_range(), mm/madvise.c, Linux 6.18: the PTE's young bit
    is cleared, PG_referenced cleared, an active folio gets PG_workingset, then
    folio_deactivate(), which queues only an active folio."""
    from foliosim.model import lru

    sim = _written()
    folio = sim.folio("A", 0)
    lru.folio_mark_accessed(sim.m, folio)
    if active:
        lru.folio_mark_accessed(sim.m, folio)
        sim.drain()
        lru.folio_mark_accessed(sim.m, folio)  # active, referenced
    assert sim.flags(folio) & PG_referenced
    sim.madvise("A", 0, 0, "cold")
    sim.drain()
    f = sim.flags(folio)
    assert not f & (PG_active | PG_referenced)
    assert bool(f & PG_workingset) is active
    assert not sim.pte("A", 0)[0] & PTE_YOUNG
    assert sim.vmstat("pgdeactivate") == pgdeactivate


# --- MADV_PAGEOUT -------------------------------------------------------------------


@pytest.mark.parametrize(
    "shared, swapped",
    [
        pytest.param(False, True, id="mapcount == nr pages: reclaimed"),
        pytest.param(True, False, id="mapped by a child too (mapcount 2): skipped"),
    ],
)
def test_madv_pageout_skips_folios_mapped_elsewhere(shared: bool, swapped: bool):
    """madvise_cold_or_pageout_pte_range(), mm/madvise.c, Linux 6.18: !folio_test_lru() ||
    folio_mapcount(folio) != folio_nr_pages(folio) -> continue."""
    sim = _written()
    if shared:
        sim.fork()
    sim.madvise("A", 0, 0, "pageout")
    bits, _ = sim.pte("A", 0)
    assert bool(bits & PTE_SWAP) is swapped
    assert bool(bits & PTE_PRESENT) is not swapped
    assert sim.vmstat("pswpout") == (1 if swapped else 0)
    sim.validate()


def test_madv_pageout_skips_a_folio_not_on_an_lru():
    """madvise_cold_or_pageout_pte_range(), mm/madvise.c, Linux 6.18: a folio still in
    lru_add is drained first (lru_add_drain() in madvise_vma_behavior's COLD/PAGEOUT
    path), so even a just-faulted folio is on its LRU and reclaimed."""
    sim = Sim(swap_pages=64)
    sim.mmap("A", 1)
    sim.write("A", 0)  # in lru_add, PG_lru clear
    sim.madvise("A", 0, 0, "pageout")
    assert sim.pte("A", 0)[0] & PTE_SWAP


# --- EINVAL on VM_LOCKED -------------------------------------------------------------


@pytest.mark.parametrize(
    "advice, errno",
    [
        pytest.param("free", "EINVAL", id="MADV_FREE on VM_LOCKED: EINVAL"),
        pytest.param("dontneed", "EINVAL", id="MADV_DONTNEED on VM_LOCKED: EINVAL"),
        pytest.param("cold", "EINVAL", id="MADV_COLD on VM_LOCKED: EINVAL (can_madv_lru_vma)"),
        pytest.param("pageout", "EINVAL", id="MADV_PAGEOUT on VM_LOCKED: EINVAL"),
        pytest.param("willneed", None, id="MADV_WILLNEED on VM_LOCKED: allowed"),
    ],
)
def test_madvise_on_a_locked_vma(advice: str, errno):
    """madvise_dontneed_free_valid_vma() (forbidden VM_PFNMAP | VM_LOCKED unless
    MADV_DONTNEED_LOCKED) and can_madv_lru_vma() (!VM_LOCKED|VM_PFNMAP|VM_HUGETLB),
    mm/madvise.c, Linux 6.18."""
    sim = _written()
    sim.mlock("A")
    folio = sim.folio("A", 0)
    if errno is None:
        sim.madvise("A", 0, 0, advice)
    else:
        with pytest.raises(SyscallError) as e:
            sim.madvise("A", 0, 0, advice)
        assert e.value.errno == errno
    # Nothing was done to the page.
    assert sim.folio("A", 0) == folio
    assert sim.pte("A", 0)[0] & PTE_DIRTY
    sim.validate()
