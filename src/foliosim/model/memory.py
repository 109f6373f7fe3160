"""Anonymous page faults, copy-on-write, swap-in and zap: mm/memory.c."""

from __future__ import annotations

import numpy as np

from foliosim.model import huge_memory, lru, mlock, mprotect, page_alloc, rmap, swap
from foliosim.model.fastpath import fast_paths_allowed, is_fast_run
from foliosim.model.internal import folio_pte_batch
from foliosim.model.machine import Machine
from foliosim.model.mm import (
    folio_get,
    folio_mapcount,
    folio_mapped,
    folio_nr_pages,
    folio_put,
    folio_put_refs,
)
from foliosim.model.page_flags import folio_test_lru, folio_test_swapcache, page_folio
from foliosim.model.trace import folio_name, vpn_name
from foliosim.model.types import (
    HPAGE_PMD_ORDER,
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_WRITE,
    PTE_YOUNG,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_WRITE,
    ZERO_PFN,
    PageTable,
    PG_anon,
    PG_active,
    PG_anon_exclusive,
    PG_mlocked,
    PG_swapbacked,
    PG_uptodate,
    PG_workingset,
    Vma,
)
from foliosim.model.vmstat import count_mthp_stat, count_vm_events

_VM_THP_FLAGS = VM_HUGEPAGE | VM_NOHUGEPAGE


class VmFault:
    """struct vm_fault: where and how the fault happened."""

    __slots__ = ("i", "major", "t", "vma", "vpn", "write")

    def __init__(self, vma: Vma, vpn: int, write: bool, t: PageTable) -> None:
        self.vma = vma
        self.vpn = vpn
        self.write = write
        self.t = t
        self.i = vpn & 511
        self.major = False  # the fault returns VM_FAULT_MAJOR


def mm_account_fault(m: Machine, major: bool) -> None:
    """mm_account_fault(), mm/memory.c, Linux 6.18: count the fault on `current`'s task.

    A fault is major when it returned VM_FAULT_MAJOR (do_swap_page() had to read
    the page); FAULT_FLAG_TRIED never happens in the model.  GUP faults count
    too (regs == NULL only skips the perf events), on the task that made the
    call: process_vm_writev()'s helper, not the target.
    """
    count_vm_events(m, "pgfault", 1)
    if m.current is None:
        return
    task = m.mms.get(m.current)
    if task is None:
        return
    if major:
        task.maj_flt += 1
    else:
        task.min_flt += 1


def handle_mm_fault(m: Machine, vma: Vma, vpn: int, write: bool, unshare: bool = False) -> None:
    """handle_mm_fault() -> __handle_mm_fault() -> handle_pte_fault(), mm/memory.c, Linux 6.18.

    `unshare` is FAULT_FLAG_UNSHARE (a R/O long-term pin's fault, mm/gup.c
    faultin_page()): like a write fault on a non-writable entry, but the page
    is only made exclusive, never writable.  Each way out ends with
    mm_account_fault(), as handle_mm_fault() does.
    """
    mm = vma.mm
    idx = vpn >> 9
    t = mm.pgtables.get(idx)
    if t is None:
        pmd = mm.pmds.get(idx)
        if pmd is None:
            # pmd_none(): a PMD-sized THP if the policy and the VMA allow one here.
            if HPAGE_PMD_ORDER in huge_memory.thp_vma_allowable_orders(
                m, vma
            ) and huge_memory.thp_vma_suitable_order(vma, vpn, HPAGE_PMD_ORDER):
                rmap.anon_vma_prepare(m, vma)
                if huge_memory.do_huge_pmd_anonymous_page(m, vma, vpn, write):
                    mm_account_fault(m, False)
                    return
        elif (write or unshare) and not pmd[0] & PTE_WRITE:
            if huge_memory.do_huge_pmd_wp_page(m, vma, vpn, unshare=unshare):
                mm_account_fault(m, False)
                return
            # The PMD was split: handle the fault on its PTE.
        else:
            pmd[0] |= PTE_YOUNG | (PTE_DIRTY if write else 0)  # huge_pmd_set_accessed()
            mm_account_fault(m, False)
            return
        t = mm.pte_table(vpn, alloc=True)
    vmf = VmFault(vma, vpn, write, t)
    bits = int(t.bits[vmf.i])
    if not bits:
        do_anonymous_page(m, vmf)
    elif bits & PTE_SWAP:
        do_swap_page(m, vmf)
    elif (write or unshare) and not bits & PTE_WRITE:
        do_wp_page(m, vmf, unshare=unshare)
    else:
        t.bits[vmf.i] = bits | PTE_YOUNG | (PTE_DIRTY if write else 0)
    mm_account_fault(m, vmf.major)


def pte_range_none(t: PageTable, i: int, nr: int) -> bool:
    """pte_range_none(), mm/memory.c, Linux 6.18: every one of nr PTEs from slot i is none."""
    bits = t.bits
    return not any(bits[j] for j in range(i, i + nr))


def alloc_anon_folio(m: Machine, vmf: VmFault) -> int:
    """alloc_anon_folio(), mm/memory.c, Linux 6.18: a zeroed folio of the highest usable order."""
    vma, vpn = vmf.vma, vmf.vpn
    for order in huge_memory.thp_vma_allowable_orders(m, vma):
        if order >= HPAGE_PMD_ORDER or not huge_memory.thp_vma_suitable_order(vma, vpn, order):
            continue
        nr = 1 << order
        # Every PTE of the aligned block must still be none (zero-page PTEs count).
        if pte_range_none(vmf.t, vmf.i & ~(nr - 1), nr):
            # Model: allocations never fail (no anon_fault_fallback).
            count_mthp_stat(m, order, "anon_fault_alloc", 1)
            return page_alloc.folio_alloc(m, order)
    return page_alloc.folio_alloc(m, 0)


def do_anonymous_page(m: Machine, vmf: VmFault) -> None:
    """do_anonymous_page(), mm/memory.c, Linux 6.18 (order-0 allocation)."""
    vma, t, i = vmf.vma, vmf.t, vmf.i
    if not vmf.write:
        # The shared zero page, read-only; the retried load sets young.
        t.bits[i] = PTE_PRESENT | PTE_SPECIAL | PTE_YOUNG
        t.pfn[i] = ZERO_PFN
        if m.tracing:
            m.trace(
                "do_anonymous_page",
                f"read fault on {vpn_name(vma.mm, vmf.vpn)}: zero page mapped",
            )
        return
    if m.thp_orders_cache.get(vma.flags & _VM_THP_FLAGS) == ():
        folio = page_alloc.folio_alloc(m, 0)  # no large order allowed here (the common case)
        order = 0
    else:
        folio = alloc_anon_folio(m, vmf)
        order = m.mem.order[folio]
    entry = PTE_PRESENT | PTE_YOUNG  # pte_sw_mkyoung(); hardware sets it on x86
    if vma.flags & VM_WRITE:
        entry |= PTE_WRITE | PTE_DIRTY
    if order:
        nr = 1 << order
        i = vmf.i & ~(nr - 1)
        m.mem.refcount[folio] += nr - 1  # one reference per PTE
        vma.mm.counters[MM_ANONPAGES] += nr
        rmap.folio_add_new_anon_rmap(m, folio, vma, vmf.vpn & ~(nr - 1))
        lru.folio_add_lru_vma(m, folio, vma)
        for k in range(nr):  # set_ptes()
            t.bits[i + k] = entry
            t.pfn[i + k] = folio + k
        if m.tracing:
            m.trace(
                "do_anonymous_page", f"write fault: new order-{order} folio {folio_name(m, folio)}"
            )
        return
    vma.mm.counters[MM_ANONPAGES] += 1
    rmap.folio_add_new_anon_rmap(m, folio, vma, vmf.vpn)
    lru.folio_add_lru_vma(m, folio, vma)
    t.bits[i] = entry
    t.pfn[i] = folio
    if m.tracing:
        m.trace("do_anonymous_page", f"write fault: new order-0 folio {folio_name(m, folio)}")


def can_do_anonymous_page_run(m: Machine, vma: Vma, vpn: int, nr: int, write: bool) -> bool:
    """Whether nr faults from vpn would each go do_user_addr_fault() -> handle_mm_fault() ->
    do_anonymous_page()'s order-0 (or zero-page) way alike: one page table, none PTEs, the VMA allows it.
    """
    if not is_fast_run(m, nr):
        return False
    if write and not (
        vma.flags & VM_WRITE
        and not vma.flags & VM_LOCKED
        and vma.anon_vma is not None
        and m.memcg.max_pages is None
        and _anonymous_run_order(m, vma, vpn, nr) is not None
    ):
        return False
    if not write and not mprotect.vma_is_accessible(vma):  # access_error() for a read
        return False
    t = vma.mm.pgtables.get(vpn >> 9)
    return (
        t is not None
        and vma.start <= vpn
        and vpn + nr <= min(vma.end, (vpn | 511) + 1)
        and not t.bits_v[vpn & 511 : (vpn & 511) + nr].any()
    )


def _anonymous_run_order(m: Machine, vma: Vma, vpn: int, nr: int) -> int | None:
    """The order alloc_anon_folio() gives every fault of a run of nr none PTEs from vpn, if one:
    0 without large orders; else the highest allowed order below PMD's, when the run is whole
    naturally aligned blocks of it inside the VMA (so each block's first fault takes it)."""
    orders = [o for o in huge_memory.thp_vma_allowable_orders(m, vma) if o < HPAGE_PMD_ORDER]
    if not orders:
        return 0
    order = orders[0]
    size = 1 << order
    if vpn % size or nr % size or vpn < vma.start or vpn + nr > vma.end:
        return None
    return order


def do_anonymous_page_run(m: Machine, vma: Vma, vpn: int, nr: int, write: bool) -> None:
    """do_anonymous_page() for nr faults from vpn, each accounted (precondition: can_do_anonymous_page_run())."""
    mm = vma.mm
    t = mm.pgtables[vpn >> 9]
    i = vpn & 511
    if write and (order := _anonymous_run_order(m, vma, vpn, nr)):
        _do_anonymous_page_large_run(m, vma, vpn, nr, order)
    elif write:
        mem = m.mem
        first = mem.alloc_order0_run(nr)  # folio_alloc(m, 0), nr times
        pfns = np.arange(first, first + nr, dtype=np.int32)
        rmap_flags = PG_anon | PG_anon_exclusive  # folio_add_new_anon_rmap(), RMAP_EXCLUSIVE
        if not (vma.flags & VM_DROPPABLE and m.profile.has("map_droppable")):
            rmap_flags |= PG_swapbacked
        sl = slice(first, first + nr)
        mem.view("refcount")[sl] = 1
        mem.view("order")[sl] = 0
        mem.view("flags")[sl] = PG_uptodate | rmap_flags
        mem.view("mapcount")[sl] = 1
        mem.view("anon_vma")[sl] = vma.anon_vma.id
        index0 = rmap.linear_page_index(vma, vpn)
        mem.view("index")[sl] = np.arange(index0, index0 + nr, dtype=np.int32)
        mm.counters[MM_ANONPAGES] += nr
        if lru.can_folio_batch_add_and_move_run(m, pfns, "lru_add"):
            lru.folio_batch_add_and_move_run(m, pfns, "lru_add")
        else:
            for folio in range(first, first + nr):
                lru.folio_add_lru(m, folio)
        t.bits_v[i : i + nr] = PTE_PRESENT | PTE_YOUNG | PTE_WRITE | PTE_DIRTY
        t.pfn_v[i : i + nr] = pfns
    else:
        t.bits_v[i : i + nr] = PTE_PRESENT | PTE_SPECIAL | PTE_YOUNG
        t.pfn_v[i : i + nr] = ZERO_PFN
    # mm_account_fault(), once a fault
    faults = nr >> _anonymous_run_order(m, vma, vpn, nr) if write else nr
    count_vm_events(m, "pgfault", faults)
    task = m.mms.get(m.current) if m.current is not None else None
    if task is not None:
        task.min_flt += faults


def _do_anonymous_page_large_run(m: Machine, vma: Vma, vpn: int, nr: int, order: int) -> None:
    """do_anonymous_page() for the first write fault of each order-`order` block of the run:
    alloc_anon_folio(), folio_add_new_anon_rmap(), folio_add_lru_vma(), set_ptes()."""
    mem = m.mem
    mm = vma.mm
    size = 1 << order
    t = mm.pgtables[vpn >> 9]
    i = vpn & 511
    rmap_flags = PG_anon
    if not (vma.flags & VM_DROPPABLE and m.profile.has("map_droppable")):
        rmap_flags |= PG_swapbacked
    index0 = rmap.linear_page_index(vma, vpn)
    for k in range(0, nr, size):
        count_mthp_stat(m, order, "anon_fault_alloc", 1)
        folio = page_alloc.folio_alloc(m, order)
        mem.refcount[folio] += size - 1  # one reference per PTE
        mm.counters[MM_ANONPAGES] += size
        # folio_add_new_anon_rmap(), RMAP_EXCLUSIVE
        mem.flags[folio] |= rmap_flags
        mem.anon_vma[folio] = vma.anon_vma.id
        mem.index[folio] = index0 + k
        mem.view("mapcount")[folio : folio + size] = 1
        mem.view("flags")[folio : folio + size] |= PG_anon_exclusive
        count_mthp_stat(m, order, "nr_anon", 1)
        lru.folio_add_lru(m, folio)  # folio_add_lru_vma(): not VM_LOCKED
        t.bits_v[i + k : i + k + size] = PTE_PRESENT | PTE_YOUNG | PTE_WRITE | PTE_DIRTY
        t.pfn_v[i + k : i + k + size] = np.arange(folio, folio + size, dtype=np.int32)


def wp_can_reuse_anon_folio(m: Machine, folio: int, vma: Vma) -> bool:
    """wp_can_reuse_anon_folio(), mm/memory.c, Linux 6.18."""
    mem = m.mem
    if mem.order[folio]:
        # __wp_can_reuse_large_anon_folio() (CONFIG_MM_ID): every reference is a
        # mapping, and only this mm maps it.
        if rmap.folio_maybe_mapped_shared(m, folio):
            return False
        if folio_mapcount(m, folio) != mem.refcount[folio]:
            return False
        rmap.folio_move_anon_rmap(m, folio, vma)
        return True
    if int(mem.refcount[folio]) > 3:
        return False
    if not folio_test_lru(m, folio):
        # References from LRU batches cannot be told apart: drain them.
        lru.lru_add_drain(m)
    if int(mem.refcount[folio]) > 1 + int(folio_test_swapcache(m, folio)):
        return False
    if folio_test_swapcache(m, folio):
        swap.folio_free_swap(m, folio)
    if int(mem.refcount[folio]) != 1:
        return False
    rmap.folio_move_anon_rmap(m, folio, vma)
    return True


def wp_page_reuse(m: Machine, vmf: VmFault) -> None:
    """wp_page_reuse(), mm/memory.c, Linux 6.18."""
    t, i = vmf.t, vmf.i
    t.bits[i] = int(t.bits[i]) | PTE_YOUNG | PTE_DIRTY | PTE_WRITE
    count_vm_events(m, "pgreuse", 1)


def wp_page_copy(m: Machine, vmf: VmFault, old: int, unshare: bool = False) -> None:
    """wp_page_copy(), mm/memory.c, Linux 6.18: a new exclusive order-0 copy.

    For FAULT_FLAG_UNSHARE the new PTE is neither dirty nor writable.
    """
    vma, t, i = vmf.vma, vmf.t, vmf.i
    new = page_alloc.folio_alloc(m, 0)
    if old == ZERO_PFN:
        vma.mm.counters[MM_ANONPAGES] += 1
    else:
        m.mem.data[new] = m.mem.data[old]
    entry = PTE_PRESENT | PTE_YOUNG
    if not unshare:
        entry |= PTE_DIRTY | (PTE_WRITE if vma.flags & VM_WRITE else 0)
    entry |= int(t.bits[i]) & PTE_SOFT_DIRTY
    rmap.folio_add_new_anon_rmap(m, new, vma, vmf.vpn)
    lru.folio_add_lru_vma(m, new, vma)
    t.bits[i] = entry
    t.pfn[i] = new
    if m.tracing:
        what = "zero page" if old == ZERO_PFN else f"shared folio {folio_name(m, old)}"
        m.trace("wp_page_copy", f"write to {what}: copied to a new folio")
    if old != ZERO_PFN:
        oldf = page_folio(m, old)
        rmap.folio_remove_rmap_ptes(m, oldf, old, 1)
        mlock.munlock_vma_folio(m, oldf, vma)
        # free_swap_cache(): an unmapped swap-cache folio may leave the cache now.
        if folio_test_swapcache(m, oldf) and not folio_mapped(m, oldf):
            swap.folio_free_swap(m, oldf)
        folio_put(m, oldf)


def do_wp_page(m: Machine, vmf: VmFault, unshare: bool = False) -> None:
    """do_wp_page(), mm/memory.c, Linux 6.18: reuse an exclusive page, else copy.

    With FAULT_FLAG_UNSHARE a reusable page is only marked exclusive.
    """
    t, i = vmf.t, vmf.i
    pfn = int(t.pfn[i])
    if int(t.bits[i]) & PTE_SPECIAL:
        wp_page_copy(m, vmf, ZERO_PFN, unshare=unshare)
        return
    mem = m.mem
    folio = page_folio(m, pfn)
    if mem.flags[folio] & PG_anon and (
        mem.flags[pfn] & PG_anon_exclusive or wp_can_reuse_anon_folio(m, folio, vmf.vma)
    ):
        mem.flags[pfn] |= PG_anon_exclusive
        if unshare:
            if m.tracing:
                m.trace("do_wp_page", f"unshare: folio {folio_name(m, folio)} now exclusive")
            return
        if m.tracing:
            m.trace("do_wp_page", f"folio {folio_name(m, folio)} exclusive: reused")
        wp_page_reuse(m, vmf)
        return
    wp_page_copy(m, vmf, pfn, unshare=unshare)


def should_try_to_free_swap(m: Machine, folio: int, vma: Vma, write: bool) -> bool:
    """should_try_to_free_swap(), mm/memory.c, Linux 6.18."""
    if not folio_test_swapcache(m, folio):
        return False
    if swap.vm_swap_full(m) or vma.flags & VM_LOCKED or m.mem.flags[folio] & PG_mlocked:
        return True
    return write and int(m.mem.refcount[folio]) == 1 + folio_nr_pages(m, folio)


def do_swap_page(m: Machine, vmf: VmFault) -> None:
    """do_swap_page(), mm/memory.c, Linux 6.18 (order-0 swap-in)."""
    vma, t, i = vmf.vma, vmf.t, vmf.i
    orig = int(t.bits[i])
    offset = int(t.pfn[i])
    swapcache = swap.swap_cache_get_folio(m, offset, vma, vmf.vpn)
    mem = m.mem
    if swapcache >= 0:
        folio = swapcache
        folio_get(m, folio)
        if m.tracing:
            m.trace("do_swap_page", f"slot {offset}: swap cache hit")
    elif m.profile.has("swapin_bypass_swapcache") and swap.__swap_count(m, offset) == 1:
        # SWP_SYNCHRONOUS_IO (zram) and one user: read around the swap cache.
        folio = alloc_swap_folio(m, vmf, offset)
        nr = folio_nr_pages(m, folio)
        if nr > 1:
            # The folio covers the aligned block around the fault.
            i = vmf.i & ~(nr - 1)
            offset = int(t.pfn[i])
        mem.flags[folio] |= PG_swapbacked
        if m.swap.shadow[offset]:
            swap.workingset_refault(m, folio)
        mem.swap[folio] = offset  # folio->swap, for swap_read_folio()
        lru.folio_add_lru(m, folio)
        swap.swap_read_folio(m, folio, offset)
        mem.swap[folio] = -1
        # Had to read the page from swap area: Major fault.
        vmf.major = True
        count_vm_events(m, "pgmajfault", 1)
        if m.tracing:
            m.trace(
                "do_swap_page", f"slot {offset}: read into a new folio, bypassing the swap cache"
            )
    else:
        # swapin_readahead(): VMA-based readahead (zram is not rotational).
        folio = swapcache = swap.swap_vma_readahead(m, vma, vmf.vpn, offset)
        vmf.major = True
        count_vm_events(m, "pgmajfault", 1)
    if vmf.write and folio == swapcache and not folio_test_lru(m, folio):
        # A write fault must tell from the refcount whether it owns the swap-cache
        # folio: the references of this CPU's batches go first (do_swap_page()).
        lru.lru_add_drain(m)
    exclusive = bool(orig & PTE_SWP_EXCLUSIVE)
    page = folio
    nr = 1
    if folio != swapcache:
        exclusive = True  # a fresh folio never exposed to the swap cache
        nr = folio_nr_pages(m, folio)
    elif mem.order[folio]:
        # Model: a large swap-cache folio maps only the faulting page.
        page = folio + (offset - mem.swap[folio])
    swap.swap_free_nr(m, offset, nr)
    if should_try_to_free_swap(m, folio, vma, vmf.write):
        swap.folio_free_swap(m, folio)
    vma.mm.counters[MM_ANONPAGES] += nr
    vma.mm.counters[MM_SWAPENTS] -= nr
    pte = PTE_PRESENT | PTE_YOUNG | (orig & PTE_SOFT_DIRTY)
    write = vmf.write
    rmap_exclusive = exclusive or int(mem.refcount[folio]) == 1
    if rmap_exclusive and vma.flags & VM_WRITE:
        pte |= PTE_WRITE
        if write:
            pte |= PTE_DIRTY
            write = False
    if nr > 1:
        mem.refcount[folio] += nr - 1
        rmap.folio_add_new_anon_rmap(m, folio, vma, vmf.vpn & ~(nr - 1), exclusive=rmap_exclusive)
        i = vmf.i & ~(nr - 1)
        for k in range(nr):  # set_ptes()
            t.bits[i + k] = pte
            t.pfn[i + k] = folio + k
        return
    if not mem.flags[folio] & PG_anon:
        rmap.folio_add_new_anon_rmap(m, folio, vma, vmf.vpn, exclusive=rmap_exclusive)
    else:
        rmap.folio_add_anon_rmap_ptes(m, folio, page, 1, vma, rmap_exclusive)
    t.bits[i] = pte
    t.pfn[i] = page
    if write:
        do_wp_page(m, vmf)


def vma_allows_swap_page_run(m: Machine, vma: Vma) -> bool:
    """Whether read faults on this VMA's swap PTEs may take do_swap_page_run() at all: fast paths
    on, a swap device the profile bypasses the swap cache of, no large order, no memcg limit."""
    return bool(
        fast_paths_allowed(m)
        and m.swap is not None
        and m.profile.has("swapin_bypass_swapcache")
        and mprotect.vma_is_accessible(vma)
        and vma.anon_vma is not None
        and m.memcg.max_pages is None
        and not any(o < HPAGE_PMD_ORDER for o in huge_memory.thp_vma_allowable_orders(m, vma))
    )


def can_do_swap_page_run(m: Machine, vma: Vma, vpn: int, nr: int) -> bool:
    """Whether nr read faults from vpn would each go do_swap_page()'s order-0 way around the
    swap cache alike: swap PTEs in one page table, each slot used once and not cached (zram,
    SWP_SYNCHRONOUS_IO), no large order allowed, no memcg limit."""
    if not vma_allows_swap_page_run(m, vma) or not is_fast_run(m, nr):
        return False
    t = vma.mm.pgtables.get(vpn >> 9)
    if t is None or not vma.start <= vpn or vpn + nr > min(vma.end, (vpn | 511) + 1):
        return False
    i = vpn & 511
    kind = PTE_PRESENT | PTE_SWAP | PTE_SPECIAL
    if ((t.bits_v[i : i + nr] & kind) != PTE_SWAP).any():
        return False
    offs = t.pfn_v[i : i + nr]
    si = m.swap
    return bool(
        (si.swap_map_v[offs] == 1).all()
        and len(np.unique(offs)) == nr
        and not any(o in si.cache for o in offs.tolist())
    )


def do_swap_page_run(m: Machine, vma: Vma, vpn: int, nr: int) -> None:
    """do_swap_page() for nr read faults from vpn, each a major fault (precondition above):
    a new order-0 folio read from its slot, the slot freed, the page mapped exclusive."""
    mm = vma.mm
    mem = m.mem
    si = m.swap
    t = mm.pgtables[vpn >> 9]
    i = vpn & 511
    orig = t.bits_v[i : i + nr].copy()
    offs = t.pfn_v[i : i + nr].copy()
    first = mem.alloc_order0_run(nr)  # alloc_swap_folio() -> folio_alloc(m, 0)
    folios = np.arange(first, first + nr, dtype=np.int32)
    sl = slice(first, first + nr)
    rmap_flags = PG_anon | PG_anon_exclusive  # folio_add_new_anon_rmap(), exclusive
    if not (vma.flags & VM_DROPPABLE and m.profile.has("map_droppable")):
        rmap_flags |= PG_swapbacked
    # workingset_refault() where the slot kept a shadow: active and workingset.
    refault = np.where(si.shadow_v[offs] != 0, PG_active | PG_workingset, 0)
    mem.view("refcount")[sl] = 1
    mem.view("order")[sl] = 0
    mem.view("flags")[sl] = PG_uptodate | PG_swapbacked | rmap_flags | refault
    mem.view("mapcount")[sl] = 1
    mem.view("anon_vma")[sl] = vma.anon_vma.id
    index0 = rmap.linear_page_index(vma, vpn)
    mem.view("index")[sl] = np.arange(index0, index0 + nr, dtype=np.int32)
    # swap_read_folio(): the zeromap's pages zero, the others read.
    zero = si.zeromap_v[offs] != 0
    mem.view("data")[sl] = np.where(zero, 0, si.data_v[offs])
    if zero.any():
        count_vm_events(m, "swpin_zero", int(zero.sum()))
    if not zero.all():
        count_vm_events(m, "pswpin", int((~zero).sum()))
    if lru.can_folio_batch_add_and_move_run(m, folios, "lru_add"):
        lru.folio_batch_add_and_move_run(m, folios, "lru_add")
    else:
        for folio in range(first, first + nr):
            lru.folio_add_lru(m, folio)
    # swap_free_nr(): the last user gone, each slot is free again.
    si.swap_map_v[offs] = 0
    si.inuse_pages -= nr
    si.zeromap_v[offs] = 0
    si.shadow_v[offs] = 0
    mm.counters[MM_ANONPAGES] += nr
    mm.counters[MM_SWAPENTS] -= nr
    pte = PTE_PRESENT | PTE_YOUNG | (PTE_WRITE if vma.flags & VM_WRITE else 0)
    t.bits_v[i : i + nr] = pte | (orig & PTE_SOFT_DIRTY)
    t.pfn_v[i : i + nr] = folios
    # Major faults: pgmajfault, then mm_account_fault().
    count_vm_events(m, "pgmajfault", nr)
    count_vm_events(m, "pgfault", nr)
    task = m.mms.get(m.current) if m.current is not None else None
    if task is not None:
        task.maj_flt += nr


def can_swapin_thp(m: Machine, t: PageTable, i: int, nr: int) -> bool:
    """can_swapin_thp(), mm/memory.c, Linux 6.18: nr swap PTEs with consecutive offsets,
    one zeromap state, none in the swap cache."""
    si = m.swap
    first = t.bits[i]
    if not first & PTE_SWAP:
        return False
    off = t.pfn[i]
    zero = si.zeromap[off]
    for k in range(nr):
        if not t.bits[i + k] & PTE_SWAP or t.pfn[i + k] != off + k:
            return False
        if si.zeromap[off + k] != zero or si.cache[off + k] >= 0:
            return False
    return True


def alloc_swap_folio(m: Machine, vmf: VmFault, offset: int) -> int:
    """alloc_swap_folio(), mm/memory.c, Linux 6.18: the largest order whose block is all swapped."""
    vma, vpn = vmf.vma, vmf.vpn
    for order in huge_memory.thp_vma_allowable_orders(m, vma):
        if order >= HPAGE_PMD_ORDER or not huge_memory.thp_vma_suitable_order(vma, vpn, order):
            continue
        nr = 1 << order
        # thp_swap_suitable_orders(): the swap offset is aligned as the address is.
        if (offset & (nr - 1)) != (vpn & (nr - 1)):
            continue
        if can_swapin_thp(m, vmf.t, vmf.i & ~(nr - 1), nr):
            # Model: allocations never fail (no swpin_fallback).
            return page_alloc.folio_alloc(m, order)
    return page_alloc.folio_alloc(m, 0)


def zap_pte_range(m: Machine, vma: Vma, start: int, end: int) -> None:
    """zap_pmd_range() -> zap_pte_range(), mm/memory.c, Linux 6.18: clear [start, end), free what it held."""
    mm = vma.mm
    to_free: list[tuple[int, int]] = []
    vpn = start
    while vpn < end:
        next_pmd = min(end, (vpn | 511) + 1)
        idx = vpn >> 9
        if idx in mm.pmds:
            if next_pmd - vpn == 512:
                huge_memory.zap_huge_pmd(m, vma, idx)
                vpn = next_pmd
                continue
            huge_memory.__split_huge_pmd(m, vma, idx)
        t = mm.pgtables.get(idx)
        if t is None:
            vpn = next_pmd
            continue
        bits_a, pfn_a = t.bits, t.pfn
        while vpn < next_pmd:
            i = vpn & 511
            bits = bits_a[i]
            if not bits:
                vpn += 1
                continue
            nr = 1
            if bits & PTE_SWAP:
                swap.free_swap_and_cache_nr(m, pfn_a[i], 1)
                mm.counters[MM_SWAPENTS] -= 1
            elif not bits & PTE_SPECIAL:
                page = pfn_a[i]
                folio = page_folio(m, page)
                if folio != page or m.mem.order[folio]:
                    # zap_present_folio_ptes(): the whole run of this folio at once.
                    nr = folio_pte_batch(
                        t, i, page, folio, folio_nr_pages(m, folio), next_pmd - vpn
                    )
                    for k in range(1, nr):
                        bits_a[i + k] = 0
                        pfn_a[i + k] = 0
                mm.counters[MM_ANONPAGES] -= nr
                rmap.folio_remove_rmap_ptes(m, folio, page, nr)
                mlock.munlock_vma_folio(m, folio, vma)
                to_free.append((folio, nr))
            bits_a[i] = 0
            pfn_a[i] = 0
            vpn += nr
    # tlb_finish_mmu() -> free_pages_and_swap_cache(): drop unmapped folios' swap cache.
    for folio, nr in to_free:
        if folio_test_swapcache(m, folio) and not folio_mapped(m, folio):
            swap.folio_free_swap(m, folio)
        folio_put_refs(m, folio, nr)


def zap_page_range_single_batched(m: Machine, vma: Vma, start: int, end: int) -> None:
    """zap_page_range_single_batched(), mm/memory.c, Linux 6.18 (MADV_DONTNEED).

    No lru_add_drain() first: in 6.18 neither madvise_dontneed_single_vma() nor
    zap_page_range_single_batched() has one, so a pending lazyfree batch stays.
    """
    zap_pte_range(m, vma, start, end)
