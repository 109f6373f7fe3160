"""folio_pte_batch(), mm/internal.h and mm/util.c, Linux 6.18: which PTEs form one batch.

folio_pte_batch() is folio_pte_batch_flags(folio, NULL, ptep, &pte, max_nr, 0):
with no FPB_RESPECT_* flag, __pte_batch_clear_ignored() makes every entry clean,
old, write-protected and not soft-dirty before pte_same(), so only the pfn and
the remaining bits (present, special) end a batch; max_nr is first cut to the
pages left in the folio.  The function reads nothing but the page table, so the
rows write their PTEs with set_ptes() into a fresh table; the folio is the one
a 64K mTHP write fault really allocated.
"""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model.internal import folio_evictable, folio_pte_batch
from foliosim.model.rmap import set_ptes
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_WRITE,
    PTE_YOUNG,
    ZERO_PFN,
    PageTable,
    PG_mlocked,
)

NR = 16  # a 64K folio
RW = PTE_PRESENT | PTE_WRITE | PTE_YOUNG | PTE_DIRTY  # a written anon PTE


@pytest.fixture(scope="module")
def folio() -> int:
    sim = Sim(mthp_kb=64)
    sim.mmap("A", NR)
    sim.write("A", 0)
    head = sim.folio("A", 0)
    assert sim.m.mem.order[head] == 4
    return head


# Each row: (first slot, max_nr, changes, batch).  Slots 0..31 start as "PTE k
# maps pfn folio + k, RW": from slot 16 on, consecutive pfns past the folio's
# end.  A change is slot -> (PTE bits, page of the folio, or "other" (a pfn of
# another folio), "zero" (the zero page), "slot" (a swap offset)).
CASES = [
    pytest.param(0, 32, {}, NR, id="all 16 PTEs of the folio: one batch, the folio's end"),
    pytest.param(0, 5, {}, 5, id="max_nr ends the batch"),
    pytest.param(10, 22, {}, NR - 10, id="starting at page 10: the folio's end"),
    pytest.param(0, NR, {7: (RW, 8)}, 7, id="pfn gap: PTE 7 maps page 8"),
    pytest.param(0, NR, {8: (RW, "other")}, 8, id="PTE 8 maps another folio"),
    pytest.param(0, NR, {4: (0, 0)}, 4, id="none PTE at 4"),
    pytest.param(0, NR, {4: (PTE_SWAP, "slot")}, 4, id="swap PTE at 4"),
    pytest.param(0, NR, {4: (PTE_PRESENT | PTE_SPECIAL, "zero")}, 4, id="zero-page PTE at 4"),
    pytest.param(
        0,
        NR,
        {k: (PTE_PRESENT | PTE_WRITE, k) for k in range(3, 9)},
        NR,
        id="young and dirty differ: ignored",
    ),
    # FPB_RESPECT_WRITE / FPB_RESPECT_SOFT_DIRTY are only passed by
    # folio_unmap_pte_batch() (29f40594a281, in 6.18.y): test_rmap.py.
    pytest.param(
        0,
        NR,
        {8: (PTE_PRESENT | PTE_YOUNG | PTE_DIRTY, 8)},
        NR,
        id="write bit differs: ignored without FPB_RESPECT_WRITE",
    ),
    pytest.param(
        0,
        NR,
        {8: (RW | PTE_SOFT_DIRTY, 8)},
        NR,
        id="soft-dirty differs: ignored without FPB_RESPECT_SOFT_DIRTY",
    ),
]


@pytest.mark.parametrize("start, max_nr, changes, expected", CASES)
def test_folio_pte_batch(folio: int, start: int, max_nr: int, changes: dict, expected: int):
    """folio_pte_batch(), mm/util.c -> folio_pte_batch_flags(), mm/internal.h, Linux 6.18."""
    t = PageTable()
    set_ptes(t, 0, RW, folio, 2 * NR)
    special = {"other": folio + 4096, "zero": ZERO_PFN, "slot": 4}
    for k, (bits, page) in changes.items():
        set_ptes(t, k, bits, special[page] if page in special else folio + page, 1)
    assert folio_pte_batch(t, start, folio + start, folio, NR, max_nr) == expected


@pytest.mark.parametrize(
    "mlocked, expected",
    [
        pytest.param(False, True, id="anon folio: evictable"),
        pytest.param(True, False, id="mlocked folio: unevictable"),
    ],
)
def test_folio_evictable(mlocked: bool, expected: bool):
    """folio_evictable(), mm/internal.h, Linux 6.18: an anon folio is unevictable iff mlocked."""
    sim = Sim()
    sim.mmap("A", 1)
    sim.write("A", 0)
    if mlocked:
        sim.mlock("A")
    folio = sim.folio("A", 0)
    assert bool(sim.flags(folio) & PG_mlocked) == mlocked  # the state is what the row says
    assert folio_evictable(sim.m, folio) is expected
