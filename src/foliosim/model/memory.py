"""Anonymous page faults, copy-on-write, swap-in and zap: mm/memory.c."""

from __future__ import annotations

from foliosim.model.lru import (
    folio_add_lru,
    folio_get,
    folio_nr_pages,
    folio_put,
    folio_test_lru,
    folio_test_swapcache,
    lru_add_drain,
)
from foliosim.model.machine import Machine
from foliosim.model.mlock import mlock_new_folio
from foliosim.model.rmap import (
    folio_add_anon_rmap_ptes,
    folio_add_new_anon_rmap,
    folio_mapped,
    folio_move_anon_rmap,
    folio_remove_rmap_ptes,
)
from foliosim.model.swap import (
    __swap_count,
    folio_free_swap,
    free_swap_and_cache_nr,
    swap_cache_get_folio,
    swap_free_nr,
    swap_read_folio,
    swap_vma_readahead,
    vm_swap_full,
    workingset_refault,
)
from foliosim.model.types import (
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
    VM_LOCKED,
    VM_WRITE,
    ZERO_PFN,
    PageTable,
    PG_anon,
    PG_anon_exclusive,
    PG_mlocked,
    PG_swapbacked,
    Vma,
)


class VmFault:
    """struct vm_fault: where and how the fault happened."""

    __slots__ = ("i", "t", "vma", "vpn", "write")

    def __init__(self, vma: Vma, vpn: int, write: bool, t: PageTable) -> None:
        self.vma = vma
        self.vpn = vpn
        self.write = write
        self.t = t
        self.i = vpn & 511


def folio_add_lru_vma(m: Machine, folio: int, vma: Vma) -> None:
    """folio_add_lru_vma(), mm/swap.c, Linux 6.18: mlocked VMAs go via the mlock batch."""
    if vma.flags & VM_LOCKED:
        mlock_new_folio(m, folio)
    else:
        folio_add_lru(m, folio)


def handle_mm_fault(m: Machine, vma: Vma, vpn: int, write: bool) -> None:
    """handle_mm_fault() -> handle_pte_fault(), mm/memory.c, Linux 6.18 (PTE level)."""
    m.count_vm_events("pgfault", 1)
    t = vma.mm.pte_table(vpn, alloc=True)
    vmf = VmFault(vma, vpn, write, t)
    bits = int(t.bits[vmf.i])
    if not bits:
        do_anonymous_page(m, vmf)
    elif bits & PTE_SWAP:
        do_swap_page(m, vmf)
    elif write and not bits & PTE_WRITE:
        do_wp_page(m, vmf)
    else:
        t.bits[vmf.i] = bits | PTE_YOUNG | (PTE_DIRTY if write else 0)


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
                f"read fault on {m.vpn_name(vma.mm, vmf.vpn)}: zero page mapped",
            )
        return
    folio = m.folio_alloc(0)
    entry = PTE_PRESENT | PTE_YOUNG  # pte_sw_mkyoung(); hardware sets it on x86
    if vma.flags & VM_WRITE:
        entry |= PTE_WRITE | PTE_DIRTY
    vma.mm.counters[MM_ANONPAGES] += 1
    folio_add_new_anon_rmap(m, folio, vma, vmf.vpn)
    folio_add_lru_vma(m, folio, vma)
    t.bits[i] = entry
    t.pfn[i] = folio
    if m.tracing:
        m.trace("do_anonymous_page", f"write fault: new order-0 folio {m.folio_name(folio)}")


def wp_can_reuse_anon_folio(m: Machine, folio: int, vma: Vma) -> bool:
    """wp_can_reuse_anon_folio(), mm/memory.c, Linux 6.18 (small folios)."""
    mem = m.mem
    if int(mem.refcount[folio]) > 3:
        return False
    if not folio_test_lru(m, folio):
        # References from LRU batches cannot be told apart: drain them.
        lru_add_drain(m)
    if int(mem.refcount[folio]) > 1 + int(folio_test_swapcache(m, folio)):
        return False
    if folio_test_swapcache(m, folio):
        folio_free_swap(m, folio)
    if int(mem.refcount[folio]) != 1:
        return False
    folio_move_anon_rmap(m, folio, vma)
    return True


def wp_page_reuse(m: Machine, vmf: VmFault) -> None:
    """wp_page_reuse(), mm/memory.c, Linux 6.18."""
    t, i = vmf.t, vmf.i
    t.bits[i] = int(t.bits[i]) | PTE_YOUNG | PTE_DIRTY | PTE_WRITE
    m.count_vm_events("pgreuse", 1)


def wp_page_copy(m: Machine, vmf: VmFault, old: int) -> None:
    """wp_page_copy(), mm/memory.c, Linux 6.18: a new exclusive order-0 copy."""
    vma, t, i = vmf.vma, vmf.t, vmf.i
    new = m.folio_alloc(0)
    if old == ZERO_PFN:
        vma.mm.counters[MM_ANONPAGES] += 1
    else:
        m.mem.data[new] = m.mem.data[old]
    entry = PTE_PRESENT | PTE_YOUNG | PTE_DIRTY | (PTE_WRITE if vma.flags & VM_WRITE else 0)
    entry |= int(t.bits[i]) & PTE_SOFT_DIRTY
    folio_add_new_anon_rmap(m, new, vma, vmf.vpn)
    folio_add_lru_vma(m, new, vma)
    t.bits[i] = entry
    t.pfn[i] = new
    if m.tracing:
        what = "zero page" if old == ZERO_PFN else f"shared folio {m.folio_name(old)}"
        m.trace("wp_page_copy", f"write to {what}: copied to a new folio")
    if old != ZERO_PFN:
        oldf = old  # order-0: page == folio
        folio_remove_rmap_ptes(m, oldf, old, 1)
        # free_swap_cache(): an unmapped swap-cache folio may leave the cache now.
        if folio_test_swapcache(m, oldf) and not folio_mapped(m, oldf):
            folio_free_swap(m, oldf)
        folio_put(m, oldf)


def do_wp_page(m: Machine, vmf: VmFault) -> None:
    """do_wp_page(), mm/memory.c, Linux 6.18: reuse an exclusive page, else copy."""
    t, i = vmf.t, vmf.i
    pfn = int(t.pfn[i])
    if int(t.bits[i]) & PTE_SPECIAL:
        wp_page_copy(m, vmf, ZERO_PFN)
        return
    mem = m.mem
    folio = pfn  # Model: order-0 folios only on this path
    if mem.flags[folio] & PG_anon and (
        mem.flags[pfn] & PG_anon_exclusive or wp_can_reuse_anon_folio(m, folio, vmf.vma)
    ):
        mem.flags[pfn] |= PG_anon_exclusive
        if m.tracing:
            m.trace("do_wp_page", f"folio {m.folio_name(folio)} exclusive: reused")
        wp_page_reuse(m, vmf)
        return
    wp_page_copy(m, vmf, pfn)


def should_try_to_free_swap(m: Machine, folio: int, vma: Vma, write: bool) -> bool:
    """should_try_to_free_swap(), mm/memory.c, Linux 6.18."""
    if not folio_test_swapcache(m, folio):
        return False
    if vm_swap_full(m) or vma.flags & VM_LOCKED or m.mem.flags[folio] & PG_mlocked:
        return True
    return write and int(m.mem.refcount[folio]) == 1 + folio_nr_pages(m, folio)


def do_swap_page(m: Machine, vmf: VmFault) -> None:
    """do_swap_page(), mm/memory.c, Linux 6.18 (order-0 swap-in)."""
    vma, t, i = vmf.vma, vmf.t, vmf.i
    orig = int(t.bits[i])
    offset = int(t.pfn[i])
    swapcache = swap_cache_get_folio(m, offset, vma, vmf.vpn)
    mem = m.mem
    if swapcache >= 0:
        folio = swapcache
        folio_get(m, folio)
        if m.tracing:
            m.trace("do_swap_page", f"slot {offset}: swap cache hit")
    elif m.profile.has("swapin_bypass_swapcache") and __swap_count(m, offset) == 1:
        # SWP_SYNCHRONOUS_IO (zram) and one user: read around the swap cache.
        folio = m.folio_alloc(0)
        mem.flags[folio] |= PG_swapbacked
        if m.swap.shadow[offset]:
            workingset_refault(m, folio)
        mem.swap[folio] = offset  # folio->swap, for swap_read_folio()
        folio_add_lru(m, folio)
        swap_read_folio(m, folio, offset)
        mem.swap[folio] = -1
        m.count_vm_events("pgmajfault", 1)
        if m.tracing:
            m.trace(
                "do_swap_page", f"slot {offset}: read into a new folio, bypassing the swap cache"
            )
    else:
        # swapin_readahead(): VMA-based readahead (zram is not rotational).
        folio = swapcache = swap_vma_readahead(m, vma, vmf.vpn, offset)
        m.count_vm_events("pgmajfault", 1)
    exclusive = bool(orig & PTE_SWP_EXCLUSIVE)
    if folio != swapcache:
        exclusive = True  # a fresh folio never exposed to the swap cache
    swap_free_nr(m, offset, 1)
    if should_try_to_free_swap(m, folio, vma, vmf.write):
        folio_free_swap(m, folio)
    vma.mm.counters[MM_ANONPAGES] += 1
    vma.mm.counters[MM_SWAPENTS] -= 1
    pte = PTE_PRESENT | PTE_YOUNG | (orig & PTE_SOFT_DIRTY)
    write = vmf.write
    rmap_exclusive = exclusive or int(mem.refcount[folio]) == 1
    if rmap_exclusive and vma.flags & VM_WRITE:
        pte |= PTE_WRITE
        if write:
            pte |= PTE_DIRTY
            write = False
    if not mem.flags[folio] & PG_anon:
        folio_add_new_anon_rmap(m, folio, vma, vmf.vpn, exclusive=rmap_exclusive)
    else:
        folio_add_anon_rmap_ptes(m, folio, folio, 1, vma, rmap_exclusive)
    t.bits[i] = pte
    t.pfn[i] = folio
    if write:
        do_wp_page(m, vmf)


def zap_pte_range(m: Machine, vma: Vma, start: int, end: int) -> None:
    """zap_pte_range(), mm/memory.c, Linux 6.18: clear PTEs of [start, end), free what they held."""
    mm = vma.mm
    to_free: list[int] = []
    for vpn in range(start, end):
        t = mm.pte_table(vpn)
        if t is None:
            continue
        i = vpn & 511
        bits = int(t.bits[i])
        if not bits:
            continue
        if bits & PTE_SWAP:
            free_swap_and_cache_nr(m, int(t.pfn[i]), 1)
            mm.counters[MM_SWAPENTS] -= 1
        elif not bits & PTE_SPECIAL:
            folio = int(t.pfn[i])
            mm.counters[MM_ANONPAGES] -= 1
            folio_remove_rmap_ptes(m, folio, folio, 1)
            to_free.append(folio)
        t.bits[i] = 0
        t.pfn[i] = 0
    # tlb_finish_mmu() -> free_pages_and_swap_cache(): drop unmapped folios' swap cache.
    for folio in to_free:
        if folio_test_swapcache(m, folio) and not folio_mapped(m, folio):
            folio_free_swap(m, folio)
        folio_put(m, folio)
