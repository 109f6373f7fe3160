"""When the model's fast paths may run: one switch for all of them (docs/fast-paths.md).

A fast path does what a loop of its slow path (the kernel-named function it sits
next to) would do over a run of identical pages or folios, at once, with numpy
on the memmap and page-table arrays.  The slow path stays the definition: each
fast path is used only when its own precondition predicate holds, and only when
fast_paths_allowed() says so: not while tracing (`--trace` prints the slow
path's steps), not while `foliosim cost` counts, and not while a variant
replaces model functions (so the replacement is really called).  The built-in
variant `slow-paths` replaces fast_paths_allowed() to turn them all off; the
tests compare the model with and without them (tests/model/test_fastpath.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from foliosim.model import cost

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def fast_paths_allowed(m: Machine) -> bool:
    """True unless tracing, counting, or a variant is applied: a fast path may stand for its loop."""
    return not m.tracing and cost.shortcuts_allowed()


# Runs shorter than this go the slow way: numpy's cost per call is more than a
# short loop's.  FOLIOSIM_FAST_RUN_MIN overrides it: the equality tests set 2,
# so that small scenarios take the fast paths too.
FAST_RUN_MIN = int(os.environ.get("FOLIOSIM_FAST_RUN_MIN", "16"))


def is_fast_run(m: Machine, nr: int) -> bool:
    """Whether a run of nr pages or folios is long enough for a fast path, and they are allowed."""
    return nr >= FAST_RUN_MIN and fast_paths_allowed(m)
