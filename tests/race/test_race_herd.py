"""herd7 through foliosim's runner: the 79 vendored LKMM tests, then the issue's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from foliosim.race.check import EXPECTED, build_tests, check, judge
from foliosim.race.herd import lkmm_dir
from foliosim.race.runner import expected_observation, parse_output, run_herd

pytestmark = pytest.mark.herd7

LKMM = lkmm_dir()
SUITE = sorted((LKMM / "litmus-tests").glob("*.litmus")) if LKMM else []


def test_the_vendored_suite_has_79_tests_each_with_its_expected_output():
    if LKMM is None:
        pytest.skip("the vendored LKMM files are not found")
    assert len(SUITE) == 79
    assert all(Path(f"{p}.expected").is_file() for p in SUITE)


def test_parser_reads_herd7s_expected_outputs():
    if LKMM is None:
        pytest.skip("the vendored LKMM files are not found")
    sb = LKMM / "litmus-tests" / "C-SB+o-mb-o+o-mb-o.litmus.expected"
    result = parse_output(sb.read_text())
    assert (result.observation, result.positive, result.negative) == ("Never", 0, 3)
    assert {"0:r2": "2", "1:r2": "0"} in result.states and len(result.states) == 3


@pytest.mark.parametrize("path", SUITE, ids=[p.name for p in SUITE])
def test_vendored_lkmm_litmus_test_gets_its_expected_observation(herd7, path):
    result = run_herd(herd7, "lkmm", path)
    assert result.observation == expected_observation(Path(f"{path}.expected"))


CELLS = [(w, m, v) for w, row in EXPECTED.items() for m, v in row.items()]


@pytest.mark.parametrize(
    "without,model,verdict", CELLS, ids=[f"{'+'.join(w) or 'both'}-{m}" for w, m, _ in CELLS]
)
def test_issue_table_cell(herd7, without, model, verdict):
    report = check((model,), without, herd=herd7)
    assert report.verdict(model) == verdict, [o.as_json() for o in report.outcomes]
    for o in report.outcomes:
        assert o.executions > 0
        if not o.safe:
            assert o.witness and o.witness[-1].startswith("Result: ")


def test_without_smp_mb_the_witness_is_store_buffering(herd7):
    report = check(("lkmm",), ("smp_mb",), herd=herd7)
    sb = next(o for o in report.outcomes if o.test.name == "lazyfree-gup-fast")
    mp = next(o for o in report.outcomes if o.test.name == "lazyfree-gup-put")
    assert not sb.safe and mp.safe
    text = "\n".join(sb.witness)
    assert (
        "folio_ref_count() reads folio->_refcount = 2 -- does not see CPU 1's folio_try_get()"
        in text
    )
    assert (
        "ptep_get() reads the PTE = 1 (present) -- does not see CPU 0's get_and_clear_ptes()"
        in text
    )


def test_without_smp_rmb_the_witness_is_message_passing(herd7):
    report = check(("armv8",), ("smp_rmb",), herd=herd7)
    sb = next(o for o in report.outcomes if o.test.name == "lazyfree-gup-fast")
    mp = next(o for o in report.outcomes if o.test.name == "lazyfree-gup-put")
    assert sb.safe and not mp.safe
    text = "\n".join(mp.witness)
    assert "folio_ref_count() reads folio->_refcount = 2" in text
    assert (
        "folio_test_dirty() reads PG_dirty = 0 (clear) -- does not see CPU 1's folio_mark_dirty()"
        in text
    )


@pytest.mark.parametrize(
    "model,verdict", [("sc", "safe"), ("lkmm", "unsafe"), ("x86-tso", "safe"), ("armv8", "unsafe")]
)
def test_a_relaxed_gup_fast_increment(herd7, model, verdict):
    # x86 has no relaxed atomics: LOCK CMPXCHG orders fully whatever the C says.
    assert check((model,), ("gup-fast-ordering",), herd=herd7).verdict(model) == verdict


def test_sc_exploration_agrees_with_herd7s_sc_model(herd7):
    for without in EXPECTED:
        for test in build_tests(without=without)[0]:
            o = judge(test, "sc", herd7)  # raises EnginesDisagree otherwise
            assert o.engine == "foliosim sc + herd7 sc.cat" and o.herd.positive == 0


@pytest.mark.parametrize("without", list(EXPECTED), ids=lambda w: "+".join(w) or "both")
def test_lkmm_verdicts_are_the_same_with_the_generic_plain_pte_clear(herd7, without):
    # include/linux/pgtable.h's generic ptep_get_and_clear(): ptep_get() then
    # pte_clear(), two plain accesses instead of xchg_relaxed().
    from foliosim.race import litmus

    for test in build_tests(without=without)[0]:
        text = litmus.to_c(test).replace(
            "pteval = xchg_relaxed(pte, 0);", "pteval = READ_ONCE(*pte); WRITE_ONCE(*pte, 0);"
        )
        assert "WRITE_ONCE(*pte, 0);" in text
        assert (run_herd(herd7, "lkmm", text).positive == 0) == (judge(test, "lkmm", herd7).safe)
    assert check(("lkmm",), without, herd=herd7).verdict("lkmm") == EXPECTED[without]["lkmm"]


def _dirty_first(m, vma, folio, t, i, pteval, pfn, nr_pages):
    # A variant that moves the PG_dirty read before the refcount read, barriers
    # kept in place: the GUP user's write can fall between the two reads.
    from foliosim.model import rmap

    rmap.smp_mb()
    dirty = rmap.folio_test_dirty(m, folio)
    ref_count = rmap.folio_ref_count(m, folio)
    map_count = rmap.folio_mapcount(m, folio)
    rmap.smp_rmb()
    if dirty or ref_count != 1 + map_count:
        rmap.set_ptes(t, i, pteval, pfn, nr_pages)
        return False
    return True


@pytest.mark.parametrize("model", ["sc", "lkmm", "x86-tso", "armv8"])
def test_a_variant_reading_pg_dirty_first_loses_a_gup_write_under_every_model(herd7, model):
    report = check((model,), (), herd=herd7, functions={"lazyfree_range": _dirty_first})
    verdicts = {o.test.name: o.safe for o in report.outcomes}
    assert verdicts == {"lazyfree-gup-fast": True, "lazyfree-gup-put": False}
