"""Shrinking a failing scenario text by deleting whole lines (delta debugging).

Hypothesis's own shrinker (run by the campaign) is thorough but spends many
runs on small edits before it deletes whole commands; this second pass
deletes chunks of lines (Zeller's ddmin, complements only: halves, then
quarters, ... then single lines), keeping any candidate that still fails.
"""

from __future__ import annotations

from collections.abc import Callable


class OutOfBudget(Exception):
    """Raised by a `still_fails` predicate that may not run another candidate."""


def delete_lines(text: str, still_fails: Callable[[str], bool]) -> str:
    """The shortest text reached from `text` by deleting chunks of lines while `still_fails`.

    `still_fails(candidate)` judges a candidate; it raises OutOfBudget to stop
    the search, which then returns the shortest failing text found so far.
    """
    lines = text.splitlines(keepends=True)
    parts = 2
    try:
        while len(lines) > 1:
            chunk = -(-len(lines) // parts)
            for start in range(0, len(lines), chunk):
                candidate = "".join(lines[:start] + lines[start + chunk :])
                if still_fails(candidate):
                    lines = candidate.splitlines(keepends=True)
                    parts = max(parts - 1, 2)
                    break
            else:
                if chunk == 1:
                    break
                parts = min(parts * 2, len(lines))
    except OutOfBudget:
        pass
    return "".join(lines)
