"""madvise(2) on anonymous memory: mm/madvise.c."""

from __future__ import annotations

import numpy as np

from foliosim.model import gup, huge_memory, khugepaged, lru, memory, mmap, rmap, swap, vmscan
from foliosim.model import vma as mm_vma
from foliosim.model.errors import SyscallError
from foliosim.model.fastpath import is_fast_run
from foliosim.model.internal import folio_pte_batch
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_get, folio_mapcount, folio_nr_pages, folio_put
from foliosim.model.page_flags import folio_test_lru, folio_test_swapcache, page_folio
from foliosim.model.trace import folio_name
from foliosim.model.vmstat import count_vm_events
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_YOUNG,
    VM_DONTCOPY,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_WIPEONFORK,
    Mm,
    PG_active,
    PG_anon_exclusive,
    PG_dirty,
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


def pmd_ranges(start: int, end: int):
    """[start, end) cut at page-table (2M) boundaries, as walk_page_range() visits them.

    walk_page_range() -> walk_pmd_range(), mm/pagewalk.c, Linux 6.18.
    """
    while start < end:
        nxt = min(end, (start | 511) + 1)
        yield start, nxt
        start = nxt


def can_madv_lru_vma(vma: Vma) -> bool:
    """can_madv_lru_vma(), mm/madvise.c, Linux 6.18: COLD/PAGEOUT refuse locked VMAs."""
    return not vma.flags & VM_LOCKED


def madvise_dontneed_free_valid_vma(vma: Vma) -> bool:
    """madvise_dontneed_free_valid_vma(), mm/madvise.c, Linux 6.18."""
    return not vma.flags & VM_LOCKED


_PG_LARGE = PG_head | PG_tail


def madvise_folio_pte_batch(m: Machine, t, i: int, page: int, end_nr: int) -> tuple[int, int, int]:
    """(folio, nr, folio_nr) for the present page in slot i: madvise_folio_pte_batch(), mm/madvise.c, Linux 6.18."""
    folio = page_folio(m, page)
    folio_nr = folio_nr_pages(m, folio)
    if folio_nr == 1:
        return folio, 1, 1
    return folio, folio_pte_batch(t, i, page, folio, folio_nr, end_nr), folio_nr


def _split_partial(m: Machine, folio: int) -> bool:
    """A large folio only partly in the range: split it unless maybe shared; True if split."""
    if rmap.folio_maybe_mapped_shared(m, folio):
        if m.tracing:
            m.trace("madvise", f"folio {folio_name(m, folio)} partly covered and shared: skipped")
        return False
    folio_get(m, folio)
    ok = huge_memory.split_folio(m, folio)
    folio_put(m, folio)
    return ok


def madvise_free_pte_range(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_free_pte_range(), mm/madvise.c, Linux 6.18."""
    mm = vma.mm
    idx = start >> 9
    if idx in mm.pmds and (
        huge_memory.madvise_free_huge_pmd(m, vma, idx, start, end) or idx in mm.pmds
    ):
        return
    t = mm.pgtables.get(idx)
    if t is None:
        return
    if can_madvise_free_pte_range_run(m, t, start, end):
        madvise_free_pte_range_run(m, t, start, end)
        return
    nr_swap = 0
    mem = m.mem
    flags = mem.flags
    bits_a, pfn_a = t.bits, t.pfn
    skip = start  # the pages before it belong to a batch already handled
    for vpn in range(start, end):
        if vpn < skip:
            continue
        i = vpn & 511
        bits = bits_a[i]
        if not bits:
            continue
        if bits & PTE_SWAP:
            # The content is gone: drop the swap entry, the next access sees zeroes.
            nr_swap -= 1
            swap.free_swap_and_cache_nr(m, pfn_a[i], 1)
            bits_a[i] = 0
            pfn_a[i] = 0
            continue
        if bits & PTE_SPECIAL:
            continue  # the zero page
        folio = pfn_a[i]
        nr = 1
        if flags[folio] & _PG_LARGE:
            page = folio
            folio, nr, folio_nr = madvise_folio_pte_batch(m, t, i, page, end - vpn)
            skip = vpn + nr
            if nr < folio_nr:
                if _split_partial(m, folio):
                    # Look at the same address again: small folios now.
                    mm.counters[MM_SWAPENTS] += nr_swap
                    madvise_free_pte_range(m, vma, vpn, end)
                    return
                continue
        if flags[folio] & (PG_swapcache | PG_dirty):
            if folio_mapcount(m, folio) != folio_nr_pages(m, folio):
                continue  # shared: not ours to clean
            if folio_test_swapcache(m, folio) and not swap.folio_free_swap(m, folio):
                continue
            flags[folio] &= ~PG_dirty
        # clear_young_dirty_ptes() over the batch
        for j in range(i, i + nr):
            if bits_a[j] & (PTE_YOUNG | PTE_DIRTY):
                bits_a[j] &= ~(PTE_YOUNG | PTE_DIRTY)
        lru.folio_mark_lazyfree(m, folio)
        if m.tracing:
            m.trace(
                "madvise_free_pte_range",
                f"folio {folio_name(m, folio)}: PTE cleaned, queued for lazyfree",
            )
    if nr_swap:
        mm.counters[MM_SWAPENTS] += nr_swap


_PTE_KIND = PTE_PRESENT | PTE_SPECIAL | PTE_SWAP


def _present_order0_folios(m: Machine, t, start: int, end: int):
    """The folios the PTEs of [start, end) map if each is a present PTE of an order-0 folio, else None."""
    i0, i1 = start & 511, ((end - 1) & 511) + 1
    if ((t.bits_v[i0:i1] & _PTE_KIND) != PTE_PRESENT).any():
        return None
    folios = t.pfn_v[i0:i1]
    if (m.mem.view("flags")[folios] & _PG_LARGE).any() or len(np.unique(folios)) != len(folios):
        return None
    return folios


def can_madvise_free_pte_range_run(m: Machine, t, start: int, end: int) -> bool:
    """Whether madvise_free_pte_range_run() may stand for madvise_free_pte_range() on [start, end) of t:
    every PTE present and mapping its own order-0 folio, none in the swap cache or PG_dirty."""
    if not is_fast_run(m, end - start):
        return False
    folios = _present_order0_folios(m, t, start, end)
    return folios is not None and not (m.mem.view("flags")[folios] & (PG_swapcache | PG_dirty)).any()


def madvise_free_pte_range_run(m: Machine, t, start: int, end: int) -> None:
    """madvise_free_pte_range() over a run of clean order-0 folios (precondition above):
    clear_young_dirty_ptes() on every PTE, then folio_mark_lazyfree() on each folio in order."""
    i0, i1 = start & 511, ((end - 1) & 511) + 1
    t.bits_v[i0:i1] &= np.uint8(0xFF ^ (PTE_YOUNG | PTE_DIRTY))
    folios = t.pfn_v[i0:i1]
    f = m.mem.view("flags")[folios]
    # folio_mark_lazyfree()'s test: which folios it queues.
    want = PG_anon | PG_swapbacked | PG_lru
    queued = folios[(f & (want | PG_swapcache | PG_unevictable)) == want]
    if lru.can_folio_batch_add_and_move_run(m, queued, "lru_lazyfree"):
        lru.folio_batch_add_and_move_run(m, queued, "lru_lazyfree")
    else:
        for folio in queued.tolist():
            lru.folio_batch_add_and_move(m, folio, "lru_lazyfree")


def _pageout_exclusive_folios(m: Machine, vma: Vma, t, start: int, end: int, flags_want: int):
    """The folios of [start, end) if each PTE maps its own order-0 folio on the LRU whose flags
    (of _PAGEOUT_TEST) are flags_want, mapped once, no other reference, in a VMA alone in its
    anon_vma (so rmap_walk_anon() finds that PTE only); else None."""
    if vma.anon_vma is None or vma.anon_vma.vmas != [vma]:
        return None
    folios = _present_order0_folios(m, t, start, end)
    if folios is None:
        return None
    mem = m.mem
    index0 = vma.pgoff + (start - vma.start)
    if (
        ((mem.view("flags")[folios] & _PAGEOUT_TEST) == flags_want).all()
        and (mem.view("refcount")[folios] == 1).all()
        and (mem.view("mapcount")[folios] == 1).all()
        and (mem.view("anon_vma")[folios] == vma.anon_vma.id).all()
        and (mem.view("index")[folios] == np.arange(index0, index0 + len(folios))).all()
    ):
        return folios
    return None


_PAGEOUT_TEST = PG_anon | PG_lru | PG_swapbacked | PG_swapcache | PG_mlocked | PG_unevictable


def can_madvise_pageout_lazyfree_run(m: Machine, vma: Vma, t, start: int, end: int) -> bool:
    """Whether madvise_pageout_lazyfree_run() may stand for madvise_cold_or_pageout_pte_range(pageout)
    on [start, end) of t: every PTE clean and mapping its own clean order-0 lazyfree folio, alone
    (_pageout_exclusive_folios()), so try_to_unmap() discards each."""
    if not is_fast_run(m, end - start):
        return False
    folios = _pageout_exclusive_folios(m, vma, t, start, end, PG_anon | PG_lru)
    i0, i1 = start & 511, ((end - 1) & 511) + 1
    return bool(
        folios is not None
        and not (t.bits_v[i0:i1] & PTE_DIRTY).any()
        and not (m.mem.view("flags")[folios] & PG_dirty).any()
    )


def madvise_pageout_lazyfree_run(m: Machine, vma: Vma, t, start: int, end: int) -> None:
    """madvise_cold_or_pageout_pte_range(pageout) -> reclaim_pages() -> shrink_folio_list() ->
    try_to_unmap() discarding each clean lazyfree order-0 folio of the range (precondition above)."""
    i0, i1 = start & 511, ((end - 1) & 511) + 1
    folios = t.pfn_v[i0:i1].copy()
    nr = len(folios)
    mem = m.mem
    # try_to_unmap_one(): PTEs cleared, rmap and the mapping's reference dropped, MM_ANONPAGES;
    # shrink_folio_list(): folio_ref_freeze(folio, 1), pglazyfreed; __folio_put() frees it.
    t.bits_v[i0:i1] = 0
    mem.view("mapcount")[folios] = 0
    mem.view("refcount")[folios] = 0
    mem.view("flags")[folios] = 0
    mem.view("data")[folios] = 0
    vma.mm.counters[MM_ANONPAGES] -= nr
    count_vm_events(m, "pglazyfreed", nr)


def _free_swap_slots_ahead(m: Machine, nr: int):
    """The first nr free slots from the allocator's next offset, as folio_alloc_swap() would
    take them one by one, or None if fewer are free before the device's end."""
    si = m.swap
    ahead = np.flatnonzero(si.swap_map_v[si.next :] == 0)[:nr] + si.next
    if len(ahead) < nr or any(int(o) in si.cache for o in ahead):
        return None
    return ahead


def can_madvise_pageout_swap_run(m: Machine, vma: Vma, t, start: int, end: int) -> bool:
    """Whether madvise_pageout_swap_run() may stand for madvise_cold_or_pageout_pte_range(pageout)
    on [start, end) of t: every PTE maps its own order-0 swap-backed folio outside the swap cache,
    alone (_pageout_exclusive_folios()), and free slots follow the swap allocator's next offset."""
    if not is_fast_run(m, end - start) or m.swap is None:
        return False
    want = PG_anon | PG_lru | PG_swapbacked
    folios = _pageout_exclusive_folios(m, vma, t, start, end, want)
    return folios is not None and _free_swap_slots_ahead(m, len(folios)) is not None


def madvise_pageout_swap_run(m: Machine, vma: Vma, t, start: int, end: int) -> None:
    """madvise_cold_or_pageout_pte_range(pageout) -> shrink_folio_list() swapping out each order-0
    folio of the range (precondition above): folio_alloc_swap(), try_to_unmap() writing swap PTEs,
    pageout() -> swap_writeout(), __remove_mapping() leaving a shadow, the folio freed."""
    i0, i1 = start & 511, ((end - 1) & 511) + 1
    folios = t.pfn_v[i0:i1].copy()
    nr = len(folios)
    si = m.swap
    offs = _free_swap_slots_ahead(m, nr)
    mem = m.mem
    flags = mem.view("flags")
    data = mem.view("data")[folios]
    # folio_alloc_swap(): slots taken in order; swap_duplicate() by the swap PTE.
    si.next = int(offs[-1]) + 1
    si.inuse_pages += nr
    si.swap_map_v[offs] = 1
    # try_to_unmap_one(): the swap PTE, exclusive if the page was (then shared).
    exclusive = (flags[folios] & PG_anon_exclusive) != 0
    bits = t.bits_v[i0:i1]
    t.bits_v[i0:i1] = PTE_SWAP | np.where(exclusive, PTE_SWP_EXCLUSIVE, 0) | (bits & PTE_SOFT_DIRTY)
    t.pfn_v[i0:i1] = offs
    vma.mm.counters[MM_ANONPAGES] -= nr
    vma.mm.counters[MM_SWAPENTS] += nr
    # swap_writeout(): zero-filled pages only in the zeromap, the others written.
    zero = data == 0
    si.zeromap_v[offs] = zero
    si.data_v[offs[~zero]] = data[~zero]
    if zero.any():
        count_vm_events(m, "swpout_zero", int(zero.sum()))
    if not zero.all():
        count_vm_events(m, "pswpout", int((~zero).sum()))
    # __remove_mapping(): out of the swap cache, a workingset shadow left; __folio_put().
    si.shadow_v[offs] = 1
    mem.view("swap")[folios] = -1
    mem.view("mapcount")[folios] = 0
    mem.view("refcount")[folios] = 0
    flags[folios] = 0
    mem.view("data")[folios] = 0


# The per-folio tail of madvise_cold_or_pageout_pte_range(), mm/madvise.c: clear
# referenced (an active folio keeps PG_workingset), then deactivate (COLD) or
# isolate for reclaim_pages() (PAGEOUT).
def _cold_or_pageout_folio(m: Machine, folio: int, pageout: bool, folio_list: list[int]) -> None:
    mem = m.mem
    mem.flags[folio] &= ~PG_referenced
    if mem.flags[folio] & PG_active:
        mem.flags[folio] |= PG_workingset
    if pageout:
        if vmscan.folio_isolate_lru(m, folio):
            if mem.flags[folio] & PG_unevictable:
                vmscan.folio_putback_lru(m, folio)
            else:
                folio_list.append(folio)
    else:
        lru.folio_deactivate(m, folio)


def madvise_cold_or_pageout_pte_range(
    m: Machine, vma: Vma, start: int, end: int, pageout: bool
) -> None:
    """madvise_cold_or_pageout_pte_range(), mm/madvise.c, Linux 6.18."""
    mm = vma.mm
    idx = start >> 9
    folio_list: list[int] = []
    pmd = mm.pmds.get(idx)
    if pmd is not None:
        folio = pmd[1]
        if folio == m.huge_zero_pfn or rmap.folio_maybe_mapped_shared(m, folio):
            return
        if end - start != 512:
            folio_get(m, folio)
            ok = huge_memory.split_folio(m, folio)
            folio_put(m, folio)
            if not ok:
                return
        else:
            if not pageout:
                pmd[0] &= ~PTE_YOUNG
            _cold_or_pageout_folio(m, folio, pageout, folio_list)
            if pageout:
                vmscan.reclaim_pages(m, folio_list)
            return
    t = mm.pgtables.get(idx)
    if t is None:
        return
    if pageout and can_madvise_pageout_lazyfree_run(m, vma, t, start, end):
        madvise_pageout_lazyfree_run(m, vma, t, start, end)
        return
    if pageout and can_madvise_pageout_swap_run(m, vma, t, start, end):
        madvise_pageout_swap_run(m, vma, t, start, end)
        return
    mem = m.mem
    vpn = start
    while vpn < end:
        i = vpn & 511
        bits = int(t.bits[i])
        if not bits & PTE_PRESENT or bits & PTE_SPECIAL:
            vpn += 1
            continue
        page = t.pfn[i]
        if mem.flags[page] & (PG_head | PG_tail):
            folio, nr, folio_nr = madvise_folio_pte_batch(m, t, i, page, end - vpn)
        else:
            folio, nr, folio_nr = page, 1, 1
        if nr < folio_nr:
            if _split_partial(m, folio):
                continue
            vpn += nr
            continue
        # Do not interfere with other mappings of this folio and non-LRU folios.
        if not folio_test_lru(m, folio) or folio_mapcount(m, folio) != folio_nr:
            if m.tracing:
                why = "not on an LRU" if not folio_test_lru(m, folio) else "mapped elsewhere too"
                m.trace(
                    "madvise_cold_or_pageout_pte_range",
                    f"folio {folio_name(m, folio)} skipped: {why}",
                )
            vpn += nr
            continue
        if not pageout:
            for j in range(i, i + nr):
                if t.bits[j] & PTE_YOUNG:
                    t.bits[j] &= ~PTE_YOUNG
        _cold_or_pageout_folio(m, folio, pageout, folio_list)
        vpn += nr
    if pageout:
        vmscan.reclaim_pages(m, folio_list)


def madvise_free_single_vma(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_free_single_vma(), mm/madvise.c, Linux 6.18."""
    lru.lru_add_drain(m)
    for s, e in pmd_ranges(start, end):
        madvise_free_pte_range(m, vma, s, e)


def madvise_willneed(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_willneed() on anonymous memory: swapin_walk_pmd_entry(), mm/madvise.c, Linux 6.18."""
    for vpn in range(start, end):
        t = vma.mm.pte_table(vpn)
        if t is None:
            continue
        i = vpn & 511
        if int(t.bits[i]) & PTE_SWAP:
            folio = swap.read_swap_cache_async(m, int(t.pfn[i]))
            folio_put(m, folio)
    lru.lru_add_drain(m)


def madvise_update_vma(
    m: Machine, vma: Vma, prev: Vma | None, start: int, end: int, new_flags: int
) -> Vma:
    """madvise_update_vma(), mm/madvise.c, Linux 6.18: [start, end) of the VMA gets new_flags,
    merged with a neighbour or split off (vma_modify_flags()); returns the VMA that has them."""
    if new_flags == vma.flags:
        return vma
    vma = mm_vma.vma_modify_flags(m, prev, vma, start, end, new_flags)
    vma.flags = new_flags  # vm_flags_reset()
    return vma


def madvise_vma_behavior(
    m: Machine, vma: Vma, prev: Vma | None, start: int, end: int, advice: str
) -> Vma:
    """madvise_vma_behavior(), mm/madvise.c, Linux 6.18: one VMA's part of the range; returns
    the VMA the walk goes on from (another one if flags were changed by a merge)."""
    if advice in ("free", "dontneed"):
        if not madvise_dontneed_free_valid_vma(vma):
            raise SyscallError("EINVAL")
        if advice == "free":
            madvise_free_single_vma(m, vma, start, end)
        else:
            memory.zap_page_range_single_batched(m, vma, start, end)
    elif advice in ("cold", "pageout"):
        if not can_madv_lru_vma(vma):
            raise SyscallError("EINVAL")
        lru.lru_add_drain(m)
        for s, e in pmd_ranges(start, end):
            madvise_cold_or_pageout_pte_range(m, vma, s, e, pageout=advice == "pageout")
    elif advice == "willneed":
        madvise_willneed(m, vma, start, end)
    elif advice == "collapse":
        khugepaged.madvise_collapse(m, vma, start, end)
    elif advice == "hugepage":  # hugepage_madvise(), mm/khugepaged.c
        new_flags = (vma.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
        return madvise_update_vma(m, vma, prev, start, end, new_flags)
    elif advice == "nohugepage":
        new_flags = (vma.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
        return madvise_update_vma(m, vma, prev, start, end, new_flags)
    # Fork controls: the flags dup_mmap() (kernel/fork.c) reads.  Model: no VM_IO,
    # no file and no VM_SHARED VMA exists, so DOFORK and WIPEONFORK never fail.
    elif advice == "dontfork":
        return madvise_update_vma(m, vma, prev, start, end, vma.flags | VM_DONTCOPY)
    elif advice == "dofork":
        return madvise_update_vma(m, vma, prev, start, end, vma.flags & ~VM_DONTCOPY)
    elif advice == "wipeonfork":
        # "MADV_WIPEONFORK is only supported on anonymous memory": EINVAL for a file
        # or VM_SHARED VMA, which the model has none of.
        return madvise_update_vma(m, vma, prev, start, end, vma.flags | VM_WIPEONFORK)
    elif advice == "keeponfork":
        if vma.flags & VM_DROPPABLE:
            raise SyscallError("EINVAL")  # a droppable VMA is always wiped on fork
        return madvise_update_vma(m, vma, prev, start, end, vma.flags & ~VM_WIPEONFORK)
    else:
        raise ValueError(advice)
    return vma


def do_madvise(m: Machine, mm: Mm, start: int, end: int, advice: str) -> None:
    """do_madvise(), mm/madvise.c, Linux 6.18: raises SyscallError on failure."""
    if advice in ("populate_read", "populate_write"):
        gup.faultin_page_range(m, mm, start, end, write=advice == "populate_write")
        return
    # madvise_walk_vmas(): from the VMA at start on, each next VMA found after the
    # one the previous step left (a merge may have swallowed the next ones).
    # A hole in the range is ENOMEM, after the advice was applied to every VMA
    # in it (unmapped_error).
    vmas = mmap.vmas_in_range(mm, start, end)
    if not vmas:
        raise SyscallError("ENOMEM")
    unmapped = vmas[0].start > start or vmas[-1].end < end
    unmapped |= any(a.end != b.start for a, b in zip(vmas, vmas[1:]))
    vma: Vma | None = vmas[0]
    prev = vma if start > vma.start else mm_vma.vma_prev(mm, vma)
    while vma is not None and vma.start < end:
        vma = madvise_vma_behavior(m, vma, prev, max(start, vma.start), min(end, vma.end), advice)
        prev = vma
        vma = mm_vma.vma_next(mm, vma)
    if unmapped:
        raise SyscallError("ENOMEM")


# -- process_madvise(2) (issue 12) ------------------------------------------------------


def process_madvise_remote_valid(advice: str) -> bool:
    """process_madvise_remote_valid(), mm/madvise.c, Linux 6.18: an advice allowed on another mm."""
    return advice in ("cold", "pageout", "willneed", "collapse")


def sys_process_madvise(
    m: Machine, caller: Mm, mm: Mm, ranges: list[tuple[int, int]], advice: str
) -> None:
    """SYSCALL_DEFINE5(process_madvise) -> vector_madvise(), mm/madvise.c, Linux 6.18.

    One call for every range (one iovec each), in order.  The call returns the
    bytes advised before the first failing range, so it fails (SyscallError)
    only when the first range does.  Model: the caller is root (mm_access() and
    CAP_SYS_NICE pass) and the pidfd names a live process.
    """
    if mm is not caller and not process_madvise_remote_valid(advice):
        raise SyscallError("EINVAL")
    for k, (start, end) in enumerate(ranges):
        try:
            do_madvise(m, mm, start, end, advice)  # madvise_do_behavior()
        except SyscallError:
            if k == 0:
                raise
            return
