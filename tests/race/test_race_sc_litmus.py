"""SC exploration and the litmus writers, without herd7."""

from __future__ import annotations

import pytest

from foliosim.model import rmap
from foliosim.race import actors, litmus, sc
from foliosim.race.check import build_tests
from foliosim.race.witness import story


@pytest.mark.parametrize("without", [(), ("smp_mb",), ("smp_rmb",), ("smp_mb", "smp_rmb")])
def test_every_interleaving_is_safe_under_sc_with_or_without_barriers(without):
    tests, _ = build_tests(without=without)
    for test in tests:
        result = sc.explore(test)
        assert result.safe, (test.name, result.witness)
        assert result.interleavings > 10 and result.states


def _no_refcount_check(m, vma, folio, t, i, pteval, pfn, nr_pages):
    # A variant that drops the refcount/mapcount reads: only PG_dirty decides.
    rmap.smp_mb()
    rmap.smp_rmb()
    if rmap.folio_test_dirty(m, folio):
        rmap.set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    return True


def test_dropping_the_refcount_check_is_unsafe_even_under_sc_with_a_story():
    tests, _ = build_tests(functions={"lazyfree_range": _no_refcount_check})
    sb = next(t for t in tests if t.name == "lazyfree-gup-fast")
    result = sc.explore(sb)
    assert not result.safe
    steps = story(sb, result.final)
    text = "\n".join(steps)
    assert "CPU 0 (reclaim): the folio is discarded" in text
    assert "CPU 1 (GUP-fast): GUP-fast returns the page to its caller" in text
    assert steps[-1].startswith("Result: reclaim discards the folio while GUP-fast")
    # Without the refcount check reclaim also discards while a GUP user still
    # holds its reference and has not yet set PG_dirty.
    mp = next(t for t in tests if t.name == "lazyfree-gup-put")
    assert not sc.explore(mp).safe


def test_c_litmus_has_the_lkmm_primitives_in_the_model_order():
    tests, _ = build_tests()
    text = litmus.to_c(tests[0], "lkmm", "safe")
    p0 = text.split("P0(")[1].split("P1(")[0]
    order = [
        p0.index(x)
        for x in (
            "xchg_relaxed(pte, 0)",
            "smp_mb()",
            "READ_ONCE(*refcount)",
            "READ_ONCE(*mapcount)",
            "smp_rmb()",
            "READ_ONCE(*pg_dirty)",
        )
    ]
    assert order == sorted(order)
    assert (
        "atomic_add_unless(refcount, 1, 0)" in text and "Expected verdict under lkmm: safe" in text
    )
    assert "exists ((0:discarded=1 /\\ 1:gup_uses=1))" in text


def test_x86_litmus_uses_xchg_and_lock_add_and_no_rmb_instruction():
    tests, _ = build_tests()
    text = litmus.to_x86(tests[1])
    assert "XCHG [pte],EBX" in text and "LOCK; ADD [mb0],$0" in text
    assert "LFENCE" not in text and "LOCK; DEC [refcount]" in text
    text = litmus.to_x86(build_tests(without=("smp_mb",))[0][1])
    assert "LOCK; ADD [mb0]" not in text


def test_arm64_litmus_uses_swp_casal_and_the_dmbs():
    tests, _ = build_tests()
    sb = litmus.to_aarch64(tests[0])
    assert "SWP W9,W0,[X10]" in sb and "DMB ISH " in sb and "DMB ISHLD" in sb
    assert "CASAL" in sb
    relaxed = litmus.to_aarch64(build_tests(without=("gup-fast-ordering",))[0][0])
    assert "CASAL" not in relaxed and "CAS W" in relaxed
    no_rmb = litmus.to_aarch64(build_tests(without=("smp_rmb",))[0][0])
    assert "DMB ISHLD" not in no_rmb and "DMB ISH " in no_rmb


def test_gup_side_tests_are_written_once_for_every_dialect():
    tests, _ = build_tests()
    for test in tests:
        for model in ("lkmm", "x86-tso", "armv8"):
            text = litmus.to_litmus(test, model)
            assert text.count("P1") >= 1 and "exists" in text
    assert actors.gup_fast().body == actors.gup_fast().body
