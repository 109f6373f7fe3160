"""Pipe buffers: fs/pipe.c, Linux 6.18."""

from __future__ import annotations

from foliosim.model.capability import CAP_SYS_ADMIN, CAP_SYS_RESOURCE, capable
from foliosim.model.errors import SyscallError
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_put_refs
from foliosim.model.page_flags import page_folio
from foliosim.model.types import PAGE_SHIFT, PG_zero

PAGE_SIZE = 1 << PAGE_SHIFT
PIPE_DEF_BUFFERS = 16  # include/linux/pipe_fs_i.h: a new pipe's max_usage
# /proc/sys/fs/pipe-max-size and pipe-user-pages-soft: their defaults, fs/pipe.c
pipe_max_size = 1048576
pipe_user_pages_soft = PIPE_DEF_BUFFERS * 1024  # PIPE_DEF_BUFFERS * INR_OPEN_CUR


def round_pipe_size(size: int) -> int:
    """round_pipe_size(), fs/pipe.c, Linux 6.18: a power of two of pages, at least one page; 0 above 2G."""
    if size > 1 << 31:
        return 0
    if size < PAGE_SIZE:
        return PAGE_SIZE
    return 1 << (size - 1).bit_length()


def pipe_is_unprivileged_user(m: Machine) -> bool:
    """pipe_is_unprivileged_user(), fs/pipe.c, Linux 6.18."""
    return not capable(m, CAP_SYS_RESOURCE) and not capable(m, CAP_SYS_ADMIN)


def pipe_set_size(m: Machine, max_usage: int, arg: int) -> int:
    """pipe_set_size(), fs/pipe.c, Linux 6.18 (F_SETPIPE_SZ): the pipe's new size in bytes.

    Growing a pipe past /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE:
    EPERM otherwise, even for root.  Model: the scenario's pipes are the only
    ones its user has (account_pipe_buffers()), one of PIPE_DEF_BUFFERS each.
    """
    size = round_pipe_size(arg)
    nr_slots = size >> PAGE_SHIFT
    if not nr_slots:
        raise SyscallError("EINVAL")
    if nr_slots > max_usage and size > pipe_max_size and not capable(m, CAP_SYS_RESOURCE):
        raise SyscallError("EPERM")
    user_bufs = nr_slots
    if (
        nr_slots > max_usage
        and user_bufs > pipe_user_pages_soft  # too_many_pipe_buffers_soft(); no hard limit by default
        and pipe_is_unprivileged_user(m)
    ):
        raise SyscallError("EPERM")
    return nr_slots * PAGE_SIZE


def free_pipe_info(m: Machine, pages: list[int]) -> None:
    """Release the pipe's buffers: put_page() on each page (of a vmsplice).

    free_pipe_info() -> pipe_buf_release() -> page_cache_pipe_buf_release(),
    fs/pipe.c and fs/splice.c, Linux 6.18.
    """
    for pfn in pages:
        if not m.mem.flags[pfn] & PG_zero:
            folio_put_refs(m, page_folio(m, pfn), 1)
