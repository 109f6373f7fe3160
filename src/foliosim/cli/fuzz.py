"""`foliosim fuzz`: random valid scenarios on the model and the live kernel, compared.

Differences are shrunk to minimal scenarios and saved as NNN.scn with both
observations (see foliosim.check.fuzz and docs/fuzzing.md).  Exit statuses:
EXIT_STATUSES and foliosim.cli.main.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from foliosim.check.fuzz import DEFAULT_SHRINK_BUDGET, Campaign, Stats
from foliosim.check.gen import COMMAND_KINDS
from foliosim.check.known import KNOWN_DIFFERENCES, KnownDifference
from foliosim.cli.common import (
    DEFAULT_PROFILE,
    UsageError,
    choose_profile,
    kernel_backend,
    model_backend,
)
from foliosim.scenario.ast import ADVICES

# `c`: the scenario exported as a C program (foliosim.cexport), a second kernel harness.
BACKEND_CHOICES = ("model,kernel", "kernel,model", "model", "model,c", "kernel,c", "model,kernel,c")


EXIT_STATUSES = {
    0: "no unexplained difference and no crash turned up",
    1: "a finding: an unexplained difference, a backend raised (an InvariantError of the checked model included), or the parser refused a generated scenario",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim fuzz`."""
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="campaign seed (default: a random one, printed); the same seed "
        "gives the same scenarios",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--count", type=int, default=None, metavar="N", help="generate N scenarios (default 100)"
    )
    budget.add_argument(
        "--time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="generate scenarios for SECONDS seconds instead",
    )
    parser.add_argument(
        "--out",
        default="fuzz-out",
        metavar="DIR",
        help="where findings go: NNN.scn, NNN.<backend>.json (default fuzz-out)",
    )
    parser.add_argument(
        "--backends",
        default="model,kernel",
        metavar="LIST",
        help="model,kernel (default: compare them), model (model alone, "
        "invariants checked: any exception is a finding), or model,c, kernel,c, "
        "model,kernel,c (c: the exported C program)",
    )
    parser.add_argument(
        "--mthp",
        action="store_true",
        help="also draw `mthp SIZE MODE`, `thp MODE` and `madvise ... hugepage` "
        "(large folios); without it only order-0 folios happen",
    )
    parser.add_argument(
        "--memcg",
        action="store_true",
        help="also draw `memcg reclaim 1G`, `memcg limit max|1G` and `memcg swappiness N` "
        "(reclaim through the memcg's LRU lists; never with fork in one scenario)",
    )
    parser.add_argument(
        "--profile",
        help="model profile (default: compared with the kernel, the profile of the running "
        f"kernel's build; the model alone, {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME|FILE.py",
        help="run the model with a variant's replaced functions (docs/variants.md)",
    )
    parser.add_argument(
        "--kernel",
        metavar="6.1|6.12|DEB|VMLINUZ",
        help="run the c backend in a qemu guest of this kernel (docs/guests.md): one boot "
        "per scenario run, so slow; the model takes that kernel's profile",
    )
    parser.add_argument(
        "--shrink-budget",
        type=int,
        default=DEFAULT_SHRINK_BUDGET,
        metavar="RUNS",
        help=f"at most RUNS scenario runs to shrink each finding (default {DEFAULT_SHRINK_BUDGET})",
    )


def _found_by(args: argparse.Namespace, seed: int) -> str:
    words = ["foliosim fuzz", f"--seed {seed}"]
    words.append(f"--time {args.time:g}" if args.time is not None else f"--count {args.count}")
    words.append(f"--backends {args.backends}")
    if getattr(args, "kernel", None) is not None:
        words.append(f"--kernel {args.kernel}")
    if args.mthp:
        words.append("--mthp")
    if args.memcg:
        words.append("--memcg")
    if args.profile is not None:
        words.append(f"--profile {args.profile}")
    if args.variant is not None:
        words.append(f"--variant {args.variant}")
    return " ".join(words)


def _backends(args: argparse.Namespace) -> list[tuple[str, Any]]:
    names = args.backends
    if names not in BACKEND_CHOICES:
        raise UsageError(
            f"foliosim fuzz: --backends {names}: expected one of {', '.join(BACKEND_CHOICES)}"
        )
    with_kernel = "kernel" in names.split(",")
    kernel = None
    if with_kernel:
        try:
            kernel = kernel_backend()
        except UsageError as e:
            raise UsageError(
                f"{e} (foliosim fuzz --backends model fuzzes the model alone)"
            ) from None
    guest = None
    if getattr(args, "kernel", None) is not None:
        if names.split(",") != ["model", "c"] and names != "c":
            raise UsageError(
                f"foliosim fuzz: --kernel {args.kernel}: a guest runs the c backend "
                "(--backends model,c)"
            )
        from foliosim.guest.backend import guest_backend

        guest = guest_backend(args.kernel)
    # Either kernel harness (the worker or the exported C program) runs this kernel.
    on_kernel = with_kernel or "c" in names.split(",")
    profile, args.profile_note = choose_profile(
        args.profile, on_kernel, "foliosim fuzz", guest.release if guest else None
    )
    args.guest_release = guest.release if guest else None
    args.model_profile = profile
    out: list[tuple[str, Any]] = []
    for name in names.split(","):
        if name == "model":
            # Alone, the model is checked: invariant violations are what we look for.
            if args.variant is not None:
                # A variant names its own base profile (BASE in the file).
                model = model_backend(
                    args.profile or DEFAULT_PROFILE, names == "model", args.variant
                )
            else:
                model = model_backend(profile, check=names == "model")
            out.append(("model", model))
        elif name == "c" and guest is not None:
            out.append(("c", guest))
        elif name == "c":
            from foliosim.cexport.backend import c_backend

            out.append(("c", c_backend()))
        else:
            out.append(("kernel", kernel))
    return out


def _describe(name: str, args: argparse.Namespace) -> str:
    if name == "model":
        what = args.variant if args.variant is not None else args.model_profile
        return f"model ({what}{', checked' if args.backends == 'model' else ''})"
    if name == "c" and getattr(args, "guest_release", None):
        return f"c (guest {args.guest_release})"
    return f"{name} ({platform.release()})"


def _progress_line(stats: Stats, status: str) -> Text:
    rate = f"{stats.rate:.1f}/s" if stats.elapsed > 0 else "-"
    line = (
        f"fuzz: {stats.generated} scenarios ({rate}), "
        f"{stats.unexplained} differing ({len(stats.findings)} saved), "
        f"{stats.explained} explained, {stats.elapsed:.1f} s"
    )
    return Text(line + (f"  [{status}]" if status else ""))


def main(args: argparse.Namespace) -> int:
    """Run one campaign; the exit status of `foliosim fuzz`."""
    if args.count is not None and args.count < 1:
        raise UsageError(f"foliosim fuzz: --count {args.count}: must be at least 1")
    if args.time is not None and not args.time > 0:
        raise UsageError(f"foliosim fuzz: --time {args.time:g}: must be more than 0 seconds")
    if args.shrink_budget < 0:
        raise UsageError(f"foliosim fuzz: --shrink-budget {args.shrink_budget}: must be >= 0")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"foliosim fuzz: --out {args.out}: exists and is not a directory")
    if args.count is None and args.time is None:
        args.count = 100
    backends = _backends(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    vs = " vs ".join(_describe(n, args) for n, _ in backends)
    if args.profile_note is not None:
        out.print(args.profile_note)
    out.print(
        f"foliosim fuzz: seed {seed}, {vs}, "
        + (f"{args.count} scenarios" if args.count is not None else f"{args.time:g} s")
        + (", mthp" if args.mthp else "")
        + (", memcg" if args.memcg else "")
        + f", findings to {args.out}/"
    )

    live = Live(
        _progress_line(Stats(backends=[]), "starting"),
        console=err,
        refresh_per_second=4,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )

    def progress(stats: Stats, status: str) -> None:
        live.update(_progress_line(stats, status))

    campaign = Campaign(
        backends,
        seed=seed,
        count=args.count,
        time_limit=args.time,
        out_dir=args.out,
        mthp=args.mthp,
        memcg=args.memcg,
        found_by=_found_by(args, seed),
        shrink_budget=args.shrink_budget,
        # What the model cannot see of the live kernel, and what one kernel harness cannot see
        # of the other's run (machine-wide counters); nothing to explain with the model alone.
        known=KNOWN_DIFFERENCES if len(backends) >= 2 else (),
        progress=progress,
    )
    with live:
        stats = campaign.run()
    print_summary(out, stats, [n for n, _ in backends], campaign.known)
    if stats.interrupted:
        return 130
    return 1 if stats.unexplained else 0


def print_summary(
    console: Console, stats: Stats, names: list[str], known: Sequence[KnownDifference] = ()
) -> None:
    """The end-of-campaign report: counts, findings, coverage, rate."""
    c = console
    pair = len(names) >= 2
    head = "interrupted after" if stats.interrupted else "ran"
    c.print(
        f"{head} {stats.generated} scenarios in {stats.elapsed:.1f} s "
        f"({stats.shrink_seconds:.1f} s of it shrinking findings: {stats.shrink_runs} more "
        "runs)"
    )
    if pair:
        c.print(
            f"differences: {stats.differs + stats.explained} scenarios differ, "
            f"{stats.differs} unexplained, {stats.explained} explained"
        )
        reasons = {k.name: k.reason for k in known}
        for name, n in stats.explained_reasons.most_common():
            c.print(f"  explained {n}x: {name}: {reasons.get(name, '')}")
    c.print(
        f"crashes: {stats.crashes} scenarios made a backend raise"
        + (
            f"; {stats.invalid} generated scenarios were refused by the parser"
            if stats.invalid
            else ""
        )
    )
    if stats.findings:
        c.print(f"findings ({len(stats.findings)} saved, shrunk):")
        for f in stats.findings:
            again = f", {f.repeats} later scenarios failed the same way" if f.repeats else ""
            note = "" if f.reproduced else " (did not reproduce on replay)"
            c.print(f"  {f.path}: {f.commands_before} -> {f.commands_after} commands{again}{note}")
            c.print(Text(f"    {f.headline()}"))
    else:
        c.print("findings: none")

    table = Table(title="coverage (generated scenarios)", title_justify="left")
    table.add_column("command")
    table.add_column("lines", justify="right")
    for name in names:
        table.add_column(f"failed ({name})", justify="right")
    failed_by_op: dict[str, dict[str, int]] = {}
    for (backend, op), k in stats.failed.items():
        failed_by_op.setdefault(op, {})[backend] = k
    extra = sorted(op for op in failed_by_op if op not in COMMAND_KINDS)
    for kind in (*COMMAND_KINDS, *extra):
        table.add_row(
            kind,
            str(stats.commands.get(kind, 0)),
            *(str(failed_by_op.get(kind, {}).get(n, 0)) for n in names),
        )
    for advice in ADVICES:
        table.add_row(
            f"  madvise {advice}", str(stats.advices.get(advice, 0)), *("" for _ in names)
        )
    c.print(table)
    c.print(f"scenarios per second: {stats.rate:.2f} (shrinking left out)")


if __name__ == "__main__":  # pragma: no cover
    from foliosim.cli.main import main as _main

    sys.exit(_main(["fuzz", *sys.argv[1:]]))
