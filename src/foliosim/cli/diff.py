"""`foliosim diff A.json B.json`: where two observations of one scenario disagree.

Exit statuses: EXIT_STATUSES and foliosim.cli.main (2: a file cannot be read or
is not an observation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from foliosim.check.diff import diff_observations, format_differences
from foliosim.cli.common import UsageError, read_scenario, read_text
from foliosim.observation import FORMAT

EXIT_STATUSES = {
    0: "the two observations agree",
    1: "some field differs",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim diff`."""
    parser.add_argument("a", metavar="A.json", help="an observation (foliosim run --json)")
    parser.add_argument("b", metavar="B.json", help="another observation of the same scenario")
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="the scenario both ran, to place read/expect values at their page indexes",
    )


def load_observation(path: str) -> dict[str, Any]:
    """The observation object in `path`; UsageError (one line) if it is not one."""
    text = sys.stdin.read() if path == "-" else read_text(path)
    try:
        obs = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(obs, dict):
        raise UsageError(
            f"{path}: not a foliosim observation (a JSON {type(obs).__name__}, not an object)"
        )
    if obs.get("format") != FORMAT:
        found = obs.get("format", "no format key")
        raise UsageError(
            f"{path}: not a foliosim observation (format {found!s}, expected {FORMAT})"
        )
    return obs


def side_names(a: dict[str, Any], b: dict[str, Any], pa: str, pb: str) -> tuple[str, str]:
    """What to call the two sides: their backend names, or the files if those agree."""
    na = str((a.get("backend") or {}).get("name", pa))
    nb = str((b.get("backend") or {}).get("name", pb))
    if na == nb:
        return Path(pa).name, Path(pb).name if Path(pa).name != Path(pb).name else pb
    return na, nb


def main(args: argparse.Namespace) -> int:
    """Print every difference between the two observations; the exit status."""
    a = load_observation(args.a)
    b = load_observation(args.b)
    scenario = read_scenario(args.scenario) if args.scenario else None
    name_a, name_b = side_names(a, b, args.a, args.b)
    diffs = diff_observations(a, b, scenario)
    if not diffs:
        print(f"no differences between {name_a} and {name_b}")
        return 0
    sys.stdout.write(format_differences(diffs, name_a, name_b))
    print(f"{len(diffs)} difference{'' if len(diffs) == 1 else 's'} between {name_a} and {name_b}")
    return 1
