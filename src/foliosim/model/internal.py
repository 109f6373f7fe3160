"""Helpers mm/ shares among its files: mm/internal.h, Linux 6.18."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from foliosim.model import cost
from foliosim.model.errors import InvariantError
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_WRITE,
    PTRS_PER_PTE,
    PageTable,
    PG_mlocked,
)

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def folio_evictable(m: Machine, folio: int) -> bool:
    """Whether reclaim may evict the folio: not mlocked (anon folios have no mapping flag).
    folio_evictable(), mm/internal.h, Linux 6.18.
    """
    return not m.mem.flags[folio] & PG_mlocked


# fpb_t flags of folio_pte_batch_flags(), mm/internal.h, Linux 6.18: which PTE
# bits must match the first entry's for the batch to go on.
FPB_RESPECT_DIRTY = 1 << 0
FPB_RESPECT_SOFT_DIRTY = 1 << 1
FPB_RESPECT_WRITE = 1 << 2

_FPB_BITS = (
    (FPB_RESPECT_DIRTY, PTE_DIRTY),
    (FPB_RESPECT_SOFT_DIRTY, PTE_SOFT_DIRTY),
    (FPB_RESPECT_WRITE, PTE_WRITE),
)


def folio_pte_batch(t: PageTable, i: int, pfn: int, folio: int, folio_nr: int, max_nr: int) -> int:
    """The number of PTEs from slot i mapping consecutive pages of the folio.
    folio_pte_batch(), mm/internal.h, Linux 6.18, without FPB flags: dirty,
    young, write and soft-dirty differences do not end a batch; at most max_nr entries.
    """
    return folio_pte_batch_flags(t, i, pfn, folio, folio_nr, max_nr, 0)


def folio_pte_batch_flags(
    t: PageTable, i: int, pfn: int, folio: int, folio_nr: int, max_nr: int, flags: int
) -> int:
    """As folio_pte_batch(), the bits the FPB_RESPECT_* flags name ending a batch too.
    folio_pte_batch_flags(), mm/internal.h, Linux 6.18.  Young differences never
    end a batch.  The caller bounds max_nr by its page table (and VMA): a batch
    past the page table's last entry is a model fault, an out-of-bounds read in Linux.
    """
    end = min(max_nr, folio + folio_nr - pfn)
    if i + end > PTRS_PER_PTE:
        raise InvariantError(
            f"folio_pte_batch: {max_nr} PTEs from slot {i} read past the page table's "
            f"{PTRS_PER_PTE} entries (the caller must bound max_nr by the page table)"
        )
    bits, pfns = t.bits, t.pfn
    # Fast path: identical entries (the usual case) mapping consecutive pages.
    first = bits[i]
    if (
        first & PTE_PRESENT
        and not first & PTE_SPECIAL
        and bits[i : i + end].count(first) == end
        and pfns[i : i + end] == array("i", range(pfn, pfn + end))
    ):
        cost.count("ptep_get", end - 1)  # the caller read the first
        return end
    respect = 0
    for flag, bit in _FPB_BITS:
        if flags & flag:
            respect |= bit
    want = first & respect
    nr = 1
    while nr < end:
        b = bits[i + nr]
        if (
            not b & PTE_PRESENT
            or b & PTE_SPECIAL
            or pfns[i + nr] != pfn + nr
            or b & respect != want
        ):
            break
        nr += 1
    cost.count("ptep_get", nr - 1 + (nr < end))  # up to the entry that ended it
    return nr
