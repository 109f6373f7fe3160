"""Folio size, references and mapcounts: include/linux/mm.h, Linux 6.18.

The lowest layer of the model with page_flags.py and page_ref.py: it imports
only types.py and those (and the counters and trace names below every file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foliosim.model.page_ref import folio_ref_add, folio_ref_sub_and_test
from foliosim.model.trace import folio_name
from foliosim.model.types import ZERO_PFN, PG_anon
from foliosim.model.vmstat import count_mthp_stat

if TYPE_CHECKING:
    from foliosim.model.machine import Machine

GUP_PIN_COUNTING_BIAS = 1024  # include/linux/mm.h


def folio_nr_pages(m: Machine, folio: int) -> int:
    """The number of pages in the folio.
    folio_nr_pages(), include/linux/mm.h, Linux 6.18.
    """
    return 1 << m.mem.order[folio]


def folio_get(m: Machine, folio: int) -> None:
    """Take a reference.
    folio_get(), include/linux/mm.h, Linux 6.18.
    """
    # Model: the shared zero page is never counted (its PTEs are special).
    if folio != ZERO_PFN:
        folio_ref_add(m, folio, 1)


def folio_put_refs(m: Machine, folio: int, nr: int = 1) -> None:
    """Drop nr references; the last one frees the folio.
    folio_put_refs(), include/linux/mm.h, Linux 6.18.
    """
    if folio == ZERO_PFN:
        return
    if folio_ref_sub_and_test(m, folio, nr):
        __folio_put(m, folio)


def folio_put(m: Machine, folio: int) -> None:
    """Drop a reference; the last one frees the folio.
    folio_put(), include/linux/mm.h, Linux 6.18.
    """
    folio_put_refs(m, folio, 1)


# mm/swap.c defines __folio_put(); the model keeps it beside folio_put(), its
# caller, so that this bottom layer imports nothing above it.
def __folio_put(m: Machine, folio: int) -> None:
    """The last reference is gone: off the deferred split queue, back to the buddy allocator.
    __folio_put(), mm/swap.c, Linux 6.18.
    """
    if m.tracing:
        m.trace("__folio_put", f"folio {folio_name(m, folio)} freed")
    nr = folio_nr_pages(m, folio)
    if nr > 1:
        order = m.mem.order[folio]
        if m.mem.flags[folio] & PG_anon:
            count_mthp_stat(m, order, "nr_anon", -1)
        # folio_unqueue_deferred_split()
        if m.deferred_split.pop(folio, False):
            count_mthp_stat(m, order, "nr_anon_partially_mapped", -1)
        m.entire_mapcount.pop(folio, None)
    for page in range(folio, folio + nr):
        m.mem.flags[page] = 0
        m.mem.data[page] = 0
    m.mem.order[folio] = 0


def folio_mapcount(m: Machine, folio: int) -> int:
    """Page-table mappings of the folio: each PTE and each PMD counts one.
    folio_mapcount(), include/linux/mm.h, Linux 6.18 (CONFIG_PAGE_MAPCOUNT).
    """
    order = m.mem.order[folio]
    if not order:
        return m.mem.mapcount[folio]
    return sum(m.mem.mapcount[folio : folio + (1 << order)]) + m.entire_mapcount.get(folio, 0)


def folio_mapped(m: Machine, folio: int) -> bool:
    """Whether any page table maps the folio.
    folio_mapped(), include/linux/mm.h, Linux 6.18.
    """
    return folio_mapcount(m, folio) > 0


def folio_maybe_dma_pinned(m: Machine, folio: int) -> bool:
    """Whether the folio may be pinned: small folios by the pin bias, large by _pincount.
    folio_maybe_dma_pinned(), include/linux/mm.h, Linux 6.18.
    """
    if m.mem.order[folio]:
        return m.pincount.get(folio, 0) > 0
    return int(m.mem.refcount[folio]) >= GUP_PIN_COUNTING_BIAS
