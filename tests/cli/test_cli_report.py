"""The terminal report: strips, collapsed /proc-like dumps, scaled sizes."""

from __future__ import annotations

from foliosim.cli.report import (
    CATEGORIES,
    MIXED,
    classify_page,
    collapse,
    format_kb,
    mapping_lines,
    page_strip,
    values_by_page,
)
from foliosim.scenario import ast


def _present(*flags):
    return {
        "state": "present",
        "exclusive": True,
        "soft_dirty": False,
        "order": 0,
        "mapcount": 1,
        "flags": sorted(flags),
    }


NONE = {"state": "none", "exclusive": False, "soft_dirty": False}
SWAP = {"state": "swap", "exclusive": True, "soft_dirty": False}


def test_pages_are_classified_by_state_then_flags():
    assert classify_page(NONE) == "none"
    assert classify_page(SWAP) == "swap"
    assert classify_page(_present("zero_page", "reserved")) == "zero"
    assert classify_page(_present("anon", "uptodate")) == "lazyfree"
    assert classify_page(_present("anon", "dirty", "uptodate")) == "lazyfree_dirty"
    assert classify_page(_present("anon", "dirty", "swapbacked")) == "dirty"
    assert classify_page(_present("anon", "swapbacked", "swapcache")) == "present"
    assert classify_page(_present("anon", "mlocked", "swapbacked")) == "mlocked"
    assert classify_page({"state": "present"}) == "unknown"


def test_collapse_merges_only_equal_neighbours():
    assert collapse(["a", "a", "b", "a"]) == [(0, 1, "a"), (2, 2, "b"), (3, 3, "a")]
    # Page indexes that jump are not neighbours even with equal values.
    assert collapse(["x", "x", "x"], [0, 1, 5]) == [(0, 1, "x"), (5, 5, "x")]


def test_values_by_page_uses_the_command_ranges():
    cmd = ast.Read(3, "p0", "read A 2-3,8", "A", ((2, 3), (8, 8)))
    assert values_by_page(["w1", "w1", "zero"], cmd) == "2-3 w1, 8 zero"
    assert values_by_page(["w1", "zero"], None) == "0 w1, 1 zero"


def test_strip_is_one_char_per_page_up_to_the_width():
    pages = [_present("anon", "dirty", "swapbacked")] + [NONE] * 2 + [SWAP]
    strip, group = page_strip(pages, width=64)
    assert (strip.plain, group) == ("D..s", 1)


def test_strip_groups_pages_past_the_width_and_marks_mixed_groups():
    pages = [NONE] * 100 + [SWAP] * 28
    strip, group = page_strip(pages, width=32)
    assert group == 4
    assert strip.plain == "." * 25 + "s" * 7
    strip, group = page_strip([NONE] * 98 + [SWAP] * 30, width=32)
    assert strip.plain == "." * 24 + MIXED.char + "s" * 7


def test_mapping_dump_collapses_identical_pages_into_ranges():
    pages = [_present("anon", "dirty", "swapbacked")] + [NONE] * 3
    smaps = {"Rss": 4, "LazyFree": 0, "Swap": 0, "Anonymous": 4, "Locked": 0}
    lines = [t.plain for t in mapping_lines("p0", "A", {"smaps": smaps, "pages": pages})]
    assert lines == [
        "p0 A  16 kB  Rss: 4 kB  LazyFree: 0 kB  Swap: 0 kB",
        "   D...",
        "   0       present  order=0 mapcount=1 anon,dirty,swapbacked exclusive",
        "   1-3     none",
    ]


def test_mapping_dump_reports_missing_smaps_fields_and_caps_ranges():
    pages = [NONE, SWAP] * 10
    lines = [t.plain for t in mapping_lines("p1", "B", {"pages": pages}, max_ranges=4)]
    assert lines[0] == "p1 B  80 kB  Rss: missing  LazyFree: missing  Swap: missing"
    assert lines[-1] == "   ... 16 more ranges (--json shows every page)"
    assert len(lines) == 2 + 4 + 1


def test_sizes_scale_unless_raw():
    assert format_kb(16) == "16 kB"
    assert format_kb(2048) == "2 MB"
    assert format_kb(1536) == "1.5 MB"
    assert format_kb(4 * 1024 * 1024) == "4 GB"
    assert format_kb(2048, raw=True) == "2048 kB"


def test_every_category_has_a_distinct_character():
    chars = [c.char for c in CATEGORIES.values()] + [MIXED.char]
    assert len(chars) == len(set(chars))


def test_long_value_lists_are_capped_with_a_count_of_the_rest():
    text = values_by_page(["a", "b"] * 50, None, max_runs=3)
    assert text == "0 a, 1 b, 2 a, ... 97 more ranges (--json shows every page)"


def test_colour_on_a_terminal_changes_no_text():
    import io
    import re

    from rich.console import Console

    from foliosim.cli.report import print_report

    obs = {
        "format": "foliosim.observation/1",
        "scenario": "t.scn",
        "backend": {"name": "model", "profile": "linux-6.18"},
        "events": [],
        "final": {"vmstat": {}, "mthp": {}, "procs": {"p0": {"maps": {"A": {"pages": [NONE]}}}}},
    }
    tty, plain = io.StringIO(), io.StringIO()
    print_report(Console(file=tty, force_terminal=True, soft_wrap=True), obs)
    print_report(Console(file=plain, soft_wrap=True), obs)
    assert "\x1b[" in tty.getvalue() and "\x1b[" not in plain.getvalue()
    assert re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue()) == plain.getvalue()
