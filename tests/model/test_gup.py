"""get_user_pages and pins: mm/gup.c and folio_maybe_dma_pinned(), include/linux/mm.h,
Linux 6.18."""

from __future__ import annotations

import pytest
from helpers import Sim

from foliosim.model import gup, lru
from foliosim.model.mm import GUP_PIN_COUNTING_BIAS, folio_maybe_dma_pinned
from foliosim.model.types import PTE_DIRTY, PG_active, PG_dirty, PG_referenced


def _mapped(mthp_kb: int | None = None) -> tuple[Sim, int]:
    sim = Sim(mthp_kb=mthp_kb)
    sim.mmap("A", 16)
    sim.write("A", *range(16 if mthp_kb else 1))
    sim.drain()
    return sim, sim.folio("A", 0)


@pytest.mark.parametrize(
    "mthp_kb, page, refs",
    [
        pytest.param(None, 0, 3, id="small folio: refs on the folio"),
        pytest.param(64, 5, 2, id="tail page of a 64K folio: refs on its folio"),
    ],
)
def test_try_grab_folio_foll_get(mthp_kb, page: int, refs: int):
    """try_grab_folio(FOLL_GET), mm/gup.c, Linux 6.18: folio_ref_add(folio, refs) on the
    folio of the page; no pin is recorded."""
    sim, folio = _mapped(mthp_kb)
    before = sim.refcount(folio)
    gup.try_grab_folio(sim.m, folio + page, refs)
    assert sim.refcount(folio) == before + refs
    assert sim.refcount(folio + page) == (before + refs if page == 0 else 0)
    assert not folio_maybe_dma_pinned(sim.m, folio)


@pytest.mark.parametrize(
    "mthp_kb, added, pincount",
    [
        pytest.param(
            None, GUP_PIN_COUNTING_BIAS, 0, id="small folio: GUP_PIN_COUNTING_BIAS references"
        ),
        pytest.param(64, 1, 1, id="large folio: one reference and _pincount 1"),
    ],
)
def test_pin_takes_the_bias_on_small_folios_and_pincount_on_large(
    mthp_kb, added: int, pincount: int
):
    """try_grab_folio(FOLL_PIN), mm/gup.c, Linux 6.18: folio_has_pincount() (a large folio)
    -> folio_ref_add(refs) and _pincount += refs; else refs * GUP_PIN_COUNTING_BIAS.
    unpin_user_pages_dirty_lock() undoes it and marks the folio dirty."""
    sim, folio = _mapped(mthp_kb)
    before = sim.refcount(folio)
    sim.pin("A", 3 if mthp_kb else 0)
    assert sim.refcount(folio) == before + added
    assert sim.m.pincount.get(folio, 0) == pincount
    assert folio_maybe_dma_pinned(sim.m, folio)
    assert sim.mm.has_pinned  # MMF_HAS_PINNED
    assert not sim.flags(folio) & PG_dirty  # FOLL_WRITE on a dirty PTE leaves the folio
    sim.unpin()
    assert sim.refcount(folio) == before
    assert not folio_maybe_dma_pinned(sim.m, folio)
    assert sim.flags(folio) & PG_dirty  # make_dirty
    sim.validate()


@pytest.mark.parametrize(
    "mthp_kb, get_refs, pinned",
    [
        pytest.param(None, 0, False, id="small folio, mapped once: not pinned"),
        pytest.param(
            None, GUP_PIN_COUNTING_BIAS - 2, False, id="small folio, refcount 1023: not pinned"
        ),
        pytest.param(
            None,
            GUP_PIN_COUNTING_BIAS - 1,
            True,
            id="small folio, 1024 plain references: a false positive",
        ),
        pytest.param(
            64,
            2 * GUP_PIN_COUNTING_BIAS,
            False,
            id="large folio, many references but _pincount 0: not pinned",
        ),
    ],
)
def test_folio_maybe_dma_pinned(mthp_kb, get_refs: int, pinned: bool):
    """folio_maybe_dma_pinned(), include/linux/mm.h, Linux 6.18: a large folio has an exact
    _pincount; a small one is "maybe pinned" at refcount >= GUP_PIN_COUNTING_BIAS."""
    sim, folio = _mapped(mthp_kb)
    gup.try_grab_folio(sim.m, folio, get_refs)
    assert folio_maybe_dma_pinned(sim.m, folio) is pinned


@pytest.mark.parametrize(
    "start, write, touch, referenced, queued, dirty",
    [
        pytest.param("clean", False, False, False, False, False, id="no FOLL_TOUCH: no effect"),
        pytest.param(
            "clean",
            False,
            True,
            True,
            False,
            False,
            id="FOLL_TOUCH: folio_mark_accessed() sets PG_referenced",
        ),
        pytest.param(
            "referenced",
            False,
            True,
            False,
            True,
            False,
            id="FOLL_TOUCH on a referenced folio: queued for activation",
        ),
        pytest.param(
            "clean",
            True,
            True,
            True,
            False,
            True,
            id="FOLL_WRITE|FOLL_TOUCH, clean PTE and folio: folio_mark_dirty()",
        ),
        pytest.param(
            "dirty pte",
            True,
            True,
            True,
            False,
            False,
            id="FOLL_WRITE|FOLL_TOUCH, dirty PTE: the folio is left clean",
        ),
    ],
)
def test_follow_page_pte_foll_touch(
    start: str, write: bool, touch: bool, referenced: bool, queued: bool, dirty: bool
):
    """follow_page_pte(), mm/gup.c, Linux 6.18: with FOLL_TOUCH, FOLL_WRITE and
    !pte_dirty() and !folio_test_dirty() -> folio_mark_dirty(); then folio_mark_accessed()."""
    sim, folio = _mapped()
    if start == "clean":
        # MADV_FREE: clean PTE (still writable), clean folio.
        sim.madvise("A", 0, 0, "free")
        sim.drain()
    elif start == "referenced":
        lru.folio_mark_accessed(sim.m, folio)
    bits, _ = sim.pte("A", 0)
    assert bool(bits & PTE_DIRTY) is (start != "clean")
    assert not sim.flags(folio) & PG_dirty
    vma = sim.vma("A")
    assert gup.follow_page_pte(sim.m, vma, vma.start, write, touch) == folio
    f = sim.flags(folio)
    assert (bool(f & PG_referenced), folio in sim.m.fbatches["lru_activate"]) == (
        referenced,
        queued,
    )
    assert bool(f & PG_dirty) is dirty
    assert not f & PG_active


@pytest.mark.parametrize(
    "state, write, expected",
    [
        pytest.param("none", False, -1, id="none PTE: -1, a fault is needed"),
        pytest.param("zero page", False, 0, id="zero-page PTE, read: the zero page"),
        pytest.param("zero page", True, -1, id="zero-page PTE, write: -1 (break COW first)"),
        pytest.param("written", True, "folio", id="writable PTE, write: the page"),
    ],
)
def test_follow_page_pte_results(state: str, write: bool, expected):
    """follow_page_pte(), mm/gup.c, Linux 6.18: no page for a none PTE; FOLL_WRITE needs
    can_follow_write_pte() (a writable PTE); the zero page is returned for reads."""
    sim = Sim()
    sim.mmap("A", 1)
    if state == "zero page":
        sim.read("A", 0)
    elif state == "written":
        sim.write("A", 0)
    vma = sim.vma("A")
    page = gup.follow_page_pte(sim.m, vma, vma.start, write, touch=False)
    assert page == (sim.folio("A", 0) if expected == "folio" else expected)
