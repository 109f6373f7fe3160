"""The SMP memory barriers: include/asm-generic/barrier.h (and arch/*/include/asm/barrier.h).

The model runs one CPU at a time, so a barrier orders nothing here and costs
nothing: each is a no-op.  They are still called where the kernel has them,
because `foliosim race` records the calls (foliosim.race.record) and turns
them into the barriers of the litmus tests it gives herd7.
"""

from __future__ import annotations


def smp_mb() -> None:
    """smp_mb(): full barrier; a no-op in the sequential model."""


def smp_rmb() -> None:
    """smp_rmb(): read barrier; a no-op in the sequential model."""
