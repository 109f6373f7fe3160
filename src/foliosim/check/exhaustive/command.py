"""The `foliosim equiv A B --exhaustive` report: counts, speed, the minimal counterexample."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from foliosim.check.exhaustive import Report, check, outcomes
from foliosim.check.exhaustive.engine import load_side
from foliosim.check.exhaustive.explain import describe, explain, page_views, scenario
from foliosim.check.exhaustive.space import Bounds

MAX_ORDER = 8  # a PTE-mapped folio inside one 2M page table
MAX_KINDS = 4  # kinds of difference explained in a report


class BoundsError(ValueError):
    """A refused bound: one line, exit 2."""


# What the enumeration does not cover yet, and why (printed with every report).
NOT_ENUMERATED = (
    "uffd-wp (PTE bit and VMA flag): the model has neither",
    "PMD-mapped folios (order 9): only PTE-mapped folios up to order 8",
    (
        "read-only exclusive PTEs (mprotect, issue 11); young apart from dirty (folio_referenced "
        "aging, issue 13)"
    ),
    (
        "different addresses of the folio per process (mremap in one process): the model keeps "
        "one folio->index as the address"
    ),
    "migration entries and PTE markers: not in the model",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --exhaustive options of `foliosim equiv`."""
    g = parser.add_argument_group("exhaustive mode")
    g.add_argument(
        "--exhaustive",
        action="store_true",
        help="check every configuration of one folio under reclaim within the bounds",
    )
    g.add_argument("--max-order", type=int, default=4, metavar="N", help="orders 0, 2..N (4)")
    g.add_argument("--max-procs", type=int, default=2, metavar="N", help="processes (2)")
    g.add_argument(
        "--max-shared-order",
        type=int,
        default=2,
        metavar="N",
        help="largest order enumerated with more than one process (2)",
    )
    g.add_argument(
        "--max-refs", type=int, default=1, metavar="N", help="extra GUP references, 0..N (1)"
    )
    g.add_argument(
        "--all-splits",
        action="store_true",
        help="cut the folio at every page, not only in the middle",
    )
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (1)")
    g.add_argument(
        "--all",
        action="store_true",
        help="go on past the first size with a difference and count every difference",
    )


def bounds_of(args: argparse.Namespace) -> Bounds:
    """The Bounds the options ask for; BoundsError says what is wrong in one line."""
    if not 0 <= args.max_order <= MAX_ORDER or args.max_order == 1:
        raise BoundsError(
            f"--max-order {args.max_order}: must be 0 or 2..{MAX_ORDER} "
            "(anonymous folios have no order 1; order 9 is PMD-mapped)"
        )
    if not 1 <= args.max_procs <= 4:
        raise BoundsError(f"--max-procs {args.max_procs}: must be 1..4")
    if not 0 <= args.max_refs <= 4:
        raise BoundsError(f"--max-refs {args.max_refs}: must be 0..4")
    if args.max_shared_order < 0:
        raise BoundsError(f"--max-shared-order {args.max_shared_order}: must be at least 0")
    if not 1 <= args.jobs <= 64:
        raise BoundsError(f"--jobs {args.jobs}: must be 1..64")
    return Bounds(
        max_order=args.max_order,
        max_procs=args.max_procs,
        max_refs=args.max_refs,
        all_splits=args.all_splits,
        max_shared_order=args.max_shared_order,
    )


def found_by(args: argparse.Namespace) -> str:
    opts = [f"--max-order {args.max_order}"]
    for name, default in (("max_procs", 2), ("max_shared_order", 2), ("max_refs", 1)):
        if getattr(args, name) != default:
            opts.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    if args.all_splits:
        opts.append("--all-splits")
    return f"foliosim equiv {args.profile_a} {args.profile_b} --exhaustive {' '.join(opts)}"


def main(args: argparse.Namespace) -> int:
    """Run the exhaustive comparison and print the report; the exit status (0, 1)."""
    bounds = bounds_of(args)
    a = load_side(args.profile_a)
    b = load_side(args.profile_b)
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"foliosim equiv --exhaustive: {a.name} (base {a.profile.name}) vs {b.name} "
        f"(base {b.profile.name}); orders 0,2..{bounds.max_order}, up to {bounds.max_procs} "
        f"processes (orders <= {bounds.max_shared_order} with more than one), "
        f"0-{bounds.max_refs} extra references, {args.jobs} job(s)"
    )
    out.print("not enumerated yet: " + "; ".join(NOT_ENUMERATED))
    report = check(a, b, bounds, jobs=args.jobs, stop_early=not args.all)
    per = ", ".join(f"order {o}: {n:,}" for o, n in sorted(report.per_order.items()))
    out.print(
        f"checked {report.checked:,} configurations in {report.seconds:.1f} s "
        f"({report.rate:,.0f} configurations/s; {per})"
    )
    if report.minimal is None:
        out.print(f"equivalent: {a.name} and {b.name} agree on every configuration")
        return 0
    more = (
        " (stopped after the first size with a difference; --all checks everything)"
        if report.stopped_early
        else ""
    )
    out.print(f"NOT equivalent: {report.differing:,} configurations differ{more}")
    c = report.minimal
    assert c is not None
    kinds = sorted(report.kinds.items(), key=lambda kv: kv[1].size())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for n, (kind, k) in enumerate(kinds[:MAX_KINDS]):
        x, y, folio = outcomes(a, b, k)
        title = "the smallest" if k is c else "the smallest with another kind of difference"
        faulted = kind == ("a model fault",) or x.fault or y.fault
        what = "a model fault" if faulted else f"{', '.join(kind)} differ"
        out.print(f"{title} ({what}):")
        out.print(f"  {describe(k)}")
        for line in explain(k, folio, a.name, x, b.name, y):
            out.print(f"  - {line}")
        view = page_views(x.machine, k) if x.machine is not None and not x.fault else {}
        path = Path(args.out) / f"exhaustive-{_slug(b.name)}{'-' + str(n + 1) if n else ''}.scn"
        path.write_text(scenario(k, view, a.name, found_by(args)), encoding="utf-8")
        out.print(f"  scenario: {path}")
    if len(kinds) > MAX_KINDS:
        out.print(f"({len(kinds) - MAX_KINDS} more kinds of difference not shown)")
    return 1


def _slug(name: str) -> str:
    name = name.removesuffix(".py")
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).name)


def check_quietly(spec_a: str, spec_b: str, bounds: Bounds, jobs: int = 1) -> Report:
    """check() by names, for tests and the benchmark."""
    return check(load_side(spec_a), load_side(spec_b), bounds, jobs=jobs)
