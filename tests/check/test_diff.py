"""diff_observations: every disagreement found, located, collapsed; nothing skipped."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foliosim import observation
from foliosim.check.diff import (
    MISSING,
    Difference,
    diff_observations,
    format_difference,
    format_differences,
)
from foliosim.scenario import ast


def _page(state: str = "present", flags: tuple[str, ...] = ("anon", "swapbacked")) -> dict:
    if state != "present":
        return {"state": state, "exclusive": False, "soft_dirty": False}
    return {
        "state": "present",
        "exclusive": True,
        "soft_dirty": True,
        "order": 0,
        "mapcount": 1,
        "flags": list(flags),
    }


def _state(npages: int = 8) -> dict[str, Any]:
    return {
        "vmstat": {k: 0 for k in observation.VMSTAT_KEYS},
        "mthp": {
            s: {k: 0 for k in observation.MTHP_STAT_KEYS} for s in observation.MTHP_SIZE_NAMES
        },
        "procs": {
            "p0": {
                "maps": {
                    "A": {
                        "smaps": {k: 0 for k in observation.SMAPS_KEYS},
                        "pages": [_page() for _ in range(npages)],
                    }
                }
            }
        },
    }


def _obs(backend: str = "model") -> dict[str, Any]:
    be = (
        {"name": "model", "profile": "linux-6.18"}
        if backend == "model"
        else {"name": "kernel", "release": "6.18.44"}
    )
    return {
        "format": observation.FORMAT,
        "scenario": "t.scn",
        "backend": be,
        "events": [
            {"line": 3, "proc": "p0", "op": "read", "map": "A", "data": ["w2"] * 4},
            {"line": 9, "proc": "p0", "op": "observe", "label": "after", "state": _state()},
            {
                "line": 10,
                "proc": "p0",
                "op": "expect",
                "text": "expect A 0-3 present",
                "ok": True,
                "got": ["present"] * 4,
            },
        ],
        "final": _state(),
    }


def test_identical_observations_of_different_backends_have_no_difference():
    assert diff_observations(_obs("model"), _obs("kernel")) == []


def test_changed_page_flag_on_consecutive_pages_collapses_into_one_range():
    a, b = _obs("model"), _obs("kernel")
    for i in range(4):
        b["events"][1]["state"]["procs"]["p0"]["maps"]["A"]["pages"][i]["flags"] = ["anon"]
    diffs = diff_observations(a, b)
    assert diffs == [
        Difference(9, "observe", "p0", "A", (0, 3), "flags", ["anon", "swapbacked"], ["anon"])
    ]
    assert format_differences(diffs, "model", "kernel") == (
        "line 9 observe, p0 A page 0-3 flags: model said [anon, swapbacked], kernel said [anon]\n"
    )


def test_page_differences_split_where_pages_or_values_stop_matching():
    a, b = _obs(), _obs()
    pages = b["final"]["procs"]["p0"]["maps"]["A"]["pages"]
    pages[0]["mapcount"] = 2
    pages[1]["mapcount"] = 2
    pages[2]["mapcount"] = 3  # same field, other value: a new range
    pages[5]["mapcount"] = 2  # not adjacent: a new range
    got = [(d.pages, d.field, d.b) for d in diff_observations(a, b)]
    assert got == [((0, 1), "mapcount", 2), ((2, 2), "mapcount", 3), ((5, 5), "mapcount", 2)]


def test_field_missing_on_one_side_is_a_difference_not_skipped():
    a, b = _obs("model"), _obs("kernel")
    del a["final"]["procs"]["p0"]["maps"]["A"]["pages"][6]["soft_dirty"]
    del a["final"]["vmstat"]["pswpin"]
    diffs = diff_observations(a, b)
    assert [(d.field, d.a, d.b) for d in diffs] == [
        ("soft_dirty", MISSING, True),
        ("vmstat pswpin", MISSING, 0),
    ]
    lines = format_differences(diffs, "model", "kernel").splitlines()
    assert lines == [
        "final, p0 A page 6 soft_dirty: missing on model, kernel said true",
        "final, vmstat pswpin: missing on model, kernel said 0",
    ]


def test_mapping_present_on_one_side_only_is_reported():
    a, b = _obs(), _obs()
    b["final"]["procs"]["p0"]["maps"]["B"] = copy.deepcopy(b["final"]["procs"]["p0"]["maps"]["A"])
    (d,) = diff_observations(a, b)
    assert (d.line, d.proc, d.mapping, d.field, d.a) == (None, "p0", "B", "mapping", MISSING)


def test_shorter_page_list_reports_the_missing_pages_as_one_range():
    a, b = _obs(), _obs()
    del b["final"]["procs"]["p0"]["maps"]["A"]["pages"][5:]
    (d,) = diff_observations(a, b)
    assert (d.pages, d.field, d.a, d.b) == ((5, 7), "page", "present", MISSING)


def test_event_key_difference_names_line_proc_op_and_key():
    a, b = _obs(), _obs()
    b["events"][2]["ok"] = False
    (d,) = diff_observations(a, b)
    assert (
        format_difference(d, "model", "kernel")
        == "line 10 expect, p0 ok: model said true, kernel said false"
    )


def test_extra_event_on_one_side_is_reported():
    a, b = _obs(), _obs()
    b["events"].append({"line": 11, "proc": "p0", "op": "madvise", "map": "A", "error": "EINVAL"})
    (d,) = diff_observations(a, b)
    assert (d.line, d.op, d.field, d.a, d.b) == (11, "madvise", "event", MISSING, "madvise event")


def test_read_data_difference_is_placed_at_page_indexes_with_the_scenario():
    scenario = ast.Scenario("t.scn", (ast.Read(3, "p0", "read A 4-7", "A", ((4, 7),)),))
    a, b = _obs(), _obs()
    b["events"][0]["data"][2:] = ["zero", "zero"]
    (d,) = diff_observations(a, b, scenario)
    assert (d.pages, d.field, d.a, d.b) == ((6, 7), "data", "w2", "zero")
    (d,) = diff_observations(a, b)  # without it: list positions, and it says so
    assert (d.pages, d.field) == ((2, 3), "data item")


def test_mthp_counter_difference_names_the_size():
    a, b = _obs(), _obs()
    b["final"]["mthp"]["64K"]["swpout"] = 1
    (d,) = diff_observations(a, b)
    assert (
        format_difference(d, "model", "kernel")
        == "final, mthp 64K swpout: model said 0, kernel said 1"
    )


_FIELDS = {
    "state": st.sampled_from(["swap", "none"]),
    "order": st.integers(1, 9),
    "mapcount": st.integers(2, 9),
    "flags": st.just(["anon"]),
    "exclusive": st.just(False),
}


@given(page=st.integers(0, 7), field=st.sampled_from(sorted(_FIELDS)), data=st.data())
def test_one_changed_page_field_gives_exactly_one_difference_there(page, field, data):
    a, b = _obs(), _obs()
    value = data.draw(_FIELDS[field])
    b["final"]["procs"]["p0"]["maps"]["A"]["pages"][page][field] = value
    diffs = diff_observations(a, b)
    assert [(d.pages, d.field, d.b) for d in diffs] == [((page, page), field, value)]
    assert diff_observations(b, b) == []
