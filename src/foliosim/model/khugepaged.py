"""Synchronous THP collapse of anonymous memory (MADV_COLLAPSE): mm/khugepaged.c, Linux 6.18.

Only the MADV_COLLAPSE caller (`cc->is_khugepaged == false`) is modelled: the
kernel backends hold khugepaged off while a scenario runs.  For that caller the
max_ptes_none, max_ptes_swap and max_ptes_shared limits and the "enough young
PTEs" test do not apply (each is guarded by `cc->is_khugepaged` in
hpage_collapse_scan_pmd() and __collapse_huge_page_isolate()).  Model: the
huge page allocation and the memcg charge never fail, no PTE is uffd-armed, and
the mmap lock is never contended (collapse_huge_page()'s revalidations pass).
"""

from __future__ import annotations

from enum import IntEnum

from foliosim.model import huge_memory, lru, memory, mlock, page_alloc, rmap, swap, vmscan
from foliosim.model.errors import SyscallError
from foliosim.model.internal import folio_pte_batch
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_mapcount, folio_mapped, folio_nr_pages, folio_put_refs
from foliosim.model.page_flags import folio_test_large, folio_test_lru, folio_test_swapcache, page_folio
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    HPAGE_PMD_ORDER,
    MM_ANONPAGES,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_WRITE,
    PTE_YOUNG,
    VM_NOHUGEPAGE,
    VM_WRITE,
    PageTable,
    Vma,
    is_device_exclusive_entry,
)
from foliosim.model.vmstat import count_vm_events

HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER


class Scan(IntEnum):
    """enum scan_result, mm/khugepaged.c, Linux 6.18 (the values the model can reach)."""

    SCAN_FAIL = 0
    SCAN_SUCCEED = 1
    SCAN_PMD_NULL = 2
    SCAN_PMD_NONE = 3
    SCAN_PMD_MAPPED = 4
    SCAN_PTE_NON_PRESENT = 8
    SCAN_PAGE_COUNT = 14
    SCAN_PAGE_LRU = 15
    SCAN_PAGE_ANON = 18
    SCAN_VMA_NULL = 20
    SCAN_VMA_CHECK = 21
    SCAN_ADDRESS_RANGE = 22
    SCAN_DEL_PAGE_LRU = 23
    SCAN_ALLOC_HUGE_PAGE_FAIL = 24


# madvise_collapse()'s "whitelisted set of results where continuing OK".
_CONTINUE = {
    Scan.SCAN_PMD_NULL,
    Scan.SCAN_PTE_NON_PRESENT,
    Scan.SCAN_PAGE_COUNT,
    Scan.SCAN_PAGE_LRU,
    Scan.SCAN_DEL_PAGE_LRU,
}


def madvise_collapse_errno(r: Scan) -> str:
    """madvise_collapse_errno(), mm/khugepaged.c, Linux 6.18: the errno of the last failure."""
    if r == Scan.SCAN_ALLOC_HUGE_PAGE_FAIL:
        return "ENOMEM"
    if r in (Scan.SCAN_PAGE_COUNT, Scan.SCAN_PAGE_LRU, Scan.SCAN_DEL_PAGE_LRU):
        return "EAGAIN"  # "resource temporary unavailable - trying again might succeed"
    return "EINVAL"


def thp_vma_allowable_order_forced(vma: Vma) -> bool:
    """thp_vma_allowable_order(vma, vm_flags, TVA_FORCED_COLLAPSE, PMD_ORDER), include/linux/huge_mm.h
    and __thp_vma_allowable_orders(), mm/huge_memory.c, Linux 6.18.

    A forced collapse ignores the sysfs policies; VM_NOHUGEPAGE still refuses
    (vma_thp_disabled()), the VMA must hold an aligned 2M block (the suitability
    check at vm_end - HPAGE_PMD_SIZE) and must have an anon_vma already.
    """
    if vma.flags & VM_NOHUGEPAGE:
        return False
    if not huge_memory.thp_vma_suitable_order(vma, vma.end - HPAGE_PMD_NR, HPAGE_PMD_ORDER):
        return False
    return vma.anon_vma is not None


def find_pmd_or_thp_or_none(vma: Vma, idx: int) -> Scan:
    """find_pmd_or_thp_or_none() -> check_pmd_state(), mm/khugepaged.c, Linux 6.18.

    A huge PMD (a THP or the huge zero page) is SCAN_PMD_MAPPED, which
    MADV_COLLAPSE counts as done; no page table is SCAN_PMD_NONE.  Model: the
    upper levels always exist (a VMA with an anon_vma has faulted, which
    allocated them), so SCAN_PMD_NULL never comes from here.
    """
    mm = vma.mm
    if idx in mm.pmds:
        return Scan.SCAN_PMD_MAPPED
    if idx not in mm.pgtables:
        return Scan.SCAN_PMD_NONE
    return Scan.SCAN_SUCCEED


def folio_expected_ref_count(m: Machine, folio: int) -> int:
    """folio_expected_ref_count(), include/linux/mm.h, Linux 6.18 (anonymous): the swap cache's
    references (one per page) and one per page-table mapping."""
    nr = folio_nr_pages(m, folio) if folio_test_swapcache(m, folio) else 0
    return nr + folio_mapcount(m, folio)


def _pte_none_or_zero(bits: int) -> bool:
    # pte_none(pteval) || is_zero_pfn(pte_pfn(pteval))
    return not bits or bits & (PTE_PRESENT | PTE_SPECIAL) == PTE_PRESENT | PTE_SPECIAL


def _is_swap_pte(bits: int) -> bool:
    # is_swap_pte(): neither none nor present (a swap or device-exclusive entry)
    return bool(bits) and not bits & PTE_PRESENT


def hpage_collapse_scan_pmd(m: Machine, vma: Vma, idx: int) -> Scan:
    """hpage_collapse_scan_pmd(), mm/khugepaged.c, Linux 6.18: check the 512 PTEs, then collapse.

    Swap entries, none and zero-page PTEs are counted but never refuse (no
    khugepaged limits); a folio off the LRU is SCAN_PAGE_LRU, one with a
    reference beyond its mappings and the swap cache (a GUP reference, a pin)
    SCAN_PAGE_COUNT.  Shared folios are fine: the collapse copies them.
    """
    result = find_pmd_or_thp_or_none(vma, idx)
    if result != Scan.SCAN_SUCCEED:
        return result
    t = vma.mm.pgtables[idx]
    unmapped = 0
    for i in range(HPAGE_PMD_NR):
        bits = t.bits[i]
        if _is_swap_pte(bits):
            unmapped += 1
            continue
        if _pte_none_or_zero(bits):
            continue
        folio = page_folio(m, t.pfn[i])  # vm_normal_page(); every folio is anonymous here
        if not folio_test_lru(m, folio):
            result = Scan.SCAN_PAGE_LRU
            break
        if folio_expected_ref_count(m, folio) != m.mem.refcount[folio]:
            result = Scan.SCAN_PAGE_COUNT
            break
    if result != Scan.SCAN_SUCCEED:
        if m.tracing:
            m.trace(
                "hpage_collapse_scan_pmd",
                f"PTE {i} of the 2M block at page {idx << 9}: {result.name}",
            )
        return result
    return collapse_huge_page(m, vma, idx, unmapped)


def alloc_charge_folio(m: Machine) -> int:
    """alloc_charge_folio(), mm/khugepaged.c, Linux 6.18: a new PMD-order folio (thp_collapse_alloc)."""
    folio = page_alloc.folio_alloc(m, HPAGE_PMD_ORDER)
    count_vm_events(m, "thp_collapse_alloc", 1)
    return folio


def __collapse_huge_page_swapin(m: Machine, vma: Vma, idx: int) -> Scan:
    """__collapse_huge_page_swapin(), mm/khugepaged.c, Linux 6.18: do_swap_page() on every swap PTE.

    Not through handle_mm_fault(), so no task fault is counted (pgmajfault is,
    inside do_swap_page()); then lru_add_drain() drops the new folios' batch
    references.  A device-exclusive entry goes back to a present PTE
    (do_swap_page() -> remove_device_exclusive_entry()).
    """
    swapped_in = 0
    base = idx << 9
    for i in range(HPAGE_PMD_NR):
        t = vma.mm.pgtables[idx]
        bits = t.bits[i]
        if is_device_exclusive_entry(bits):
            t.bits[i] = PTE_PRESENT | PTE_YOUNG | (bits & PTE_WRITE)
            continue
        if not bits & PTE_SWAP:
            continue
        memory.do_swap_page(m, memory.VmFault(vma, base + i, False, t))
        swapped_in += 1
    if swapped_in:
        lru.lru_add_drain(m)
    return Scan.SCAN_SUCCEED


def release_pte_folio(m: Machine, folio: int) -> None:
    """release_pte_folio(), mm/khugepaged.c, Linux 6.18: unlock, back onto the LRU."""
    vmscan.folio_putback_lru(m, folio)


def release_pte_pages(m: Machine, t: PageTable, upto: int, compound: list[int]) -> None:
    """release_pte_pages(), mm/khugepaged.c, Linux 6.18: put back what isolation took, PTEs before `upto`."""
    for i in range(upto - 1, -1, -1):
        bits = t.bits[i]
        if _pte_none_or_zero(bits):
            continue
        folio = page_folio(m, t.pfn[i])
        if folio_test_large(m, folio):
            continue
        release_pte_folio(m, folio)
    for folio in compound:
        release_pte_folio(m, folio)


def __collapse_huge_page_isolate(m: Machine, vma: Vma, t: PageTable, compound: list[int]) -> Scan:
    """__collapse_huge_page_isolate(), mm/khugepaged.c, Linux 6.18: every folio checked and taken off its LRU.

    The PMD is cleared meanwhile (pmdp_collapse_flush()), so no new GUP
    reference can come from this process; the reference check is made again.
    """
    mem = m.mem
    result = Scan.SCAN_SUCCEED
    i = 0
    for i in range(HPAGE_PMD_NR):
        bits = t.bits[i]
        if _pte_none_or_zero(bits):
            continue
        if not bits & PTE_PRESENT:
            result = Scan.SCAN_PTE_NON_PRESENT
            break
        folio = page_folio(m, t.pfn[i])
        large = folio_test_large(m, folio)
        if large and folio in compound:
            continue  # "we have dealt with the compound page already"
        if folio_expected_ref_count(m, folio) != mem.refcount[folio]:
            result = Scan.SCAN_PAGE_COUNT
            break
        if not vmscan.folio_isolate_lru(m, folio):
            result = Scan.SCAN_DEL_PAGE_LRU
            break
        if large:
            compound.append(folio)
    else:
        return Scan.SCAN_SUCCEED
    release_pte_pages(m, t, i, compound)
    compound.clear()
    return result


def free_swap_cache(m: Machine, folio: int) -> None:
    """free_swap_cache(), mm/swap_state.c, Linux 6.18: an unmapped swap-cache folio leaves the cache."""
    if folio_test_swapcache(m, folio) and not folio_mapped(m, folio):
        swap.folio_free_swap(m, folio)


def __collapse_huge_page_copy(
    m: Machine, vma: Vma, idx: int, t: PageTable, folio: int, compound: list[int]
) -> None:
    """__collapse_huge_page_copy() and __collapse_huge_page_copy_succeeded(), mm/khugepaged.c, Linux 6.18.

    Each page's content into the new folio (zeroes for none and zero-page
    PTEs); then the old PTEs are cleared and their folios unmapped and put,
    small ones back on the LRU first (release_pte_folio()), large ones after
    (folio_putback_lru(), which frees one nobody maps any more).  A none or
    zero-page PTE becomes a new anonymous page (MM_ANONPAGES + 1).  Model: the
    copy never meets memory poison (no SCAN_COPY_MC).
    """
    mem = m.mem
    mm = vma.mm
    for i in range(HPAGE_PMD_NR):
        bits = t.bits[i]
        mem.data[folio + i] = 0 if _pte_none_or_zero(bits) else mem.data[t.pfn[i]]
    i = 0
    while i < HPAGE_PMD_NR:
        bits = t.bits[i]
        nr = 1
        if _pte_none_or_zero(bits):
            mm.counters[MM_ANONPAGES] += 1
            t.bits[i] = 0
            t.pfn[i] = 0
            i += 1
            continue
        page = t.pfn[i]
        src = page_folio(m, page)
        if folio_test_large(m, src):
            nr = folio_pte_batch(t, i, page, src, folio_nr_pages(m, src), HPAGE_PMD_NR - i)
        else:
            release_pte_folio(m, src)
        for k in range(i, i + nr):  # clear_ptes()
            t.bits[k] = 0
            t.pfn[k] = 0
        rmap.folio_remove_rmap_ptes(m, src, page, nr)
        mlock.munlock_vma_folio(m, src, vma)  # __folio_remove_rmap()
        free_swap_cache(m, src)
        folio_put_refs(m, src, nr)
        i += nr
    for src in compound:
        free_swap_cache(m, src)
        vmscan.folio_putback_lru(m, src)


def collapse_huge_page(m: Machine, vma: Vma, idx: int, unmapped: int) -> Scan:
    """collapse_huge_page(), mm/khugepaged.c, Linux 6.18: one new PMD-mapped THP for the 2M block.

    The new folio is exclusive, on the LRU by folio_add_lru_vma() (inactive,
    or mlocked in a VM_LOCKED VMA), its PMD young, dirty and writable if the
    VMA is, its page table deposited; deferred_split_folio(partially_mapped
    false) only queues it.  PG_dirty stays clear (the PMD carries the dirt).
    """
    folio = alloc_charge_folio(m)
    if unmapped:
        __collapse_huge_page_swapin(m, vma, idx)
    mm = vma.mm
    t = mm.pgtables[idx]
    compound: list[int] = []
    result = __collapse_huge_page_isolate(m, vma, t, compound)
    if result != Scan.SCAN_SUCCEED:
        folio_put_refs(m, folio, 1)
        if m.tracing:
            m.trace("__collapse_huge_page_isolate", f"2M block at page {idx << 9}: {result.name}")
        return result
    __collapse_huge_page_copy(m, vma, idx, t, folio, compound)
    del mm.pgtables[idx]  # pgtable_trans_huge_deposit()
    bits = PTE_PRESENT | PTE_YOUNG | PTE_DIRTY  # folio_mk_pmd() (vm_page_prot has ACCESSED), pmd_mkdirty()
    if vma.flags & VM_WRITE:
        bits |= PTE_WRITE  # maybe_pmd_mkwrite()
    rmap.folio_add_new_anon_rmap(m, folio, vma, idx << 9, pmd=True)
    lru.folio_add_lru_vma(m, folio, vma)
    mm.pmds[idx] = [bits, folio]
    huge_memory.deferred_split_folio(m, folio, partially_mapped=False)
    if m.tracing:
        m.trace("collapse_huge_page", f"2M block at page {idx << 9}: new THP {folio_name(m, folio)}")
    return Scan.SCAN_SUCCEED


def madvise_collapse(m: Machine, vma: Vma, start: int, end: int) -> None:
    """madvise_collapse(), mm/khugepaged.c, Linux 6.18: collapse every aligned 2M block of [start, end).

    Every CPU's batches are drained first (lru_add_drain_all()).  A block
    already PMD-mapped (the huge zero page too) counts as done; a failure in
    the whitelist goes on with the next block, any other stops.  The call
    succeeds only if every block is done (a range holding no whole block
    succeeds doing nothing); else the errno of the last failure.
    """
    if not thp_vma_allowable_order_forced(vma):
        raise SyscallError("EINVAL")
    lru.lru_add_drain_all(m)
    hstart = (start + HPAGE_PMD_NR - 1) & ~(HPAGE_PMD_NR - 1)
    hend = end & ~(HPAGE_PMD_NR - 1)
    thps = 0
    last_fail = Scan.SCAN_FAIL
    # Model: nothing changes the VMAs while collapse_huge_page() has the mmap lock
    # dropped, so the hugepage_vma_revalidate() at the next block always passes.
    for addr in range(hstart, hend, HPAGE_PMD_NR):
        result = hpage_collapse_scan_pmd(m, vma, addr >> 9)
        if result in (Scan.SCAN_SUCCEED, Scan.SCAN_PMD_MAPPED):
            thps += 1
        else:
            last_fail = result
            if result not in _CONTINUE:
                break  # "other error, exit"
    if thps != (hend - hstart) >> 9:
        raise SyscallError(madvise_collapse_errno(last_fail))
