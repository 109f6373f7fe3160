"""folio_unmap_pte_batch() and the swap-backed branch of try_to_unmap_one(), mm/rmap.c,
Linux 6.18."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import madvise, mmap, rmap, swap, vmscan
from foliosim.model.types import (
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_WRITE,
    VM_NOHUGEPAGE,
    PG_anon_exclusive,
)

# The write and soft-dirty rows: 29f40594a281 ("mm/rmap: fix incorrect pte restoration
# for lazyfree folios", Dev Jain), in 6.18.y (mm/rmap.c of linux-6.18.35 passes
# FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY to folio_pte_batch_flags()).


def _lazyfree_64k(variant: str) -> tuple[Sim, int]:
    """A 64K lazyfree folio mapped by the 16 PTEs of mapping A (MADV_FREE'd, drained)."""
    sim = Sim(mthp_kb=64)
    sim.mmap("A", 16)
    sim.write("A", *range(16))
    if variant == "write bit differs at 8":
        # fork write-protects every PTE; after the child exits, a store to page 8 reuses
        # the exclusive folio (wp_can_reuse_anon_folio()): only PTE 8 is writable.
        child = sim.fork()
        mmap.exit_mmap(sim.m, child)
        del sim.m.mms[child.name]
        sim.write("A", 8)
    sim.drain()
    sim.madvise("A", 0, 15, "free")
    sim.drain()
    if variant == "soft-dirty differs at 8":
        # The model has no clear_refs: soft-dirty is set by hand, as the first write
        # after `echo 4 > clear_refs` would leave it on one PTE only.
        t, i = sim.table("A", 8)
        t.bits[i] |= PTE_SOFT_DIRTY
    if variant == "VMA ends at 8":
        vma = sim.vma("A")
        # madvise(MADV_NOHUGEPAGE) of pages 8-15: madvise_update_vma() splits the VMA.
        madvise.madvise_update_vma(
            sim.m, vma, None, vma.start + 8, vma.end, vma.flags | VM_NOHUGEPAGE
        )
    sim.validate()
    return sim, sim.folio("A", 0)


@pytest.mark.parametrize(
    "variant, expected",
    [
        pytest.param("plain", 16, id="lazyfree 64K folio: all 16 PTEs"),
        pytest.param("VMA ends at 8", 8, id="the VMA ends at page 8: 8"),
        pytest.param(
            "write bit differs at 8",
            8,
            id="write bit differs at 8: 8",
        ),
        pytest.param(
            "soft-dirty differs at 8",
            8,
            id="soft-dirty differs at 8: 8",
        ),
    ],
)
def test_folio_unmap_pte_batch_of_a_lazyfree_folio(variant: str, expected: int):
    """folio_unmap_pte_batch(), mm/rmap.c, Linux 6.18.y: a lazyfree large folio is unmapped
    in batches bounded by the VMA and the page table (pmd_addr_end()), stopping where the
    write or soft-dirty bit differs."""
    sim, folio = _lazyfree_64k(variant)
    if variant == "write bit differs at 8":
        assert sim.pte("A", 8)[0] & PTE_WRITE and not sim.pte("A", 0)[0] & PTE_WRITE
    vma = sim.vma("A")
    t, i = sim.table("A", 0)
    assert rmap.folio_unmap_pte_batch(sim.m, folio, vma, vma.start, t, i) == expected


@pytest.mark.parametrize(
    "mthp_kb, lazyfree",
    [
        pytest.param(None, True, id="small folio: 1"),
        pytest.param(64, False, id="swap-backed 64K folio: 1 (lazyfree batching only)"),
    ],
)
def test_folio_unmap_pte_batch_is_1_otherwise(mthp_kb, lazyfree: bool):
    """folio_unmap_pte_batch(), mm/rmap.c, Linux 6.18: !folio_test_large() or
    !folio_test_anon() || folio_test_swapbacked() -> 1."""
    sim = Sim(mthp_kb=mthp_kb)
    sim.mmap("A", 16)
    sim.write("A", *range(16))
    sim.drain()
    if lazyfree:
        sim.madvise("A", 0, 15, "free")
        sim.drain()
    vma = sim.vma("A")
    t, i = sim.table("A", 0)
    assert rmap.folio_unmap_pte_batch(sim.m, sim.folio("A", 0), vma, vma.start, t, i) == 1


# --- the swap-backed branch -------------------------------------------------------------


@pytest.mark.parametrize(
    "pinned, unmapped",
    [
        pytest.param(False, True, id="exclusive page: swap PTE with the exclusive bit"),
        pytest.param(
            True, False, id="exclusive and maybe pinned: folio_try_share_anon_rmap_pte() fails"
        ),
    ],
)
def test_try_to_unmap_one_swapbacked(pinned: bool, unmapped: bool):
    """try_to_unmap_one(), mm/rmap.c, Linux 6.18, swap-backed anon folio: swap_duplicate()
    of the page's slot; if PageAnonExclusive, folio_try_share_anon_rmap_pte() (fails when
    folio_maybe_dma_pinned(): swap_free(), restore the PTE, abort); the swap PTE carries
    the exclusive bit."""
    sim = Sim(swap_pages=64)
    sim.mmap("A", 1)
    sim.write("A", 0)
    sim.drain()
    folio = sim.folio("A", 0)
    assert sim.flags(folio) & PG_anon_exclusive
    if pinned:
        sim.pin("A", 0)
    assert vmscan.folio_isolate_lru(sim.m, folio)
    assert swap.folio_alloc_swap(sim.m, folio)
    off = int(sim.m.mem.swap[folio])
    rmap.try_to_unmap(sim.m, folio, rmap.TTU.BATCH_FLUSH)
    bits, pfn = sim.pte("A", 0)
    if unmapped:
        assert (bits & (PTE_SWAP | PTE_SWP_EXCLUSIVE | PTE_PRESENT), pfn) == (
            PTE_SWAP | PTE_SWP_EXCLUSIVE,
            off,
        )
        assert not sim.flags(folio) & PG_anon_exclusive
        assert swap.__swap_count(sim.m, off) == 1
        assert sim.m.mem.mapcount[folio] == 0
    else:
        assert bits & PTE_PRESENT and pfn == folio
        assert sim.flags(folio) & PG_anon_exclusive
        assert swap.__swap_count(sim.m, off) == 0
        assert sim.m.mem.mapcount[folio] == 1
