"""Splicing user pages into a pipe: fs/splice.c, Linux 6.18."""

from __future__ import annotations

from foliosim.model import gup
from foliosim.model.errors import AccessError
from foliosim.model.machine import Machine
from foliosim.model.types import Mm

# iter_to_pipe(), fs/splice.c: iov_iter_get_pages2() takes at most 16 pages a call.
VMSPLICE_PAGES_PER_CALL = 16


def vmsplice_to_pipe(m: Machine, mm: Mm, start: int, end: int) -> list[int]:
    """vmsplice_to_pipe() -> iter_to_pipe(), fs/splice.c, Linux 6.18: GUP 16 pages at a time."""
    pages: list[int] = []
    for s in range(start, end, VMSPLICE_PAGES_PER_CALL):
        try:
            pages.extend(gup.get_user_pages_fast(m, mm, s, min(end, s + VMSPLICE_PAGES_PER_CALL)))
        except AccessError as e:
            # What earlier calls spliced stays in the pipe (iter_to_pipe() returns the
            # bytes moved so far): the error carries those pages too.
            e.pages = pages + e.pages
            raise
    return pages
