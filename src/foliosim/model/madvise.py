"""madvise(2) on anonymous memory: mm/madvise.c."""

from __future__ import annotations

from foliosim.model import gup, huge_memory, khugepaged, lru, memory, mmap, rmap, swap, vmscan
from foliosim.model import vma as mm_vma
from foliosim.model.errors import SyscallError
from foliosim.model.internal import folio_pte_batch
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_get, folio_mapcount, folio_nr_pages, folio_put
from foliosim.model.page_flags import folio_test_lru, folio_test_swapcache, page_folio
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_YOUNG,
    VM_DONTCOPY,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_WIPEONFORK,
    Mm,
    PG_active,
    PG_dirty,
    PG_head,
    PG_referenced,
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
