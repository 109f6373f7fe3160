"""foliosim explain: the model functions each scenario line went through."""

from __future__ import annotations

from foliosim.cli.explain import functions_by_line


def test_functions_are_distinct_per_line_in_first_entry_order():
    steps = [(3, "b", ""), (3, "a", ""), (3, "b", ""), (4, "a", ""), (3, "c", "")]
    assert functions_by_line(steps) == {3: ["b", "a", "c"], 4: ["a"]}


def test_explain_lists_functions_under_each_scenario_line(cli, fakes, scn):
    path = scn("e.scn", "mmap A 2\nwrite A all\nobserve\nmadvise A 0 free\n")
    code, out, err = cli("explain", path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "foliosim explain: model (profile linux-6.18)  scenario e.scn",
        "   1 mmap A 2",
        "       do_mmap",
        "   2 write A all",
        "       do_anonymous_page, folio_add_new_anon_rmap",
        "   3 observe",
        "       (no model function traced)",
        "   4 madvise A 0 free",
        "       madvise_free_pte_range",
    ]


def test_explain_messages_show_every_trace_step(cli, fakes, scn):
    path = scn("e.scn", "mmap A 2\nwrite A all\n")
    _code, out, _ = cli("explain", "--messages", path)
    assert "         do_anonymous_page: A page 1" in out.splitlines()


def test_explain_exits_1_when_an_expectation_fails(cli, fakes, scn):
    code, _, _ = cli("explain", scn("e.scn", "mmap A 2\nexpect A 0 present\n"))
    assert code == 1
