"""delete_lines: delta debugging over whole lines, alone, with a predicate."""

from __future__ import annotations

import pytest

from foliosim.check.shrink import OutOfBudget, delete_lines

TEXT = "".join(f"line {i}\n" for i in range(12))


def test_only_the_lines_the_failure_needs_are_left():
    def needs_3_and_8(text):
        return "line 3\n" in text and "line 8\n" in text

    assert delete_lines(TEXT, needs_3_and_8) == "line 3\nline 8\n"


def test_a_text_that_needs_every_line_is_kept_whole():
    assert delete_lines(TEXT, lambda text: text == TEXT) == TEXT


def test_out_of_budget_returns_the_shortest_failing_text_so_far():
    tried = []

    def two_runs_only(text):
        if len(tried) == 2:
            raise OutOfBudget
        tried.append(text)
        return "line 0\n" in text

    # First candidate (second half only) passes; the second (first half only) fails.
    assert delete_lines(TEXT, two_runs_only) == "".join(f"line {i}\n" for i in range(6))
    assert len(tried) == 2


@pytest.mark.parametrize("text", ["", "only\n"])
def test_nothing_to_delete_from_one_line_or_none(text):
    assert delete_lines(text, lambda t: pytest.fail("must not be called")) == text
