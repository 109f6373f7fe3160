"""`foliosim explain FILE`: the model functions each scenario line went through.

Runs the scenario on the model with a trace and lists, per scenario line, the
distinct model functions entered, in first-entry order, so a difference
against Linux leads back to the code that produced it.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.text import Text

from foliosim.cli.common import DEFAULT_PROFILE, model_backend, read_scenario
from foliosim.cli.report import backend_title, failed_expects


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim explain`."""
    parser.add_argument("file", metavar="FILE", help="a scenario file (.scn)")
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"model profile (default {DEFAULT_PROFILE})"
    )
    parser.add_argument(
        "--messages", action="store_true", help="also print every trace message under its function"
    )


def functions_by_line(steps: list[tuple[int, str, str]]) -> dict[int, list[str]]:
    """Scenario line -> the distinct functions traced on it, in first-entry order."""
    out: dict[int, list[str]] = {}
    for line, func, _ in steps:
        funcs = out.setdefault(line, [])
        if func not in funcs:
            funcs.append(func)
    return out


def main(args: argparse.Namespace) -> int:
    """Print the per-line function lists; 1 if an expectation failed, as `run` does."""
    scenario = read_scenario(args.file)
    backend = model_backend(args.profile)
    steps: list[tuple[int, str, str]] = []

    def trace(line: int, func: str, message: str) -> None:
        steps.append((line, func, message))

    obs: dict[str, Any] = backend.run(scenario, trace=trace)
    console = Console(highlight=False, soft_wrap=True)
    title = Text().append("foliosim explain: ", style="bold")
    title.append(backend_title(obs), style="bold cyan")
    title.append(f"  scenario {scenario.name}")
    console.print(title)

    funcs = functions_by_line(steps)
    lines = [c.line for c in scenario.commands]
    known = set(lines)
    # Steps outside any command line (set-up, teardown) still lead somewhere.
    lines.extend(sorted(set(funcs) - known))
    for line in lines:
        cmd_text = next((c.text for c in scenario.commands if c.line == line), None)
        head = Text().append(f"{line:>4} ", style="dim")
        head.append(
            cmd_text if cmd_text is not None else "(outside any scenario line)", style="bold"
        )
        console.print(head)
        if line not in funcs:
            console.print(Text("       (no model function traced)", style="dim"))
            continue
        console.print(Text("       " + ", ".join(funcs[line])))
        if args.messages:
            for step_line, func, message in steps:
                if step_line == line:
                    console.print(Text(f"         {func}: {message}", style="dim"))
    return 1 if failed_expects(obs) else 0
