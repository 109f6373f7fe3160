"""Exhaustive checker throughput: configurations per minute on one core, and with --jobs.

One configuration is the whole cost `foliosim equiv A B --exhaustive` pays
for it: building the state twice (fresh for each variant), reclaiming it
under linux-6.18 and under the variant, fingerprinting both results and
comparing them.  The figure is per second of CPU time of the checking
process (so other load on the machine does not count against it) and per
second of wall time; the target is 50,000 configurations a minute on one
core.  With --jobs N the wall-time rate of N worker processes is shown too.

Run as `.venv/bin/python bench/exhaustive_throughput.py [--variant V]
[--max-order N] [--jobs N]`.  Exit status 1 if one core falls short of
the target.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

from foliosim.check.exhaustive import check
from foliosim.check.exhaustive.engine import load_side
from foliosim.check.exhaustive.space import Bounds

TARGET_PER_MINUTE = 50_000


def _cpu_seconds() -> float:
    # This process and its finished children (the --jobs workers).
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(variant: str, bounds: Bounds, jobs: int) -> tuple[int, float, float]:
    """(configurations, wall seconds, CPU seconds) of one exhaustive run."""
    a, b = load_side("linux-6.18"), load_side(variant)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    report = check(a, b, bounds, jobs=jobs, stop_early=False)
    return report.checked, time.perf_counter() - wall0, _cpu_seconds() - cpu0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="seed-v1", help="compared with linux-6.18 (seed-v1)")
    ap.add_argument("--max-order", type=int, default=2, help="bounds of the run (2)")
    ap.add_argument("--max-procs", type=int, default=1, help="(1)")
    ap.add_argument("--jobs", type=int, default=2, help="also time this many workers (2)")
    args = ap.parse_args()
    bounds = Bounds(max_order=args.max_order, max_procs=args.max_procs)
    print(
        f"linux-6.18 vs {args.variant}, orders 0,2..{args.max_order}, "
        f"{args.max_procs} process(es); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    n, wall, cpu = measure(args.variant, bounds, 1)
    per_cpu_min = n / cpu * 60
    print(
        f"1 job:  {n:,} configurations, {wall:.1f} s wall, {cpu:.1f} s CPU: "
        f"{per_cpu_min:,.0f}/min per CPU second, {n / wall * 60:,.0f}/min wall"
    )
    if args.jobs > 1:
        n, wall, cpu = measure(args.variant, bounds, args.jobs)
        print(
            f"{args.jobs} jobs: {n:,} configurations, {wall:.1f} s wall, {cpu:.1f} s CPU: "
            f"{n / wall * 60:,.0f}/min wall"
        )
    ok = per_cpu_min >= TARGET_PER_MINUTE
    print(f"target {TARGET_PER_MINUTE:,}/min on one core: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
