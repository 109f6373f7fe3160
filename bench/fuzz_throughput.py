"""Fuzzing throughput: scenarios per second on the model alone, the kernel alone, and both.

The same fuzz scenarios (drawn by foliosim.check.gen with a fixed seed,
printed and parsed back as `foliosim fuzz` does) are run on each
configuration; the table gives scenarios per second, the median and worst
milliseconds per scenario, and how long drawing + printing + parsing takes
(the fuzzer's own overhead).  Shrinking is not included: it costs one run per
candidate on the same backends.

Run as `.venv/bin/python bench/fuzz_throughput.py [--count N] [--kernel-count N]
[--seed S] [--mthp]`.  The kernel rows need root (they are left out, with the
reason, otherwise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from rich.console import Console
from rich.table import Table

from foliosim.check import gen
from foliosim.check.diff import diff_observations
from foliosim.scenario.ast import Scenario
from foliosim.scenario.parser import parse_text
from foliosim.scenario.printer import to_text


def draw_scenarios(count: int, campaign_seed: int, mthp: bool) -> tuple[list[Scenario], float]:
    """`count` fuzz scenarios as the fuzzer runs them, and the seconds it took to make them."""
    drawn: list[Scenario] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(campaign_seed)
    @given(gen.scenarios(mthp=mthp))
    def collect(s: Scenario) -> None:
        drawn.append(parse_text(to_text(s), "fuzz.scn"))

    start = time.perf_counter()
    collect()
    return drawn, time.perf_counter() - start


def time_config(scenarios: list[Scenario], backends: list[tuple[str, Any]]) -> dict[str, Any]:
    """Run every scenario on every backend (and diff when two): per-scenario seconds."""
    per: list[float] = []
    errors = 0
    differing = 0
    for s in scenarios:
        start = time.perf_counter()
        obs = []
        try:
            obs = [b.run(s) for _, b in backends]
        except Exception:  # noqa: BLE001 - counted: the fuzzer would save it as a finding
            errors += 1
        if len(obs) == 2 and diff_observations(obs[0], obs[1], s):
            differing += 1
        per.append(time.perf_counter() - start)
    total = sum(per)
    return {
        "n": len(per),
        "total": total,
        "rate": len(per) / total if total else 0.0,
        "median_ms": statistics.median(per) * 1000,
        "max_ms": max(per) * 1000,
        "errors": errors,
        "differing": differing,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=200, help="scenarios for the model row")
    p.add_argument(
        "--kernel-count",
        type=int,
        default=15,
        help="scenarios for the kernel rows (each takes seconds)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mthp", action="store_true")
    args = p.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

    from foliosim.model.backend import ModelBackend

    scenarios, gen_seconds = draw_scenarios(
        max(args.count, args.kernel_count), args.seed, args.mthp
    )
    commands = sum(len(s.commands) for s in scenarios) / len(scenarios)
    console.print(
        f"fuzz throughput: seed {args.seed}, {len(scenarios)} scenarios drawn "
        f"({commands:.1f} commands on average){', mthp' if args.mthp else ''}"
    )

    rows: list[tuple[str, dict[str, Any]]] = []
    rows.append(("model", time_config(scenarios[: args.count], [("model", ModelBackend())])))
    rows.append(
        (
            "model, checked",
            time_config(scenarios[: args.count], [("model", ModelBackend(check=True))]),
        )
    )
    kernel_reason: str | None
    try:
        from foliosim.kernel.backend import KernelBackend

        kernel_reason = KernelBackend.unavailable_reason()
    except ImportError as e:
        kernel_reason = f"kernel backend not importable: {e}"
    if kernel_reason is None:
        few = scenarios[: args.kernel_count]
        rows.append(("kernel", time_config(few, [("kernel", KernelBackend())])))
        rows.append(
            (
                "model + kernel, diffed",
                time_config(few, [("model", ModelBackend()), ("kernel", KernelBackend())]),
            )
        )

    table = Table()
    for col in (
        "backends",
        "scenarios",
        "seconds",
        "scenarios/s",
        "median ms",
        "max ms",
        "errors",
        "differing",
    ):
        table.add_column(col, justify="left" if col == "backends" else "right")
    table.add_row(
        "(draw + print + parse)",
        str(len(scenarios)),
        f"{gen_seconds:.2f}",
        f"{len(scenarios) / gen_seconds:.1f}",
        "",
        "",
        "",
        "",
    )
    for name, r in rows:
        table.add_row(
            name,
            str(r["n"]),
            f"{r['total']:.2f}",
            f"{r['rate']:.2f}",
            f"{r['median_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            str(r["errors"]),
            str(r["differing"]) if "kernel" in name and "+" in name else "",
        )
    console.print(table)
    if kernel_reason is not None:
        console.print(f"kernel rows left out: {kernel_reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
