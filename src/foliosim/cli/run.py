"""`foliosim run FILE...`: run scenarios and report what each backend observed.

Every file is parsed before anything runs, and every refusal (bad scenario,
unreadable file, unavailable backend, impossible option) is reported before
the first scenario starts.  Exit 0 when every expectation held (and, with
`--backend both`, the observations agree), 1 otherwise, 2 on refused input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from foliosim import observation
from foliosim.check.diff import diff_observations, format_difference
from foliosim.cli.common import (
    DEFAULT_PROFILE,
    UsageError,
    kernel_backend,
    model_backend,
    read_scenario,
)
from foliosim.cli.report import failed_expects, print_report
from foliosim.scenario.ast import Scenario
from foliosim.scenario.errors import ScenarioError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim run`."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario files (.scn)")
    parser.add_argument(
        "--backend",
        choices=("model", "kernel", "both"),
        default="model",
        help="where to run: the model (default), the live kernel, or both and compare",
    )
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"model profile (default {DEFAULT_PROFILE})"
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="write the observation JSON to OUT ('-' for stdout; a directory "
        "receiving <stem>.json with several files, "
        "<stem>.<backend>.json with --backend both)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="print each step of the backend as it happens"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check model invariants after every step (model backend)",
    )
    parser.add_argument("--raw", action="store_true", help="print sizes unscaled, in kB")


def _json_targets(
    args: argparse.Namespace, scenarios: list[Scenario], backends: list[str]
) -> dict[tuple[int, str], str]:
    # (scenario index, backend name) -> output path ('-' = stdout), decided and
    # checked before anything runs.
    out = args.json
    if out is None:
        return {}
    several = len(scenarios) > 1 or len(backends) > 1
    if out == "-":
        if several:
            raise UsageError(
                "foliosim run: --json - takes one scenario on one backend; "
                "give a directory to receive several observations"
            )
        return {(0, backends[0]): "-"}
    if not several:
        if Path(out).is_dir():
            return {(0, backends[0]): str(Path(out) / f"{Path(scenarios[0].path).stem}.json")}
        return {(0, backends[0]): out}
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise UsageError(
            f"foliosim run: --json {out}: not a directory (several observations "
            "go to <stem>.json files in a directory)"
        )
    targets: dict[tuple[int, str], str] = {}
    seen: dict[str, str] = {}
    for i, sc in enumerate(scenarios):
        stem = Path(sc.path).stem
        if stem in seen:
            raise UsageError(
                f"foliosim run: --json {out}: {seen[stem]} and {sc.path} would "
                f"both write {stem}.json"
            )
        seen[stem] = sc.path
        for name in backends:
            fname = f"{stem}.{name}.json" if len(backends) > 1 else f"{stem}.json"
            targets[(i, name)] = str(directory / fname)
    return targets


def _write_json(target: str, obs: dict[str, Any]) -> None:
    text = observation.dumps(obs)
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"foliosim run: --json {target}: {e.strerror or e}") from None


def _tracer(console: Console, prefix: str = "") -> Callable[[int, str, str], None]:
    def trace(line: int, func: str, message: str) -> None:
        console.print(Text(f"{prefix}{line:>4} {func}: {message}"), highlight=False, soft_wrap=True)
        console.file.flush()

    return trace


def main(args: argparse.Namespace) -> int:
    """Run every scenario of `args.files`; the exit status of `foliosim run`."""
    names = ["model", "kernel"] if args.backend == "both" else [args.backend]
    if args.check and args.backend == "kernel":
        raise UsageError(
            "foliosim run: --check checks model invariants; it needs --backend model or both"
        )

    scenarios: list[Scenario] = []
    refused: list[str] = []
    for path in args.files:
        try:
            scenarios.append(read_scenario(path))
        except (ScenarioError, UsageError) as e:
            refused.append(str(e))
    if refused:
        for line in refused:
            sys.stderr.write(line + "\n")
        return 2

    targets = _json_targets(args, scenarios, names)
    backends: dict[str, Any] = {}
    if "model" in names:
        backends["model"] = model_backend(args.profile, args.check)
    if "kernel" in names:
        backends["kernel"] = kernel_backend()

    # The JSON owns stdout when it goes there; the report moves to stderr.
    report_file = sys.stderr if "-" in targets.values() else sys.stdout
    console = Console(file=report_file, highlight=False, soft_wrap=True)
    # With two backends, each trace line says whose step it is.
    traces = {
        name: _tracer(console, f"{name} " if len(names) > 1 else "") if args.trace else None
        for name in names
    }

    status = 0
    for i, scenario in enumerate(scenarios):
        if i:
            console.print()
        observed: dict[str, dict[str, Any]] = {}
        for n, name in enumerate(names):
            if n:
                console.print()
            obs = backends[name].run(scenario, trace=traces[name])
            observed[name] = obs
            if (i, name) in targets:
                _write_json(targets[(i, name)], obs)
            print_report(console, obs, scenario, raw=args.raw)
            if failed_expects(obs):
                status = 1
        if len(names) == 2:
            diffs = diff_observations(observed["model"], observed["kernel"], scenario)
            if diffs:
                status = 1
                console.print()
                console.print(
                    Text(
                        f"{len(diffs)} difference{'s' if len(diffs) > 1 else ''}, "
                        "model vs kernel "
                        f"({scenario.name})",
                        style="bold red",
                    )
                )
                for d in diffs:
                    console.print(
                        Text("  " + format_difference(d, "model", "kernel")), highlight=False
                    )
            else:
                console.print()
                console.print(Text(f"model and kernel agree ({scenario.name})", style="bold green"))
    return status
