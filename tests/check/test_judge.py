"""Judge: one scenario text on real model backends, compared, with and without known differences."""

from __future__ import annotations

from foliosim.check.judge import CRASH, DIFFERS, EXPLAINED, INVALID, SAME, Judge, parses
from foliosim.check.known import KnownDifference
from foliosim.model.backend import ModelBackend
from foliosim.variants import VariantBackend, load_variant

# The reverted fix's own scenario: a clean lazyfree page held by a GUP reference
# meets reclaim; before faeb2831b517 (v6.15) it was made swapbacked again.
GUP_LAZYFREE = "mmap A 1\nwrite A 0\nmadvise A 0 free\ngup A 0 as r\nmadvise A 0 pageout\n"


def _pair():
    return [
        ("linux-6.18", ModelBackend("linux-6.18")),
        ("revert", VariantBackend(load_variant("pre-6.15-swapbacked"))),
    ]


def test_two_profiles_that_differ_give_a_difference_with_its_kinds():
    o = Judge(_pair()).judge(GUP_LAZYFREE, "t.scn")
    assert o.kind == DIFFERS and o.is_failure
    assert "flag swapbacked on b only" in o.signature
    assert o.headline().startswith("final, p0 A page 0 flags: linux-6.18 said [")
    assert o.headline().endswith(" (+1 more)")  # and smaps LazyFree
    assert set(o.observations) == {"linux-6.18", "revert"}


def test_a_known_difference_is_explained_not_a_failure():
    everything = KnownDifference("all", "for this test", lambda d, scenario: True)
    o = Judge(_pair(), known=[everything]).judge(GUP_LAZYFREE, "t.scn")
    assert o.kind == EXPLAINED and not o.is_failure
    assert o.explained and all(k is everything for _, k in o.explained)


def test_where_the_profiles_agree_the_outcome_is_same():
    o = Judge(_pair()).judge("mmap A 2\nwrite A all\nmadvise A all pageout\n", "t.scn")
    assert (o.kind, o.unexplained, o.explained) == (SAME, [], [])


def test_text_the_parser_refuses_is_invalid_with_its_reason():
    o = Judge(_pair()).judge("write B 0\n", "t.scn")
    assert o.kind == INVALID and "unknown mapping 'B'" in o.error
    assert not parses("write B 0\n") and parses("mmap B 1\nwrite B 0\n")


def test_an_exception_of_one_backend_is_a_crash_named_by_backend():
    class Broken(ModelBackend):
        def run(self, scenario, trace=None, final=True):
            raise RuntimeError("line 2: oops 17")

    o = Judge([("model", Broken())]).judge("mmap A 1\n", "t.scn")
    assert o.kind == CRASH and o.error == "model raised RuntimeError: line 2: oops 17"
    assert o.signature == {"model RuntimeError: oops N"}
