"""Folio flag tests and updates: include/linux/page-flags.h, Linux 6.18.

The lowest layer of the model with mm.py and page_ref.py: it imports only types.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foliosim.model.types import PG_anon, PG_dirty, PG_lru, PG_swapbacked, PG_swapcache, PG_tail

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def page_folio(m: Machine, pfn: int) -> int:
    """The head pfn of the folio this page belongs to.
    page_folio() -> _compound_head(), include/linux/page-flags.h, Linux 6.18.
    """
    flags = m.mem.flags
    if not flags[pfn] & PG_tail:
        return pfn
    # A folio of order k starts at a multiple of 2^k (Memmap.alloc), and every
    # page between its head and pfn is a tail: the first non-tail found by
    # rounding down is the head.
    k = 1
    while True:
        head = pfn & ~((1 << k) - 1)
        if not flags[head] & PG_tail:
            return head
        k += 1


def folio_test_large(m: Machine, folio: int) -> bool:
    """Whether the folio has more than one page.
    folio_test_large(), include/linux/page-flags.h, Linux 6.18.
    """
    return m.mem.order[folio] > 0


def folio_test_lru(m: Machine, folio: int) -> bool:
    """folio_test_lru() (PG_lru), include/linux/page-flags.h, Linux 6.18."""
    return bool(m.mem.flags[folio] & PG_lru)


def folio_test_swapbacked(m: Machine, folio: int) -> bool:
    """folio_test_swapbacked() (PG_swapbacked), include/linux/page-flags.h, Linux 6.18."""
    return bool(m.mem.flags[folio] & PG_swapbacked)


def folio_test_swapcache(m: Machine, folio: int) -> bool:
    """folio_test_swapcache(), include/linux/page-flags.h, Linux 6.18: swap-backed and PG_swapcache."""
    f = int(m.mem.flags[folio])
    return bool(f & PG_swapcache) and bool(f & PG_swapbacked)


def folio_test_dirty(m: Machine, folio: int) -> bool:
    """folio_test_dirty() (PG_dirty), include/linux/page-flags.h, Linux 6.18."""
    return bool(m.mem.flags[folio] & PG_dirty)


def folio_test_anon(m: Machine, folio: int) -> bool:
    """folio_test_anon(), include/linux/page-flags.h, Linux 6.18.

    Model: PG_anon stands for the PAGE_MAPPING_ANON bit of folio->mapping.
    """
    return bool(m.mem.flags[folio] & PG_anon)


def folio_set(m: Machine, folio: int, flag: int) -> None:
    """Set a flag: the folio_set_<flag>() that FOLIO_FLAG() generates.
    include/linux/page-flags.h, Linux 6.18; the flag is an argument here.
    """
    m.mem.flags[folio] |= flag


def folio_clear(m: Machine, folio: int, flag: int) -> None:
    """Clear a flag: the folio_clear_<flag>() that FOLIO_FLAG() generates.
    include/linux/page-flags.h, Linux 6.18; the flag is an argument here.
    """
    m.mem.flags[folio] &= ~flag


def folio_test_clear(m: Machine, folio: int, flag: int) -> bool:
    """Clear a flag, return whether it was set: folio_test_clear_<flag>().
    TESTCLEARFLAG(), include/linux/page-flags.h, Linux 6.18; the flag is an argument here.
    """
    old = int(m.mem.flags[folio])
    m.mem.flags[folio] = old & ~flag
    return bool(old & flag)
