"""Cross-process memory access: mm/process_vm_access.c."""

from __future__ import annotations

from foliosim.model import gup
from foliosim.model.machine import Machine
from foliosim.model.types import Mm


def process_vm_rw_core(m: Machine, mm: Mm, start: int, end: int, data: list[int]) -> None:
    """process_vm_rw_core(), mm/process_vm_access.c, Linux 6.18: process_vm_writev(2).

    Writes `data` (one token a page) to [start, end) of `mm`, as
    process_vm_rw_single_vec() does: pin the pages, copy, unpin them dirty.
    """
    pages = gup.pin_user_pages_remote(m, mm, start, end)
    for k, pfn in enumerate(pages):
        m.mem.data[pfn] = data[k]
    gup.unpin_user_pages_dirty_lock(m, pages)
