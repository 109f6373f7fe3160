"""Saving a shrunk failure as a finding: NNN.scn, headed by what found it, and the observations.

The file is replayed as saved (its header comments shift every line number)
so that the differences written in the header and the observations saved
with it (NNN.<backend>.json) match the file a user runs again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from foliosim import observation
from foliosim.check.diff import format_difference
from foliosim.check.judge import DIFFERS, INVALID, Judge, Outcome

# Lines of differences (or of an exception message) written at the head of a finding.
HEADER_DETAIL_MAX = 20


@dataclass
class Finding:
    """A saved, shrunk scenario: NNN.scn and its observations."""

    number: int
    path: Path
    outcome: Outcome
    scenario_index: int  # which generated scenario of the campaign first showed it
    commands_before: int
    commands_after: int
    shrink_runs: int
    reproduced: bool  # the saved file, run again, still fails the same way
    replay_runs: int = 0  # runs spent replaying the saved file
    repeats: int = 0  # later scenarios that failed only in ways this one already showed

    def headline(self) -> str:
        """One line: the first difference or the error."""
        return self.outcome.headline()


@dataclass(frozen=True)
class Shrunk:
    """One failure of a campaign, before and after shrinking."""

    first: str  # the generated text that failed
    last: str  # the shrunk text
    outcome: Outcome  # of `last`
    target: frozenset[str]  # the new part of the first failure's signature
    scenario_index: int
    shrink_runs: int


def count_commands(text: str) -> int:
    """Lines of `text` that hold a command (not blank, not only a comment)."""
    return sum(1 for line in text.splitlines() if line.split("#", 1)[0].strip())


def next_number(directory: Path) -> int:
    """The number of the next finding in `directory`, after the highest NNN.scn there."""
    used = (
        [
            int(p.stem.split(".")[0])
            for p in directory.glob("[0-9][0-9][0-9]*.scn")
            if p.stem.split(".")[0].isdigit()
        ]
        if directory.is_dir()
        else []
    )
    return max(used, default=-1) + 1


def finding_header(o: Outcome, s: Shrunk, found_by: str) -> list[str]:
    """The comment lines at the head of a saved finding."""
    lines = [f"# found by: {found_by}"]
    lines.append(
        f"# scenario {s.scenario_index} of the campaign, shrunk from "
        f"{count_commands(s.first)} to {count_commands(s.last)} commands in {s.shrink_runs} runs"
    )
    if o.kind == DIFFERS:
        a, b = o.side_names()
        total = len(o.unexplained) + len(o.explained)
        lines.append(
            f"# {a} and {b} differ: {total} difference{'s' if total != 1 else ''}, "
            f"{len(o.unexplained)} unexplained, {len(o.explained)} explained"
        )
        detail = [format_difference(d, a, b) for d in o.unexplained]
        detail += [f"{format_difference(d, a, b)} (explained: {k.name})" for d, k in o.explained]
    else:
        lines.append(
            "# "
            + (
                "the parser refused the generated text"
                if o.kind == INVALID
                else "a backend raised an exception"
            )
        )
        detail = [p for p in str(o.error).splitlines() if p.strip()]
    if len(detail) > HEADER_DETAIL_MAX:
        detail = detail[: HEADER_DETAIL_MAX - 1] + [
            f"... and {len(detail) - HEADER_DETAIL_MAX + 1} more"
        ]
    lines += ["#   " + _comment_safe(d) for d in detail]
    return lines


def _comment_safe(text: str) -> str:
    # A comment line must stay one line of plain characters.
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


@dataclass(frozen=True)
class Replay:
    """The saved file run again: its outcome, the header that goes with it, the runs it took."""

    outcome: Outcome
    header: list[str]
    reproduced: bool  # it failed the same way again
    runs: int


def replay(judge: Judge, s: Shrunk, path: str, found_by: str) -> Replay:
    """Run `s.last` as it will be saved at `path`, header comments and all.

    The header's length depends on the differences it lists: settled in a few
    tries.  If the file does not fail the same way again, the outcome is the
    shrinking run's and the header says so.
    """
    header = finding_header(s.outcome, s, found_by)
    final = s.outcome
    for runs in range(1, 4):
        final = judge.judge("#\n" * len(header) + s.last, path)
        if not (final.is_failure and final.signature & s.target):
            header.append(
                "# note: this file, run again, did not fail the same way; the "
                "observations saved are those of the shrinking run (lines shifted "
                f"by {len(header) + 1})"
            )
            return Replay(s.outcome, header, False, runs)
        new_header = finding_header(final, s, found_by)
        if len(new_header) == len(header):
            return Replay(final, new_header, True, runs)
        header = new_header
    return Replay(final, header, True, 3)


def save_finding(out_dir: Path, judge: Judge, s: Shrunk, found_by: str) -> Finding:
    """Replay and save `s` as the next NNN.scn of `out_dir`, with each backend's observation."""
    number = next_number(out_dir)
    stem = f"{number:03d}"
    path = out_dir / f"{stem}.scn"
    r = replay(judge, s, str(path), found_by)
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(h + "\n" for h in r.header) + s.last, encoding="utf-8")
    for name, obs in r.outcome.observations.items():
        (out_dir / f"{stem}.{name}.json").write_text(observation.dumps(obs), encoding="utf-8")
    return Finding(
        number=number,
        path=path,
        outcome=r.outcome,
        scenario_index=s.scenario_index,
        commands_before=count_commands(s.first),
        commands_after=count_commands(s.last),
        shrink_runs=s.shrink_runs,
        reproduced=r.reproduced,
        replay_runs=r.runs,
    )
