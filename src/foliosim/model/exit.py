"""Process exit: do_exit() of kernel/exit.c."""

from __future__ import annotations

from foliosim.model import mmap
from foliosim.model.machine import Machine
from foliosim.model.types import Mm


def do_exit(m: Machine, mm: Mm) -> None:
    """do_exit(), kernel/exit.c, Linux 6.18: the exit(2) entry point; the mm goes away.

    The model's process is its mm: exit_mm() -> mmput() -> exit_mmap().
    """
    mmap.exit_mmap(m, mm)
    del m.mms[mm.name]
