"""The README stays true: its two commands, its transcripts and its command table.

The README opens with the two commands a new user types; `.ci/run` must run
the second one and nothing else.  Every transcript the README shows after
"`foliosim run ...` (exit N):" is what that command prints today (on the
model, no colour), and every line of its `--trace` excerpt is a line that
command traces.  A failure here means the README lies: update it, or fix the
code it describes.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# "`foliosim run ARGS` (exit N):" followed by a blank line and an indented block.
TRANSCRIPT = re.compile(r"`(foliosim run [^`]+)` \(exit (\d)\):\n\n((?:    .*\n|\n)+)")


def _indented_block_after(text: str, start: int) -> list[str]:
    lines = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("    "):
            lines.append(line[4:])
        elif line.strip() == "" and not lines:
            continue
        else:
            break
    return lines


def _foliosim(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foliosim.cli.main", *args],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"},
        timeout=120,
    )


def test_readme_opens_with_two_commands_and_ci_runs_the_second():
    head = README.split("\n## ", 1)[0]
    commands = [line[4:] for line in head.splitlines() if line.startswith("    ")]
    assert len(commands) == 2, f"the README must open with exactly two commands, found {commands}"
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci == [commands[1]], ".ci/run must run the README's test command and nothing else"
    assert commands[0].endswith(".scn") and "foliosim run" in commands[0]


@pytest.mark.parametrize(
    "command,status,block",
    [m.groups() for m in TRANSCRIPT.finditer(README)],
    ids=[m.group(1) for m in TRANSCRIPT.finditer(README)],
)
def test_readme_transcript_is_what_the_command_prints(command, status, block):
    args = shlex.split(command)[1:]
    done = _foliosim(args)
    want = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    assert done.returncode == int(status), done.stderr
    assert done.stdout.strip("\n") == want.strip("\n")


def test_readme_has_a_transcript_of_its_worked_example():
    assert TRANSCRIPT.search(README), "the README's worked example lost its transcript"


def test_readme_trace_excerpt_lines_are_traced_in_that_order():
    m = re.search(r"`--trace` prints[^\n]*\n(?:[^\n]+\n)*?\n((?:    .*\n)+)", README)
    assert m, "the README's --trace excerpt is gone"
    excerpt = [line[4:].strip() for line in m.group(1).splitlines()]
    scenario = TRANSCRIPT.search(README).group(1).split()[-1]
    traced = [line.strip() for line in _foliosim(["run", "--trace", scenario]).stdout.splitlines()]
    pos = 0
    for line in excerpt:
        assert line in traced[pos:], f"not traced (in this order): {line}"
        pos = traced.index(line, pos) + 1


def test_readme_worked_example_shows_the_scenario_file():
    m = re.search(r"`(scenarios/[\w.-]+\.scn)`:\n\n((?:    .*\n)+)", README)
    assert m, "the README no longer shows its example scenario"
    shown = [line[4:] for line in m.group(2).splitlines()]
    text = (ROOT / m.group(1)).read_text().splitlines()
    commands = [line for line in text if line.strip() and not line.lstrip().startswith("#")]
    assert shown == commands


def test_readme_command_table_lists_every_subcommand():
    from foliosim.cli.main import SUBCOMMANDS

    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `foliosim ([\w-]+)", table, flags=re.MULTILINE))
    assert listed == set(SUBCOMMANDS), (
        f"README command table lists {sorted(listed)}, the CLI has {sorted(SUBCOMMANDS)}"
    )
