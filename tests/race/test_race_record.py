"""The reclaim thread is recorded from the model's own try_to_unmap_one() / lazyfree_range()."""

from __future__ import annotations

import itertools

import pytest

from foliosim.model import rmap
from foliosim.model.mm import folio_get
from foliosim.model.types import PTE_PRESENT, PG_dirty
from foliosim.race.ir import AddUnless, Fence, If, Let, Read, Write, Xchg, eval_expr
from foliosim.race.record import RecordError, lazyfree_setup, record_reclaim


def _accesses(body):
    out = []
    for s in body:
        if isinstance(s, If):
            break  # the decision: everything before it is straight-line
        out.append(s)
    return out


def test_reclaim_thread_follows_the_kernel_order_clear_mb_refcount_mapcount_rmb_dirty():
    thread, setup, paths = record_reclaim()
    kinds = [
        (type(s).__name__, getattr(s, "loc", getattr(s, "kind", None)))
        for s in _accesses(thread.body)
    ]
    assert kinds == [
        ("Xchg", "pte"),
        ("Fence", "mb"),
        ("Read", "refcount"),
        ("Read", "mapcount"),
        ("Fence", "rmb"),
        ("Read", "pg_dirty"),
    ]
    assert paths == 3  # dirty -> keep; extra reference -> keep; else discard
    assert (setup.refcount, setup.mapcount, setup.dirty) == (2, 1, 0)


@pytest.mark.parametrize("barrier,kind", [("smp_mb", "mb"), ("smp_rmb", "rmb")])
def test_without_a_barrier_drops_exactly_that_fence(barrier, kind):
    thread, _, _ = record_reclaim(without=(barrier,))
    fences = [s.kind for s in _accesses(thread.body) if isinstance(s, Fence)]
    assert fences == [k for k in ("mb", "rmb") if k != kind]


def test_unknown_barrier_is_refused():
    with pytest.raises(ValueError, match="unknown barrier"):
        record_reclaim(without=("smp_wmb",))


def _run_tree(body, regs):
    # Follow the recorded decision on concrete values: discarded?
    for s in body:
        if isinstance(s, If):
            return _run_tree(s.then if eval_expr(s.cond, regs) else s.orelse, regs)
        if isinstance(s, Let) and s.reg == "discarded":
            return bool(s.value)
    return False


@pytest.mark.parametrize("dirty,extra", list(itertools.product([0, 1], [0, 1])))
def test_recorded_decision_agrees_with_the_model_run_on_the_same_values(dirty, extra):
    thread, _, _ = record_reclaim()
    setup = lazyfree_setup()
    m, folio = setup.machine, setup.folio
    if dirty:
        m.mem.flags[folio] |= PG_dirty
    if extra:
        folio_get(m, folio)
    regs = {
        "ref_count": int(m.mem.refcount[folio]),
        "map_count": setup.mapcount,
        "dirty": dirty,
        "pteval": 1,
    }
    rmap.try_to_unmap_one(m, folio, setup.vma, setup.vpn, rmap.TTU.BATCH_FLUSH)
    t = setup.vma.mm.pte_table(setup.vpn)
    model_discarded = not int(t.bits[setup.vpn & 511]) & PTE_PRESENT
    assert model_discarded == (not dirty and not extra)
    assert _run_tree(thread.body, regs) == model_discarded


def _reordered_lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    # A variant that reads PG_dirty before the refcount (and keeps both barriers).
    dirty = rmap.folio_test_dirty(m, folio)
    rmap.smp_mb()
    ref_count = rmap.folio_ref_count(m, folio)
    map_count = rmap.folio_mapcount(m, folio)
    rmap.smp_rmb()
    if dirty or ref_count != 1 + map_count:
        rmap.set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    return True


def test_a_variant_lazyfree_range_is_recorded_in_its_own_order():
    thread, _, _ = record_reclaim(functions={"lazyfree_range": _reordered_lazyfree_range})
    reads = [s.loc for s in _accesses(thread.body) if isinstance(s, Read)]
    assert reads == ["pg_dirty", "refcount", "mapcount"]
    # The decision is still recorded: the folio is discarded on one path only.
    assert rmap.lazyfree_range is not _reordered_lazyfree_range  # restored afterwards


def test_a_variant_that_converts_a_shared_value_to_int_is_refused():
    def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
        return int(rmap.folio_ref_count(m, folio)) == 2

    with pytest.raises(RecordError, match="converts a value read from shared memory"):
        record_reclaim(functions={"lazyfree_range": lazyfree_range})


def test_recording_leaves_the_model_functions_as_they_were():
    before = {
        n: getattr(rmap, n)
        for n in ("get_and_clear_ptes", "set_ptes", "smp_mb", "folio_ref_count", "folio_test_dirty")
    }
    record_reclaim(without=("smp_mb",))
    assert {n: getattr(rmap, n) for n in before} == before


def test_the_restore_writes_back_the_pte_value_the_clear_returned():
    thread, _, _ = record_reclaim()
    clear = _accesses(thread.body)[0]
    assert isinstance(clear, Xchg) and clear.value == 0

    def writes(body):
        for s in body:
            if isinstance(s, Write):
                yield s
            if isinstance(s, If):
                yield from writes(s.then)
                yield from writes(s.orelse)

    restores = list(writes(thread.body))
    assert len(restores) == 2 and all(w.value.name == clear.reg for w in restores)
    assert not any(isinstance(s, AddUnless) for s in thread.body)
