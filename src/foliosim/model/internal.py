"""Helpers mm/ shares among its files: mm/internal.h, Linux 6.18."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from foliosim.model.types import PTE_PRESENT, PTE_SPECIAL, PageTable, PG_mlocked

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def folio_evictable(m: Machine, folio: int) -> bool:
    """Whether reclaim may evict the folio: not mlocked (anon folios have no mapping flag).
    folio_evictable(), mm/internal.h, Linux 6.18.
    """
    return not m.mem.flags[folio] & PG_mlocked


def folio_pte_batch(t: PageTable, i: int, pfn: int, folio: int, folio_nr: int, max_nr: int) -> int:
    """The number of PTEs from slot i mapping consecutive pages of the folio.
    folio_pte_batch(), mm/internal.h, Linux 6.18, without FPB flags: dirty,
    young, write and soft-dirty differences do not end a batch; at most max_nr entries.
    """
    end = min(max_nr, folio + folio_nr - pfn)
    bits, pfns = t.bits, t.pfn
    # Fast path: identical entries (the usual case) mapping consecutive pages.
    first = bits[i]
    if (
        first & PTE_PRESENT
        and not first & PTE_SPECIAL
        and bits[i : i + end].count(first) == end
        and pfns[i : i + end] == array("i", range(pfn, pfn + end))
    ):
        return end
    nr = 1
    while nr < end:
        b = bits[i + nr]
        if not b & PTE_PRESENT or b & PTE_SPECIAL or pfns[i + nr] != pfn + nr:
            break
        nr += 1
    return nr
