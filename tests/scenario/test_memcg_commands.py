"""The memcg commands of the language (issue 13): parsed, refused, printed back."""

from __future__ import annotations

import pytest

from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_text
from foliosim.scenario.printer import to_text


def _one(text: str) -> ast.Command:
    return parse_text(text, "m.scn").commands[-1]


def test_memcg_limit_takes_a_size_or_max():
    assert _one("memcg limit 512K") == ast.MemcgLimit(
        line=1, proc="p0", text="memcg limit 512K", pages=128
    )
    assert _one("memcg limit max").pages is None  # type: ignore[attr-defined]
    assert _one("memcg limit 16").pages == 16  # type: ignore[attr-defined]


def test_memcg_reclaim_and_swappiness():
    assert _one("memcg reclaim 1M").pages == 256  # type: ignore[attr-defined]
    assert _one("memcg swappiness 200").value == 200  # type: ignore[attr-defined]


def test_expect_memcg_takes_a_field_and_a_number_or_max_for_the_limit():
    c = _one("expect memcg inactive_file 992")
    assert c == ast.ExpectMemcg(
        line=1, proc="p0", text="expect memcg inactive_file 992", field="inactive_file", value=992
    )
    assert _one("expect memcg limit max").value is None  # type: ignore[attr-defined]


def test_a_mapping_named_memcg_keeps_its_forms():
    c = _one("mmap memcg 4\nexpect memcg 0-3 none")
    assert isinstance(c, ast.ExpectState)
    c = _one("mmap memcg 4\nexpect memcg rss 0")
    assert isinstance(c, ast.ExpectMemcg)


@pytest.mark.parametrize(
    ("text", "col", "reason"),
    [
        (
            "memcg limt 1M",
            7,
            "memcg: unknown memcg setting 'limt', expected one of limit, reclaim, swappiness; "
            "did you mean 'limit'?",
        ),
        ("memcg swappiness 201", 18, "swappiness 201 is above 200 (0-200)"),
        ("memcg reclaim max", 15, "bad memcg reclaim size 'max'"),
        ("memcg limit 0", 13, "memcg limit size must not be zero"),
        ("memcg limit 1M now", 16, "memcg: unexpected 'now' after '1M', expected end of line"),
        (
            "expect memcg rsss 4",
            14,
            "expect: unknown memcg field 'rsss', expected one of limit, rss,",
        ),
        ("expect memcg rss max", 18, "bad memcg value 'max': expected a number"),
    ],
)
def test_bad_memcg_lines_are_refused_at_their_column(text, col, reason):
    with pytest.raises(ScenarioError) as e:
        parse_text(text, "m.scn")
    assert (e.value.line, e.value.col) == (1, col)
    assert e.value.reason.startswith(reason), e.value.reason


def test_memcg_lines_print_back_as_they_parse():
    text = (
        "memcg limit 512K\nmemcg limit max\nmemcg reclaim 1M\nmemcg swappiness 0\n"
        "expect memcg limit max\nexpect memcg rss 1024\n"
    )
    s = parse_text(text, "m.scn")
    assert to_text(s) == text
