"""The one error a scenario text can raise: `FILE:LINE:COL: reason`."""

from __future__ import annotations


class ScenarioError(Exception):
    """A scenario refused before anything runs; prints as `path:line:col: reason`.

    `line` and `col` are 1-based and point at the offending word.  A file that
    cannot be read at all is reported with line 0 and col 0.
    """

    def __init__(self, path: str, line: int, col: int, reason: str) -> None:
        super().__init__(path, line, col, reason)
        self.path = path
        self.line = line
        self.col = col
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.reason}"
