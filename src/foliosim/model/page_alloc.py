"""Allocating folios: mm/page_alloc.c, Linux 6.18."""

from __future__ import annotations

from typing import TYPE_CHECKING

from foliosim.model.types import PG_head, PG_large_rmappable, PG_tail, PG_uptodate

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def folio_alloc(m: Machine, order: int) -> int:
    """A new zeroed folio of `order` with one reference.
    folio_alloc() -> __folio_alloc() -> prep_new_page(), mm/page_alloc.c, Linux 6.18.
    """
    # Model: memory comes zeroed, as vma_alloc_zeroed_movable_folio() gives it to
    # the fault paths; every large folio is an anon one (folio_set_large_rmappable()).
    # memcg (issue 13): the charge every caller makes next (mem_cgroup_charge()).
    memcontrol_try_charge(m, 1 << order)
    mem = m.mem
    folio = mem.alloc(1 << order)
    mem.refcount[folio] = 1
    mem.order[folio] = order
    if order:
        # prep_compound_page() + folio_set_large_rmappable().
        mem.flags[folio] = PG_uptodate | PG_head | PG_large_rmappable
        for page in range(folio + 1, folio + (1 << order)):
            mem.flags[page] = PG_tail
    else:
        mem.flags[folio] = PG_uptodate
    return folio


# --- memcg (issue 13) ------------------------------------------------------------


def memcontrol_try_charge(m: Machine, nr_pages: int) -> None:
    """mem_cgroup_charge() -> try_charge_memcg(), mm/memcontrol.c, Linux 6.18.

    (memcontrol.try_charge_memcg: the allocator is below the reclaim code in the
    model's layers, so it is imported here.)
    """
    from foliosim.model import memcontrol

    memcontrol.try_charge_memcg(m, nr_pages)
