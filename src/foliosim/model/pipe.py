"""Pipe buffers: fs/pipe.c, Linux 6.18."""

from __future__ import annotations

from foliosim.model.machine import Machine
from foliosim.model.mm import folio_put_refs
from foliosim.model.page_flags import page_folio
from foliosim.model.types import PG_zero


def free_pipe_info(m: Machine, pages: list[int]) -> None:
    """Release the pipe's buffers: put_page() on each page (of a vmsplice).

    free_pipe_info() -> pipe_buf_release() -> page_cache_pipe_buf_release(),
    fs/pipe.c and fs/splice.c, Linux 6.18.
    """
    for pfn in pages:
        if not m.mem.flags[pfn] & PG_zero:
            folio_put_refs(m, page_folio(m, pfn), 1)
