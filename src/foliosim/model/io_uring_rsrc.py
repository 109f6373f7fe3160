"""io_uring registered buffers: io_uring/rsrc.c and io_uring/memmap.c, Linux 6.18.

`pin NAME RANGE as REF` is IORING_REGISTER_BUFFERS of each run (one ring per
run, one buffer each); `release REF` is IORING_UNREGISTER_BUFFERS.  A buffer
keeps the pinned pages whatever the page tables do later: that is what a
long-term pin is for.
"""

from __future__ import annotations

from dataclasses import dataclass

from foliosim.model import gup
from foliosim.model.errors import SyscallError
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_nr_pages
from foliosim.model.page_flags import page_folio
from foliosim.model.types import Mm


@dataclass
class IoMappedUbuf:
    """struct io_mapped_ubuf: the pages of one registered buffer, and the bvecs that pin them."""

    pages: list[int]  # every page of the buffer, in address order (what IO reads)
    bvec: list[int]  # each entry holds one pin (a page, or a coalesced folio's head)


def io_pin_pages(m: Machine, mm: Mm, start: int, end: int, write: bool = True) -> list[int]:
    """io_pin_pages(), io_uring/memmap.c, Linux 6.18: all pages pinned, or none and EFAULT.

    io_uring always pins FOLL_WRITE | FOLL_LONGTERM; `write=False` is the R/O
    long-term pin (pin_user_pages(FOLL_LONGTERM) without FOLL_WRITE) that the
    scenario's `readonly` asks for and no interface of this machine offers.
    """
    try:
        return gup.pin_user_pages_fast(m, mm, start, end, write)
    except gup.PartialPin as e:
        for pfn in e.pages:  # "if we did partial map, release any pages we did get"
            gup.unpin_user_folio(m, page_folio(m, pfn), 1)
        raise SyscallError("EFAULT") from None


def io_check_coalesce_buffer(m: Machine, pages: list[int]) -> bool:
    """io_check_coalesce_buffer(), io_uring/rsrc.c, Linux 6.18: pages run through whole equal-sized folios."""
    folio = page_folio(m, pages[0])
    nr_mid = folio_nr_pages(m, folio)
    count, nr_folios = 1, 1
    for k in range(1, len(pages)):
        if page_folio(m, pages[k]) == folio and pages[k] == pages[k - 1] + 1:
            count += 1
            continue
        if nr_folios == 1:
            if pages[k - 1] - folio != nr_mid - 1:
                return False
        elif count != nr_mid:
            return False
        folio = page_folio(m, pages[k])
        if folio_nr_pages(m, folio) != nr_mid or pages[k] != folio:
            return False
        count = 1
        nr_folios += 1
    return nr_mid != 1  # "if (data.nr_pages_mid != 1) coalesced = ..."


def io_coalesce_buffer(m: Machine, pages: list[int]) -> list[int]:
    """io_coalesce_buffer(), io_uring/rsrc.c, Linux 6.18: one bvec (and one pin) per folio."""
    heads: list[int] = []
    for pfn in pages:
        folio = page_folio(m, pfn)
        if heads and heads[-1] == folio:
            gup.unpin_user_folio(m, folio, 1)  # "Drop all but one ref"
        else:
            heads.append(folio)
    return heads


def io_sqe_buffer_register(
    m: Machine, mm: Mm, start: int, end: int, write: bool = True
) -> IoMappedUbuf:
    """io_sqe_buffer_register(), io_uring/rsrc.c, Linux 6.18: pin [start, end) for fixed IO."""
    pages = io_pin_pages(m, mm, start, end, write)
    bvec = list(pages)
    if len(pages) > 1 and io_check_coalesce_buffer(m, pages):
        bvec = io_coalesce_buffer(m, pages)
    if m.tracing:
        m.trace("io_sqe_buffer_register", f"{len(pages)} pages pinned in {len(bvec)} bvecs")
    return IoMappedUbuf(pages, bvec)


def io_release_ubuf(m: Machine, imu: IoMappedUbuf) -> None:
    """io_release_ubuf(), io_uring/rsrc.c, Linux 6.18: unpin_user_folio() per bvec (no dirtying)."""
    for pfn in imu.bvec:
        gup.unpin_user_folio(m, page_folio(m, pfn), 1)
