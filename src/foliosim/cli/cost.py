"""`foliosim cost SCN --variant A --variant B`: what each variant makes the kernel do.

Runs the scenario on the model once per variant and counts, inside every
try_to_unmap() (the rmap walk and try_to_unmap_one(): the code the variants
change), the primitives Linux would execute: PTE reads, clears and writes, TLB
flush requests and the pages they cover, refcount and mapcount atomics, rmap
walk steps, swap-slot operations.  Each count comes from the hook in the model
primitive (foliosim/model/cost.py), not from an estimate per variant.
Printed side by side (a rich table) or as JSON.  Exit statuses: EXIT_STATUSES
and foliosim.cli.main.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from foliosim.cli.common import DEFAULT_PROFILE, UsageError, read_scenario
from foliosim.scenario.ast import Scenario

SCOPE = "try_to_unmap"

EXIT_STATUSES = {
    0: "the counts were printed, and every expectation held under every variant",
    1: "the counts were printed, but an expectation failed under some variant",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim cost`."""
    parser.add_argument("file", metavar="FILE", help="scenario file (.scn)")
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME|FILE.py",
        help=f"a variant or profile to count (repeat for side by side; default {DEFAULT_PROFILE})",
    )
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")


@dataclass
class Counted:
    """The counts of one variant on one scenario."""

    variant: str
    base: str
    counts: Counter[str] = field(default_factory=Counter)
    calls: int = 0  # try_to_unmap() calls
    failed: list[int] = field(default_factory=list)  # expectation lines that failed
    vmstat: dict[str, int] = field(default_factory=dict)


def count_scenario(scenario: Scenario, name: str) -> Counted:
    """Run `scenario` under the variant `name`, counting inside every try_to_unmap()."""
    from foliosim.model import cost
    from foliosim.model.backend import ModelBackend
    from foliosim.variants import Variant, load_variant, model_functions

    variant = load_variant(name)
    result = Counted(name, variant.base)
    with variant.applied():
        inner = model_functions()[SCOPE][1]  # the variant's, if it replaces it

        def try_to_unmap(m: Any, folio: int, flags: Any) -> None:
            result.calls += 1
            with cost.counting(result.counts):
                inner(m, folio, flags)

        counter = Variant("cost", variant.base, {SCOPE: try_to_unmap})
        with counter.applied():
            obs = ModelBackend(profile=variant.base).run(scenario)
    result.failed = [
        e["line"] for e in obs["events"] if e.get("op") == "expect" and not e.get("ok")
    ]
    result.vmstat = {k: v for k, v in (obs["final"] or {}).get("vmstat", {}).items() if v}
    return result


def as_json(path: str, results: list[Counted]) -> dict[str, Any]:
    """The JSON form of the counts: one entry per variant, keys as in model/cost.py."""
    from foliosim.model.cost import KEYS

    return {
        "scenario": path,
        "scope": f"inside {SCOPE}()",
        "keys": KEYS,
        "variants": [
            {
                "variant": r.variant,
                "base": r.base,
                "try_to_unmap_calls": r.calls,
                "counts": {k: r.counts.get(k, 0) for k in KEYS},
                "expectations_failed": r.failed,
                "vmstat": r.vmstat,
            }
            for r in results
        ],
    }


def table(path: str, results: list[Counted]) -> Table:
    """The counts side by side: one row per count, one column per variant."""
    from foliosim.model.cost import KEYS

    t = Table(title=f"{path}: counted inside {SCOPE}()", title_justify="left")
    t.add_column("operation")
    for r in results:
        t.add_column(r.variant, justify="right")
    if len(results) == 2:
        t.add_column(f"{results[1].variant} / {results[0].variant}", justify="right")
    t.add_row(f"{SCOPE}() calls", *[str(r.calls) for r in results], *([""] * (len(results) == 2)))
    for key, meaning in KEYS.items():
        values = [r.counts.get(key, 0) for r in results]
        ratio: list[str] = []
        if len(results) == 2:
            a, b = values
            ratio = [f"{b / a:.2f}" if a else ("-" if not b else "new")]
        t.add_row(meaning, *[str(v) for v in values], *ratio)
    return t


def main(args: argparse.Namespace) -> int:
    """Count the scenario under each variant; print the table or the JSON."""
    from foliosim.variants import VariantError

    names = args.variant or [DEFAULT_PROFILE]
    if len(set(names)) != len(names):
        raise UsageError("foliosim cost: a --variant is given twice")
    scenario = read_scenario(args.file)
    try:
        results = [count_scenario(scenario, n) for n in names]
    except VariantError as e:
        raise UsageError(str(e)) from None
    status = 1 if any(r.failed for r in results) else 0
    if args.json:
        json.dump(as_json(args.file, results), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return status
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"foliosim cost: {args.file}, model, variants {', '.join(names)}")
    out.print(table(args.file, results))
    for r in results:
        work = ", ".join(f"{k} {v}" for k, v in sorted(r.vmstat.items())) or "no vmstat events"
        failed = f"; expectations failed on lines {r.failed}" if r.failed else ""
        out.print(f"{r.variant} (on {r.base}): {work}{failed}")
    return status
