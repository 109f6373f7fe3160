"""The SMP memory barriers: include/asm-generic/barrier.h (and arch/*/include/asm/barrier.h).

A header module (the bottom layer, importing nothing).  The model runs one CPU
at a time, so a barrier orders nothing here and costs nothing: each is a no-op.  They are still called where the kernel has them,
because `foliosim race` records the calls (foliosim.race.record) and turns
them into the barriers of the litmus tests it gives herd7.
"""

from __future__ import annotations


def smp_mb() -> None:
    """Order every earlier memory access before every later one: a no-op here.
    smp_mb(), include/asm-generic/barrier.h, Linux 6.18.
    """


def smp_rmb() -> None:
    """Order earlier reads before later reads: a no-op here.
    smp_rmb(), include/asm-generic/barrier.h, Linux 6.18.
    """
