"""LRU lists and the per-CPU folio batches: mm/swap.c (and folio refcounting)."""

from __future__ import annotations

import numpy as np

from foliosim.model import mlock
from foliosim.model.fastpath import is_fast_run
from foliosim.model.internal import folio_evictable
from foliosim.model.machine import FOLIO_BATCH_SIZE, Machine
from foliosim.model.mm import folio_get, folio_nr_pages, folio_put
from foliosim.model.page_flags import folio_clear, folio_set, folio_test_clear, folio_test_large
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    VM_LOCKED,
    PG_active,
    PG_anon,
    PG_head,
    PG_lru,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_tail,
    PG_unevictable,
    PG_workingset,
    Vma,
)
from foliosim.model.vmstat import count_vm_events

# --- the lruvec's lists (memcg, issue 13) ------------------------------------------

# enum lru_list, include/linux/mmzone.h
LRU_INACTIVE_ANON = 0
LRU_ACTIVE_ANON = 1
LRU_INACTIVE_FILE = 2
LRU_ACTIVE_FILE = 3
LRU_UNEVICTABLE = 4
LRU_ACTIVE = 1  # LRU_ACTIVE_ANON - LRU_INACTIVE_ANON
LRU_FILE = 2
EVICTABLE_LRUS = (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE)
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")


def folio_lru_list(m: Machine, folio: int) -> int:
    """folio_lru_list(), include/linux/mm_inline.h, Linux 6.18: the list the folio's flags pick."""
    f = int(m.mem.flags[folio])
    if f & PG_unevictable:
        return LRU_UNEVICTABLE
    lru = LRU_INACTIVE_ANON if f & PG_swapbacked else LRU_INACTIVE_FILE
    return lru + LRU_ACTIVE if f & PG_active else lru


def lruvec_add_folio(m: Machine, folio: int) -> None:
    """lruvec_add_folio(), include/linux/mm_inline.h, Linux 6.18: at the head of its list.

    Model: which list a folio is on follows from its flags (folio_lru_list());
    its place on the list is the sequence number of its last add, so a folio
    put on no list (PG_lru clear) keeps a number nobody reads.
    """
    cg = m.memcg
    cg.lru_clock += 1
    cg.lru_seq[folio] = cg.lru_clock


def _lruvec_mask(m: Machine, lru: int) -> np.ndarray:
    # The pfns whose folio is on list `lru`: folio_lru_list() of every PG_lru head, at once.
    fl = m.mem.view("flags")
    sel = (fl & PG_lru) != 0
    sel &= (fl & PG_tail) == 0
    unevictable = (fl & PG_unevictable) != 0
    if lru == LRU_UNEVICTABLE:
        sel &= unevictable
    else:
        sel &= ~unevictable
        sel &= ((fl & PG_swapbacked) != 0) == (not lru & LRU_FILE)
        sel &= ((fl & PG_active) != 0) == bool(lru & LRU_ACTIVE)
    sel[0] = False
    return sel


def lruvec_list(m: Machine, lru: int) -> list[int]:
    """The folios on list `lru` of the scenario's lruvec, tail (scanned first) to head."""
    seq = m.memcg.lru_seq
    pfns = np.flatnonzero(_lruvec_mask(m, lru)).tolist()
    # Model: the folios a split makes inherit PG_lru without an add of their own
    # (lru_add_split_folio() puts them beside the head); they sort by pfn at the tail.
    pfns.sort(key=lambda f: (seq.get(f, 0), f))
    return pfns


def lruvec_lru_size(m: Machine, lru: int) -> int:
    """lruvec_lru_size(), mm/vmscan.c, Linux 6.18: pages on list `lru` (every zone)."""
    order = m.mem.view("order")[_lruvec_mask(m, lru)].astype(np.int64)
    return int(np.left_shift(np.int64(1), order).sum())


def lru_note_cost(m: Machine, file: bool, nr_io: int, nr_rotated: int) -> None:
    """lru_note_cost_unlock_irq(), mm/swap.c, Linux 6.18: the reclaim cost of a list type.

    Model: the memcg's lruvec has no parent lruvec but the root's, which the
    model leaves out; list sizes are exact where the kernel reads lagging stats.
    """
    cost = nr_io * 32 + nr_rotated  # SWAP_CLUSTER_MAX
    if not cost:
        return
    cg = m.memcg
    if file:
        cg.file_cost += cost
    else:
        cg.anon_cost += cost
    lrusize = sum(lruvec_lru_size(m, lst) for lst in EVICTABLE_LRUS)
    if cg.file_cost + cg.anon_cost > lrusize // 4:
        cg.file_cost //= 2
        cg.anon_cost //= 2


# --- per-CPU batches -------------------------------------------------------------


def lru_add(m: Machine, folio: int) -> None:
    """lru_add() move function, mm/swap.c, Linux 6.18: onto the list folio_lru_list() picks."""
    if folio_evictable(m, folio):
        folio_clear(m, folio, PG_unevictable)
    else:
        folio_clear(m, folio, PG_active)
        folio_set(m, folio, PG_unevictable)
    lruvec_add_folio(m, folio)


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
        lruvec_add_folio(m, folio)  # after lruvec_del_folio(): the inactive file list's head
        count_vm_events(m, "pglazyfree", nr)
        if m.tracing:
            m.trace(
                "lru_lazyfree", f"folio {folio_name(m, folio)} now lazyfree (swapbacked cleared)"
            )


def lru_deactivate(m: Machine, folio: int) -> None:
    """lru_deactivate() move function, mm/swap.c, Linux 6.18 (non-MGLRU)."""
    f = int(m.mem.flags[folio])
    if not (f & PG_unevictable) and (f & PG_active):
        m.mem.flags[folio] = f & ~(PG_active | PG_referenced)
        lruvec_add_folio(m, folio)
        count_vm_events(m, "pgdeactivate", folio_nr_pages(m, folio))


def lru_activate(m: Machine, folio: int) -> None:
    """lru_activate() move function, mm/swap.c, Linux 6.18."""
    f = int(m.mem.flags[folio])
    if f & (PG_active | PG_unevictable):
        return
    m.mem.flags[folio] = f | PG_active
    lruvec_add_folio(m, folio)
    count_vm_events(m, "pgactivate", folio_nr_pages(m, folio))


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


def can_folio_batch_add_and_move_run(m: Machine, folios: np.ndarray, batch: str) -> bool:
    """Whether folio_batch_add_and_move_run() may stand for folio_batch_add_and_move() on these folios.

    They must be distinct order-0 folios, queued on a batch whose move function
    the run has (lru_add, lru_lazyfree), with fast paths allowed.
    """
    if batch not in _MOVE_RUN or not is_fast_run(m, len(folios)):
        return False
    flags = m.mem.view("flags")[folios]
    return not (flags & (PG_head | PG_tail)).any() and len(np.unique(folios)) == len(folios)


def folio_batch_add_and_move_run(m: Machine, folios: np.ndarray, batch: str) -> None:
    """folio_batch_add_and_move() for each of `folios` in turn (order 0, distinct; precondition above).

    The pending batch is filled the slow way; then every whole batch of
    FOLIO_BATCH_SIZE new folios is moved at once (each folio's move depends on
    its own flags only, and the moves happen in queue order); the rest is queued.
    """
    k = 0
    n = len(folios)
    while k < n and m.fbatches[batch]:
        folio_batch_add_and_move(m, int(folios[k]), batch)
        k += 1
    whole = (n - k) // FOLIO_BATCH_SIZE * FOLIO_BATCH_SIZE
    if whole:
        # folio_get(), the move, PG_lru set, folio_put(): the references balance.
        _MOVE_RUN[batch](m, folios[k : k + whole])
        k += whole
    for folio in folios[k:]:
        folio_get(m, int(folio))
        m.fbatches[batch].append(int(folio))


def _not(bits: int) -> np.uint32:
    """~bits as a memmap flags word (numpy refuses a negative mask on uint32)."""
    return np.uint32(0xFFFFFFFF ^ bits)


def lruvec_add_folio_run(m: Machine, folios: np.ndarray) -> None:
    """lruvec_add_folio() for each of `folios` in turn: consecutive sequence numbers."""
    cg = m.memcg
    cg.lru_seq.set_run(folios, cg.lru_clock + 1)
    cg.lru_clock += len(folios)


def lru_add_run(m: Machine, folios: np.ndarray) -> None:
    """folio_batch_move_lru() of lru_add over whole batches of order-0 folios: lru_add() on each, PG_lru set."""
    flags = m.mem.view("flags")
    f = flags[folios]
    evictable = (f & PG_mlocked) == 0  # folio_evictable()
    f = np.where(evictable, f & _not(PG_unevictable), (f & _not(PG_active)) | PG_unevictable)
    flags[folios] = f | PG_lru
    lruvec_add_folio_run(m, folios)


def lru_lazyfree_run(m: Machine, folios: np.ndarray) -> None:
    """folio_batch_move_lru() of lru_lazyfree over whole batches of order-0 folios: lru_lazyfree() on those on an LRU."""
    flags = m.mem.view("flags")
    f = flags[folios]
    on_lru = (f & PG_lru) != 0  # folio_test_clear_lru(), then set again after the move
    test = f & (PG_anon | PG_swapbacked | PG_swapcache | PG_unevictable)
    moves = on_lru & (test == (PG_anon | PG_swapbacked))
    flags[folios] = np.where(moves, f & _not(PG_active | PG_referenced | PG_swapbacked), f)
    moved = folios[moves]
    lruvec_add_folio_run(m, moved)
    if len(moved):
        count_vm_events(m, "pglazyfree", len(moved))


_MOVE_RUN = {"lru_add": lru_add_run, "lru_lazyfree": lru_lazyfree_run}


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
    """__lru_cache_activate_folio(), mm/swap.c, Linux 6.18: mark active a folio still queued in lru_add."""
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

    # lru_add_drain_cpu() order: lru_add, (rotate, deactivate_file), deactivate,
    # lazyfree, then folio_activate_drain().
    for batch in ("lru_add", "lru_deactivate", "lru_lazyfree", "lru_activate"):
        folio_batch_move_lru(m, batch)
    mlock.mlock_drain_local(m)


def lru_add_drain_all(m: Machine) -> None:
    """lru_add_drain_all(), mm/swap.c, Linux 6.18: every CPU's batches; the model has one CPU."""
    lru_add_drain(m)


def folio_add_lru_vma(m: Machine, folio: int, vma: Vma) -> None:
    """folio_add_lru_vma(), mm/swap.c, Linux 6.18: mlocked VMAs go via the mlock batch."""
    if vma.flags & VM_LOCKED:
        mlock.mlock_new_folio(m, folio)
    else:
        folio_add_lru(m, folio)
