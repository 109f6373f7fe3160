"""`foliosim race`: the barriers of the lazyfree unmap path, checked by herd7 (docs/race.md).

The reclaim side is recorded from the model's try_to_unmap_one() and
lazyfree_range() (or from a variant's code, --variant V); GUP-fast and a GUP user race with it; herd7 judges the
generated litmus tests under the LKMM, x86-TSO and ARMv8, and foliosim
explores them under SC.  Exit 0: safe under every model asked; 1: some
execution reaches the bad outcome; 2: bad arguments, or herd7 not available
(EXIT_STATUSES and foliosim.cli.main).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from foliosim.cli.common import DEFAULT_PROFILE, UsageError, model_backend

EXIT_STATUSES = {
    0: "safe: no execution reaches the bad outcome under any model asked "
    "(--table: every cell is the expected one)",
    1: "unsafe: some execution does; its witness is printed",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim race`."""
    from foliosim.race.check import WITHOUT
    from foliosim.race.runner import MODELS

    parser.add_argument(
        "--model",
        action="append",
        choices=MODELS,
        metavar="MODEL",
        help=f"memory model: {' | '.join(MODELS)} (repeatable; default all)",
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=WITHOUT,
        metavar="BARRIER",
        help=f"drop one ordering: {' | '.join(WITHOUT)} (repeatable)",
    )
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"model profile the reclaim side is recorded from (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--variant",
        metavar="V",
        help="record the reclaim side from a variant: a built-in name (seed-v1, reviewed, "
        "seed-v4, ...) or FILE.py (docs/variants.md); it names its base profile",
    )
    parser.add_argument(
        "--litmus", metavar="DIR", help="write every generated litmus test into DIR"
    )
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    parser.add_argument(
        "--graph",
        metavar="FILE.png",
        help="render herd7's graph of the first unsafe execution (needs graphviz)",
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the README table: both barriers, --without smp_mb, "
        "--without smp_rmb, under every model (of --variant V if given); exit 0 "
        "when every cell is linux-6.18's",
    )


def _herd(models: tuple[str, ...]):
    from foliosim.race.herd import HerdUnavailable, ensure_herd7

    try:
        return ensure_herd7(build=False)
    except HerdUnavailable as e:
        if models == ("sc",):
            return None  # SC is explored natively
        raise UsageError(f"foliosim race: {e}") from None


def main(args: argparse.Namespace) -> int:
    """Print the verdicts (and witnesses); 0 safe, 1 unsafe."""
    from foliosim.race.check import EXPECTED, check, litmus_files
    from foliosim.race.record import RecordError
    from foliosim.race.runner import MODELS

    models = tuple(dict.fromkeys(args.model)) if args.model else MODELS
    without = tuple(dict.fromkeys(args.without))
    if args.graph:
        if not args.graph.endswith(".png"):
            raise UsageError(f"foliosim race: --graph {args.graph}: the file must end in .png")
        if shutil.which("dot") is None:
            raise UsageError(
                "foliosim race: --graph needs graphviz's `dot` (apt-get install graphviz)"
            )
        if models == ("sc",):
            raise UsageError(
                "foliosim race: --graph draws herd7's graph: add --model lkmm, x86-tso or armv8"
            )
    if args.table and (without or args.model):
        raise UsageError(
            "foliosim race: --table runs its own configurations; drop --model/--without"
        )
    # An unknown profile or a refused variant file is refused before anything runs.
    backend = model_backend(args.profile, variant=args.variant)
    variant = getattr(backend, "variant", None)
    herd = _herd(models)
    configs = list(EXPECTED) if args.table else [without]
    with tempfile.TemporaryDirectory(prefix="foliosim-race-") as tmp:
        dot_dir = Path(tmp) if args.graph else None
        try:
            reports = [
                check(models, w, args.profile, herd, dot_dir, variant=variant) for w in configs
            ]
        except RecordError as e:
            raise UsageError(_record_error(e, variant)) from None
        if args.litmus:
            out = Path(args.litmus)
            for report in reports:
                for name, text in litmus_files(report).items():
                    path = out / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
        if args.graph:
            _graph(reports, Path(args.graph))
    if args.json:
        doc = [r.as_json() for r in reports]
        print(json.dumps(doc if args.table else doc[0], indent=2))
    elif args.table:
        print(table(reports, models))
    else:
        _print(reports[0], models, herd)
    if args.table:  # 0 when every cell is the issue's
        return (
            0 if all(r.verdict(m) == EXPECTED[r.without][m] for r in reports for m in models) else 1
        )
    return 0 if reports[0].safe else 1


def _record_error(e, variant) -> str:
    # FILE:LINE: reason, the file as the user named it on the command line.
    where = e.path
    same = where and variant is not None and variant.path
    if same and Path(where).resolve() == Path(variant.path).resolve():
        where = variant.name if variant.name.endswith(".py") else variant.path
    if where and e.line:
        return f"{where}:{e.line}: {e.reason}"
    return f"foliosim race: {e.reason}"


def _graph(reports, png: Path) -> None:
    for report in reports:
        for o in report.outcomes:
            if not o.safe and o.herd is not None and o.herd.dot is not None:
                out = subprocess.run(
                    ["dot", "-Tpng", "-o", str(png), str(o.herd.dot)],
                    capture_output=True,
                    check=False,
                )
                if out.returncode != 0:
                    err = out.stderr.decode(errors="replace").strip()
                    raise UsageError(f"foliosim race: dot failed: {err}")
                print(f"graph of {o.test.name} under {o.model}: {png}", file=sys.stderr)
                return
    print("foliosim race: no unsafe herd7 execution to draw; no graph written", file=sys.stderr)


def _config_name(without: tuple[str, ...], variant: str | None = None) -> str:
    if not without:
        return "its own barriers" if variant else "both barriers"
    return " ".join(f"--without {w}" for w in without)


def table(reports, models) -> str:
    """The README's markdown table: verdicts, then exploration sizes and times."""
    head = "| configuration | " + " | ".join(models) + " |"
    rows = [head, "|" + "---|" * (len(models) + 1)]
    for r in reports:
        if r.variant is not None:
            name = f"`--variant {r.variant}" + (
                f" {_config_name(r.without)}`" if r.without else "`"
            )
        else:
            name = "both barriers (linux-6.18)" if not r.without else f"`{_config_name(r.without)}`"
        rows.append(f"| {name} | " + " | ".join(r.verdict(m) for m in models) + " |")
    rows += [
        "",
        "| configuration | test | " + " | ".join(models) + " |",
        "|" + "---|" * (len(models) + 2),
    ]
    for r in reports:
        for test in dict.fromkeys(o.test.name for o in r.outcomes):
            cells = []
            for m in models:
                o = next(o for o in r.outcomes if o.model == m and o.test.name == test)
                unit = "SC interleavings" if o.engine.startswith("foliosim") else "candidates"
                also = ""
                if o.engine.startswith("foliosim") and o.herd is not None:
                    also = f" (herd7 sc.cat: {o.herd.candidates} candidates)"
                cells.append(
                    f"{'safe' if o.safe else 'UNSAFE'}: {o.executions} {unit}, "
                    f"{o.seconds * 1000:.0f} ms{also}"
                )
            name = f"--variant {r.variant} " if r.variant else ""
            name += _config_name(r.without, r.variant)
            rows.append(f"| {name} | {test} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _print(report, models, herd) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    title = Text("foliosim race: ", style="bold")
    what = f"variant {report.variant}, base {report.profile}" if report.variant else None
    title.append(f"model ({what or 'profile ' + report.profile})", style="bold cyan")
    title.append(
        f"  {_config_name(report.without, report.variant)}; reclaim recorded from try_to_unmap_one() "
        f"({report.paths} paths of the lazyfree decision)"
    )
    console.print(title)
    if herd is not None:
        console.print(Text(f"herd7 {herd.version} ({herd.binary})", style="dim"))
    for m in models:
        verdict = report.verdict(m)
        line = Text(f"  {m:<8} ")
        line.append(verdict, style="green" if verdict == "safe" else "bold red")
        for o in (o for o in report.outcomes if o.model == m):
            unit = "interleavings" if o.engine.startswith("foliosim") else "candidate executions"
            line.append(
                f"   {o.test.name}: {'safe' if o.safe else 'unsafe'} "
                f"({o.engine}, {o.executions} {unit}, {o.seconds * 1000:.0f} ms)"
            )
        console.print(line)
    for o in report.outcomes:
        if o.witness:
            console.print(Text(f"\nwitness: {o.test.name} under {o.model}", style="bold"))
            console.print(Text(f"  {o.test.doc}", style="dim"))
            for step in o.witness:
                console.print(f"  {step}")
