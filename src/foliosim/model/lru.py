"""LRU lists and the per-CPU folio batches: mm/swap.c (and folio refcounting)."""

from __future__ import annotations

from foliosim.model import cost
from foliosim.model.machine import FOLIO_BATCH_SIZE, Machine
from foliosim.model.types import (
    ZERO_PFN,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_lru,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_tail,
    PG_unevictable,
    PG_workingset,
)


def page_folio(m: Machine, pfn: int) -> int:
    """page_folio(): the head pfn of the folio this page belongs to."""
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


def folio_nr_pages(m: Machine, folio: int) -> int:
    return 1 << m.mem.order[folio]


def folio_test_large(m: Machine, folio: int) -> bool:
    return m.mem.order[folio] > 0


def folio_test_lru(m: Machine, folio: int) -> bool:
    return bool(m.mem.flags[folio] & PG_lru)


def folio_test_swapbacked(m: Machine, folio: int) -> bool:
    return bool(m.mem.flags[folio] & PG_swapbacked)


def folio_test_swapcache(m: Machine, folio: int) -> bool:
    f = int(m.mem.flags[folio])
    return bool(f & PG_swapcache) and bool(f & PG_swapbacked)


def folio_test_dirty(m: Machine, folio: int) -> bool:
    return bool(m.mem.flags[folio] & PG_dirty)


def folio_test_anon(m: Machine, folio: int) -> bool:
    return bool(m.mem.flags[folio] & PG_anon)


def folio_test_lazyfree(m: Machine, folio: int) -> bool:
    """folio_test_lazyfree(): anon and not swap-backed (MADV_FREE'd or droppable)."""
    return (int(m.mem.flags[folio]) & (PG_anon | PG_swapbacked)) == PG_anon


def folio_evictable(m: Machine, folio: int) -> bool:
    """folio_evictable(), include/linux/swap.h: not mlocked (anon folios have no mapping flag)."""
    return not m.mem.flags[folio] & PG_mlocked


def folio_set(m: Machine, folio: int, flag: int) -> None:
    m.mem.flags[folio] |= flag


def folio_clear(m: Machine, folio: int, flag: int) -> None:
    m.mem.flags[folio] &= ~flag


def folio_test_clear(m: Machine, folio: int, flag: int) -> bool:
    old = int(m.mem.flags[folio])
    m.mem.flags[folio] = old & ~flag
    return bool(old & flag)


def folio_get(m: Machine, folio: int, nr: int = 1) -> None:
    """folio_get() / folio_ref_add()."""
    cost.count("refcount_atomic")
    if folio != ZERO_PFN:
        m.mem.refcount[folio] += nr


def folio_put_refs(m: Machine, folio: int, nr: int = 1) -> None:
    """folio_put_refs(): drop `nr` references; the last one frees the folio (__folio_put)."""
    if folio == ZERO_PFN:
        return
    cost.count("refcount_atomic")
    mem = m.mem
    mem.refcount[folio] -= nr
    if mem.refcount[folio] == 0:
        free_folio(m, folio)


def folio_put(m: Machine, folio: int) -> None:
    folio_put_refs(m, folio, 1)


def free_folio(m: Machine, folio: int) -> None:
    """__folio_put(): the last reference is gone; off the LRU, back to the buddy allocator."""
    if m.tracing:
        m.trace("__folio_put", f"folio {m.folio_name(folio)} freed")
    nr = folio_nr_pages(m, folio)
    if nr > 1:
        order = m.mem.order[folio]
        if m.mem.flags[folio] & PG_anon:
            m.count_mthp_stat(order, "nr_anon", -1)
        # folio_unqueue_deferred_split()
        if m.deferred_split.pop(folio, False):
            m.count_mthp_stat(order, "nr_anon_partially_mapped", -1)
        m.entire_mapcount.pop(folio, None)
    for page in range(folio, folio + nr):
        m.mem.flags[page] = 0
        m.mem.data[page] = 0
    m.mem.order[folio] = 0


# --- per-CPU batches -------------------------------------------------------------


def lru_add(m: Machine, folio: int) -> None:
    """lru_add() move function, mm/swap.c, Linux 6.18: onto the list folio_lru_list() picks."""
    if folio_evictable(m, folio):
        folio_clear(m, folio, PG_unevictable)
    else:
        folio_clear(m, folio, PG_active)
        folio_set(m, folio, PG_unevictable)


def lru_lazyfree(m: Machine, folio: int) -> None:
    """lru_lazyfree() move function, mm/swap.c, Linux 6.18: to the inactive file list."""
    f = int(m.mem.flags[folio])
    if (
        (f & PG_anon)
        and (f & PG_swapbacked)
        and not (f & PG_swapcache)
        and not (f & PG_unevictable)
    ):
        nr = folio_nr_pages(m, folio)
        # Lazyfree folios go to the file list so they are reclaimed before
        # swap-backed anon folios; clearing PG_swapbacked is what marks them.
        m.mem.flags[folio] = f & ~(PG_active | PG_referenced | PG_swapbacked)
        m.count_vm_events("pglazyfree", nr)
        if m.tracing:
            m.trace(
                "lru_lazyfree", f"folio {m.folio_name(folio)} now lazyfree (swapbacked cleared)"
            )


def lru_deactivate(m: Machine, folio: int) -> None:
    """lru_deactivate() move function, mm/swap.c, Linux 6.18 (non-MGLRU)."""
    f = int(m.mem.flags[folio])
    if not (f & PG_unevictable) and (f & PG_active):
        m.mem.flags[folio] = f & ~(PG_active | PG_referenced)
        m.count_vm_events("pgdeactivate", folio_nr_pages(m, folio))


def lru_activate(m: Machine, folio: int) -> None:
    """lru_activate() move function, mm/swap.c, Linux 6.18."""
    f = int(m.mem.flags[folio])
    if f & (PG_active | PG_unevictable):
        return
    m.mem.flags[folio] = f | PG_active
    m.count_vm_events("pgactivate", folio_nr_pages(m, folio))


MOVE_FN = {
    "lru_add": lru_add,
    "lru_lazyfree": lru_lazyfree,
    "lru_deactivate": lru_deactivate,
    "lru_activate": lru_activate,
}


def folio_batch_move_lru(m: Machine, batch: str) -> None:
    """folio_batch_move_lru(), mm/swap.c, Linux 6.18: move, set PG_lru, drop the batch refs.

    A folio that left its LRU meanwhile (isolated, or already moved) is
    skipped by every move but lru_add.
    """
    fbatch = m.fbatches[batch]
    if not fbatch:
        return
    m.fbatches[batch] = []
    move = MOVE_FN[batch]
    mem = m.mem
    for folio in fbatch:
        if batch != "lru_add" and not folio_test_clear(m, folio, PG_lru):
            continue
        move(m, folio)
        mem.flags[folio] |= PG_lru
    for folio in fbatch:
        folio_put(m, folio)


def folio_batch_add_and_move(m: Machine, folio: int, batch: str) -> None:
    """folio_batch_add_and_move(), mm/swap.c, Linux 6.18.

    Since Hugh Dickins' 2025 series ("mm: folio_may_be_lru_cached() unless
    folio_test_large()" and the revert of the on_lru argument), queueing leaves
    PG_lru alone: a queued folio is still on its LRU and may sit in several
    batches; PG_lru is tested and cleared only when a batch is moved.
    """
    folio_get(m, folio)
    fbatch = m.fbatches[batch]
    fbatch.append(folio)
    # folio_may_be_lru_cached(): large folios are moved at once.
    if len(fbatch) >= FOLIO_BATCH_SIZE or folio_test_large(m, folio):
        folio_batch_move_lru(m, batch)


def folio_add_lru(m: Machine, folio: int) -> None:
    """folio_add_lru(), mm/swap.c, Linux 6.18: queue a new or put-back folio on lru_add."""
    folio_batch_add_and_move(m, folio, "lru_add")


def folio_mark_lazyfree(m: Machine, folio: int) -> None:
    """folio_mark_lazyfree(), mm/swap.c, Linux 6.18: queue an LRU folio for lru_lazyfree."""
    f = int(m.mem.flags[folio])
    if (
        (f & PG_anon)
        and (f & PG_swapbacked)
        and (f & PG_lru)
        and not (f & PG_swapcache)
        and not (f & PG_unevictable)
    ):
        folio_batch_add_and_move(m, folio, "lru_lazyfree")


def folio_deactivate(m: Machine, folio: int) -> None:
    """folio_deactivate(), mm/swap.c, Linux 6.18 (non-MGLRU): only active LRU folios queue."""
    f = int(m.mem.flags[folio])
    if f & PG_unevictable or not f & PG_lru or not f & PG_active:
        return
    folio_batch_add_and_move(m, folio, "lru_deactivate")


def folio_activate(m: Machine, folio: int) -> None:
    """folio_activate(), mm/swap.c, Linux 6.18: only inactive LRU folios queue."""
    f = int(m.mem.flags[folio])
    if f & (PG_active | PG_unevictable) or not f & PG_lru:
        return
    folio_batch_add_and_move(m, folio, "lru_activate")


def __lru_cache_activate_folio(m: Machine, folio: int) -> None:
    """__lru_cache_activate_folio(): mark active a folio still queued in lru_add."""
    if folio in m.fbatches["lru_add"]:
        folio_set(m, folio, PG_active)


def folio_mark_accessed(m: Machine, folio: int) -> None:
    """folio_mark_accessed(), mm/swap.c, Linux 6.18 (non-MGLRU)."""
    f = int(m.mem.flags[folio])
    if not f & PG_referenced:
        folio_set(m, folio, PG_referenced)
    elif f & PG_unevictable:
        pass
    elif not f & PG_active:
        if f & PG_lru:
            folio_activate(m, folio)
        else:
            __lru_cache_activate_folio(m, folio)
        folio_clear(m, folio, PG_referenced)
        if f & PG_workingset:
            pass


def lru_add_drain(m: Machine) -> None:
    """lru_add_drain(), mm/swap.c, Linux 6.18: every batch of this CPU, then mlock's."""
    from foliosim.model.mlock import mlock_drain_local

    # lru_add_drain_cpu() order: lru_add, (rotate, deactivate_file), deactivate,
    # lazyfree, then folio_activate_drain().
    for batch in ("lru_add", "lru_deactivate", "lru_lazyfree", "lru_activate"):
        folio_batch_move_lru(m, batch)
    mlock_drain_local(m)


def lru_add_drain_all(m: Machine) -> None:
    """lru_add_drain_all(): every CPU's batches; the model has one CPU."""
    lru_add_drain(m)
