"""`foliosim equiv A B --exhaustive`: every configuration of one folio under reclaim.

space.py enumerates the bounded configurations, build.py writes each into a
fresh model machine, engine.py reclaims it under a variant and fingerprints
the whole resulting state, explain.py says a difference in plain words and
writes a scenario for it.  check() runs the two variants over the space, in
blocks, on --jobs processes.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foliosim.check.exhaustive.engine import (
    Outcome,
    Side,
    kind_of_difference,
    load_side,
    run_batch,
    run_one,
)
from foliosim.check.exhaustive.space import Bounds, Config, blocks, configs_of_block

__all__ = ["Bounds", "Config", "Report", "check", "load_side"]

BATCH = 512  # configurations per application of a variant


@dataclass
class Report:
    """What an exhaustive run found."""

    checked: int = 0
    differing: int = 0
    seconds: float = 0.0
    minimal: Config | None = None  # the smallest differing configuration
    kinds: dict[tuple[str, ...], Config] = field(default_factory=dict)  # smallest per kind
    stopped_early: bool = False
    per_order: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.checked / self.seconds if self.seconds else 0.0


@dataclass
class _BlockResult:
    block: tuple
    checked: int
    differing: int
    kinds: dict[tuple[str, ...], Config]


def _check_block(a: Side, b: Side, bounds: Bounds, block: tuple) -> _BlockResult:
    checked = differing = 0
    kinds: dict[tuple[str, ...], Config] = {}
    buf: list[Config] = []

    def flush() -> None:
        nonlocal checked, differing
        ra = run_batch(a, buf)
        rb = run_batch(b, buf)
        for c, x, y in zip(buf, ra, rb, strict=True):
            kind = kind_of_difference(x, y)
            if kind:
                differing += 1
                if kind not in kinds or c.size() < kinds[kind].size():
                    kinds[kind] = c
        checked += len(buf)
        buf.clear()

    for c in configs_of_block(bounds, block):
        buf.append(c)
        if len(buf) >= BATCH:
            flush()
    if buf:
        flush()
    return _BlockResult(block, checked, differing, kinds)


_worker: tuple[Side, Side, Bounds] | None = None


def _init_worker(spec_a: str, spec_b: str, bounds: Bounds) -> None:
    global _worker
    _worker = (load_side(spec_a), load_side(spec_b), bounds)


def _work(block: tuple) -> _BlockResult:
    assert _worker is not None
    a, b, bounds = _worker
    return _check_block(a, b, bounds, block)


def check(
    a: Side,
    b: Side,
    bounds: Bounds,
    jobs: int = 1,
    stop_early: bool = True,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Compare a and b on every configuration within `bounds`.

    stop_early: once a size (order, process count) has a difference, finish
    that size and stop: blocks come smallest first, so the smallest
    counterexample, and the smallest of each kind of difference, are among
    the sizes done.
    """
    report = Report()
    start = time.perf_counter()
    todo = blocks(bounds)
    stop_after: tuple[int, int] | None = None

    def take(r: _BlockResult) -> None:
        nonlocal stop_after
        report.checked += r.checked
        report.per_order[r.block[0]] = report.per_order.get(r.block[0], 0) + r.checked
        report.differing += r.differing
        for kind, c in r.kinds.items():
            if kind not in report.kinds or c.size() < report.kinds[kind].size():
                report.kinds[kind] = c
            if report.minimal is None or c.size() < report.minimal.size():
                report.minimal = c
        if r.kinds and stop_early and stop_after is None:
            stop_after = r.block[:2]
        report.seconds = time.perf_counter() - start
        if progress is not None:
            progress(report)

    def past(block: tuple) -> bool:
        return stop_after is not None and block[:2] > stop_after

    if jobs <= 1:
        for block in todo:
            if past(block):
                report.stopped_early = True
                break
            take(_check_block(a, b, bounds, block))
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs, _init_worker, (a.spec, b.spec, bounds)) as pool:
            for r in pool.imap(_work, todo):
                if past(r.block):
                    report.stopped_early = True
                    pool.terminate()
                    break
                take(r)
    report.seconds = time.perf_counter() - start
    return report


def outcomes(a: Side, b: Side, c: Config) -> tuple[Outcome, Outcome, int]:
    """Both sides' outcomes on one configuration, machines kept, and the folio's pfn."""
    from foliosim.check.exhaustive.build import build

    with a.applied():
        x = run_one(a, c, keep=True, validate=True)
    with b.applied():
        y = run_one(b, c, keep=True, validate=True)
    _, folio = build(c, a.profile)
    return x, y, folio
