"""Transparent huge pages, PMD-mapped and PTE-mapped (mTHP): mm/huge_memory.c."""

from __future__ import annotations

from foliosim.model import lru, mlock, page_alloc, rmap, swap
from foliosim.model.machine import Machine
from foliosim.model.mm import (
    __folio_put,
    folio_mapcount,
    folio_maybe_dma_pinned,
    folio_nr_pages,
    folio_put,
)
from foliosim.model.page_flags import folio_test_swapcache
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    HPAGE_PMD_ORDER,
    MM_ANONPAGES,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_WRITE,
    PTE_YOUNG,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_WRITE,
    ZERO_PFN,
    PageTable,
    PG_active,
    PG_anon,
    PG_anon_exclusive,
    PG_dirty,
    PG_head,
    PG_lru,
    PG_mlocked,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_tail,
    PG_unevictable,
    PG_uptodate,
    PG_workingset,
    PG_zero,
    Vma,
)
from foliosim.model.vmstat import count_mthp_stat, count_vm_events

HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
# THP_ORDERS_ALL_ANON, include/linux/huge_mm.h: orders 2..PMD_ORDER (never 0 or 1).
THP_ORDERS_ALL_ANON = tuple(range(HPAGE_PMD_ORDER, 1, -1))

# Flags a folio split hands to every new folio (__split_folio_to_order()).
_SPLIT_INHERIT = (
    PG_uptodate
    | PG_anon
    | PG_dirty
    | PG_swapbacked
    | PG_swapcache
    | PG_active
    | PG_referenced
    | PG_workingset
    | PG_mlocked
    | PG_unevictable
    | PG_lru
)


def thp_vma_allowable_orders(m: Machine, vma: Vma) -> tuple[int, ...]:
    """thp_vma_allowable_orders() -> __thp_vma_allowable_orders(), mm/huge_memory.c, Linux 6.18: anon orders the policy allows, highest first."""
    key = vma.flags & (VM_HUGEPAGE | VM_NOHUGEPAGE)
    orders = m.thp_orders_cache.get(key)
    if orders is None:
        orders = ()
        if not key & VM_NOHUGEPAGE:  # vma_thp_disabled()
            madv = bool(key & VM_HUGEPAGE)
            top = m.thp_enabled
            inherit = top == "always" or (madv and top != "never")
            orders = tuple(
                o
                for o in THP_ORDERS_ALL_ANON
                if (mode := m.mthp_enabled[o]) == "always"
                or (mode == "madvise" and madv)
                or (mode == "inherit" and inherit)
            )
        m.thp_orders_cache[key] = orders
    return orders


def thp_vma_suitable_order(vma: Vma, vpn: int, order: int) -> bool:
    """thp_vma_suitable_order(), include/linux/huge_mm.h, Linux 6.18: the naturally aligned block around vpn lies inside the VMA."""
    start = vpn & ~((1 << order) - 1)
    return vma.start <= start and start + (1 << order) <= vma.end


def deferred_split_folio(m: Machine, folio: int, partially_mapped: bool) -> None:
    """deferred_split_folio(), mm/huge_memory.c, Linux 6.18."""
    mem = m.mem
    order = mem.order[folio]
    if order <= 1:
        return
    # Exclude swapcache: the deferred list shares a field with folio->swap users.
    if folio_test_swapcache(m, folio):
        return
    if partially_mapped:
        if not m.deferred_split.get(folio):
            if order == HPAGE_PMD_ORDER:
                count_vm_events(m, "thp_deferred_split_page", 1)
            count_mthp_stat(m, order, "split_deferred", 1)
            count_mthp_stat(m, order, "nr_anon_partially_mapped", 1)
            if m.tracing:
                m.trace(
                    "deferred_split_folio", f"folio {folio_name(m, folio)} partially mapped: queued"
                )
        m.deferred_split[folio] = True
    else:
        m.deferred_split.setdefault(folio, False)


def mm_get_huge_zero_folio(m: Machine) -> int:
    """mm_get_huge_zero_folio(), mm/huge_memory.c, Linux 6.18: the huge zero folio, allocated once."""
    if m.huge_zero_pfn < 0:
        mem = m.mem
        hz = m.huge_zero_pfn = mem.alloc(512)
        mem.order[hz] = 9
        mem.flags[hz] = PG_zero | PG_head
        for page in range(hz + 1, hz + 512):
            mem.flags[page] = PG_zero | PG_tail
    return m.huge_zero_pfn


# --- PMD faults ----------------------------------------------------------------------


def map_anon_folio_pmd_pf(m: Machine, vma: Vma, idx: int, folio: int) -> None:
    """map_anon_folio_pmd_pf(), mm/huge_memory.c, Linux 6.18: a new THP mapped by one PMD."""

    bits = PTE_PRESENT | PTE_YOUNG
    if vma.flags & VM_WRITE:
        bits |= PTE_WRITE | PTE_DIRTY
    rmap.folio_add_new_anon_rmap(m, folio, vma, idx << 9, pmd=True)
    if vma.flags & VM_LOCKED:
        mlock.mlock_new_folio(m, folio)
    else:
        lru.folio_add_lru(m, folio)
    vma.mm.pmds[idx] = [bits, folio]
    vma.mm.counters[MM_ANONPAGES] += HPAGE_PMD_NR
    count_vm_events(m, "thp_fault_alloc", 1)
    count_mthp_stat(m, HPAGE_PMD_ORDER, "anon_fault_alloc", 1)
    deferred_split_folio(m, folio, partially_mapped=False)


def do_huge_pmd_anonymous_page(m: Machine, vma: Vma, vpn: int, write: bool) -> bool:
    """do_huge_pmd_anonymous_page(), mm/huge_memory.c, Linux 6.18: False means fall back to PTEs."""
    idx = vpn >> 9
    if not write:
        # transparent_hugepage/use_zero_page is 1: the huge zero page, read-only.
        vma.mm.pmds[idx] = [PTE_PRESENT | PTE_SPECIAL | PTE_YOUNG, mm_get_huge_zero_folio(m)]
        if m.tracing:
            m.trace("do_huge_pmd_anonymous_page", "read fault: huge zero page mapped")
        return True
    folio = page_alloc.folio_alloc(m, HPAGE_PMD_ORDER)
    map_anon_folio_pmd_pf(m, vma, idx, folio)
    if m.tracing:
        m.trace(
            "do_huge_pmd_anonymous_page", f"write fault: new PMD-mapped THP {folio_name(m, folio)}"
        )
    return True


def do_huge_pmd_wp_page(m: Machine, vma: Vma, vpn: int, unshare: bool = False) -> bool:
    """do_huge_pmd_wp_page(), mm/huge_memory.c, Linux 6.18: False means the PMD was split.

    With FAULT_FLAG_UNSHARE a reusable THP is only marked exclusive (the
    `reuse:` label returns before the PMD is made writable); the huge zero
    page gets a new THP either way (do_huge_zero_wp_pmd()).
    """
    mm = vma.mm
    idx = vpn >> 9
    pmd = mm.pmds[idx]
    mem = m.mem
    if pmd[1] == m.huge_zero_pfn and not m.profile.has("huge_zero_wp_thp"):
        # 6.12's do_huge_pmd_wp_page(): `if (is_huge_zero_pmd(orig_pmd)) goto fallback;`,
        # the PMD is split and the write faults on a PTE of the small zero page.
        __split_huge_pmd(m, vma, idx)
        return False
    if pmd[1] == m.huge_zero_pfn:
        # do_huge_zero_wp_pmd(): a write to the huge zero page gets a whole new THP.
        del mm.pmds[idx]
        folio = page_alloc.folio_alloc(m, HPAGE_PMD_ORDER)
        map_anon_folio_pmd_pf(m, vma, idx, folio)
        if m.tracing:
            m.trace("do_huge_zero_wp_pmd", f"huge zero page replaced by THP {folio_name(m, folio)}")
        return True
    folio = pmd[1]
    reuse = bool(mem.flags[folio] & PG_anon_exclusive)
    if not reuse:
        nr = HPAGE_PMD_NR if folio_test_swapcache(m, folio) else 0
        if mem.refcount[folio] <= 1 + nr:
            if nr:
                swap.folio_free_swap(m, folio)
            if mem.refcount[folio] == 1:
                mem.flags[folio] |= PG_anon_exclusive
                reuse = True
    if reuse:
        if not unshare:
            pmd[0] |= PTE_YOUNG | PTE_DIRTY | PTE_WRITE
        return True
    __split_huge_pmd(m, vma, idx)
    return False


# --- splitting a PMD mapping ---------------------------------------------------------


def split_huge_pmd_locked(m: Machine, vma: Vma, idx: int) -> None:
    """__split_huge_pmd_locked(freeze=false), mm/huge_memory.c, Linux 6.18: 512 PTEs instead."""
    mm = vma.mm
    bits, pfn = mm.pmds.pop(idx)
    count_vm_events(m, "thp_split_pmd", 1)
    t = mm.pgtables[idx] = PageTable()  # the deposited page table
    if pfn == m.huge_zero_pfn:
        for i in range(HPAGE_PMD_NR):
            t.bits[i] = PTE_PRESENT | PTE_SPECIAL
        return
    mem = m.mem
    folio = pfn
    if bits & PTE_DIRTY:
        mem.flags[folio] |= PG_dirty
    exclusive = bool(mem.flags[folio] & PG_anon_exclusive)
    pte = PTE_PRESENT | (bits & (PTE_WRITE | PTE_DIRTY | PTE_YOUNG | PTE_SOFT_DIRTY))
    for i in range(HPAGE_PMD_NR):
        t.bits[i] = pte
        t.pfn[i] = folio + i
    mem.refcount[folio] += HPAGE_PMD_NR - 1
    rmap.folio_add_anon_rmap_ptes(m, folio, folio, HPAGE_PMD_NR, vma, exclusive)
    rmap.folio_remove_rmap_pmd(m, folio)
    if m.tracing:
        m.trace("__split_huge_pmd", f"PMD of {folio_name(m, folio)} split into 512 PTEs")


def __split_huge_pmd(m: Machine, vma: Vma, idx: int) -> None:
    """__split_huge_pmd(), mm/huge_memory.c, Linux 6.18."""
    if idx in vma.mm.pmds:
        split_huge_pmd_locked(m, vma, idx)


def split_huge_pmd_if_needed(m: Machine, vma: Vma, address: int) -> None:
    """split_huge_pmd_if_needed(), mm/huge_memory.c, Linux 6.18: a VMA boundary moves to `address`."""
    # If it is not 2M-aligned and its 2M block could hold a huge PMD of this VMA,
    # split that PMD (split_huge_pmd_address(), freeze=false).
    down = address & ~(HPAGE_PMD_NR - 1)
    if address != down and vma.start <= down and down + HPAGE_PMD_NR <= vma.end:
        __split_huge_pmd(m, vma, down >> 9)


def vma_adjust_trans_huge(m: Machine, vma: Vma, start: int, end: int, next: Vma | None) -> None:
    """vma_adjust_trans_huge(), mm/huge_memory.c, Linux 6.18: split the huge PMDs a new VMA boundary cuts."""
    split_huge_pmd_if_needed(m, vma, start)
    split_huge_pmd_if_needed(m, vma, end)
    if next is not None:  # next->vm_start moves up to end
        split_huge_pmd_if_needed(m, next, end)


def zap_huge_pmd(m: Machine, vma: Vma, idx: int) -> None:
    """zap_huge_pmd(), mm/huge_memory.c, Linux 6.18: the whole 2M goes."""
    mm = vma.mm
    _bits, folio = mm.pmds.pop(idx)
    if folio == m.huge_zero_pfn:
        return
    rmap.folio_remove_rmap_pmd(m, folio)
    mm.counters[MM_ANONPAGES] -= HPAGE_PMD_NR
    # tlb_remove_page_size() -> free_pages_and_swap_cache()
    if folio_test_swapcache(m, folio) and not folio_mapcount(m, folio):
        swap.folio_free_swap(m, folio)
    folio_put(m, folio)


def copy_huge_pmd(m: Machine, dst: Vma, src: Vma, idx: int) -> None:
    """copy_huge_pmd(), mm/huge_memory.c, Linux 6.18: both PMDs write-protected, the child's old."""
    bits, pfn = src.mm.pmds[idx]
    if pfn == m.huge_zero_pfn:
        dst.mm.pmds[idx] = [bits, pfn]
        return
    mem = m.mem
    if mem.flags[pfn] & PG_anon_exclusive and src.mm.has_pinned and folio_maybe_dma_pinned(m, pfn):
        # folio_try_dup_anon_rmap_pmd() -> __folio_try_dup_anon_rmap() refuses a
        # maybe-pinned exclusive THP (folio_needs_cow_for_dma()): "Page maybe
        # pinned: split and retry the fault on PTEs" -- the source PMD is split
        # and copy_pte_range() copies each exclusive page (copy_present_page()).
        __split_huge_pmd(m, src, idx)
        return
    mem.flags[pfn] &= ~PG_anon_exclusive
    m.entire_mapcount[pfn] = m.entire_mapcount.get(pfn, 0) + 1
    mem.refcount[pfn] += 1
    dst.mm.counters[MM_ANONPAGES] += HPAGE_PMD_NR
    bits &= ~PTE_WRITE
    src.mm.pmds[idx][0] = bits
    dst.mm.pmds[idx] = [bits & ~PTE_YOUNG, pfn]


def unmap_huge_pmd_locked(m: Machine, vma: Vma, folio: int) -> bool:
    """unmap_huge_pmd_locked() -> __discard_anon_folio_pmd_locked(), mm/huge_memory.c, Linux 6.18: True if discarded."""
    mm = vma.mm
    mem = m.mem
    idx = (vma.start + int(mem.index[folio]) - vma.pgoff) >> 9  # vma_address()
    bits = mm.pmds[idx][0]
    if bits & PTE_DIRTY:
        mem.flags[folio] |= PG_dirty
    if mem.flags[folio] & PG_dirty:
        mem.flags[folio] |= PG_swapbacked
        return False
    if mem.refcount[folio] != folio_mapcount(m, folio) + 1:
        return False
    del mm.pmds[idx]
    rmap.folio_remove_rmap_pmd(m, folio)
    mm.counters[MM_ANONPAGES] -= HPAGE_PMD_NR
    folio_put(m, folio)
    return True


# --- MADV_FREE of a PMD mapping ------------------------------------------------------


def madvise_free_huge_pmd(m: Machine, vma: Vma, idx: int, start: int, end: int) -> bool:
    """madvise_free_huge_pmd(), mm/huge_memory.c, Linux 6.18: True if the PMD was handled."""
    pmd = vma.mm.pmds[idx]
    folio = pmd[1]
    if folio == m.huge_zero_pfn:
        return False
    if rmap.folio_maybe_mapped_shared(m, folio):
        return False
    mem = m.mem
    if end - start != HPAGE_PMD_NR:
        mem.refcount[folio] += 1  # folio_get()
        split_folio(m, folio)
        folio_put(m, folio)
        return False
    mem.flags[folio] &= ~PG_dirty
    pmd[0] &= ~(PTE_YOUNG | PTE_DIRTY)
    lru.folio_mark_lazyfree(m, folio)
    if m.tracing:
        m.trace("madvise_free_huge_pmd", f"THP {folio_name(m, folio)}: PMD cleaned, lazyfree")
    return True


# --- splitting a folio ---------------------------------------------------------------


def split_folio(m: Machine, folio: int) -> bool:
    """split_folio(), include/linux/huge_mm.h, Linux 6.18: split to order 0; the caller holds a reference. True on success."""
    return split_folio_to_list(m, folio, None)


def split_folio_to_list(m: Machine, folio: int, folio_list: list[int] | None) -> bool:
    """split_folio_to_list() -> __folio_split() to order 0, mm/huge_memory.c, Linux 6.18.

    Every mapping is first replaced by a migration entry (try_to_migrate), the
    folio is cut into order-0 folios that inherit its flags, then the entries
    are turned back into PTEs (remap_page with RMP_USE_SHARED_ZEROPAGE): a
    zero-filled page gets the shared zero page instead.  With folio_list
    (reclaim), the new folios join the list, each with a reference.
    """
    mem = m.mem
    order = mem.order[folio]
    nr = 1 << order
    swapcache = folio_test_swapcache(m, folio)
    # can_split_folio(): only the mappings, the swap cache and the caller.
    if mem.refcount[folio] != folio_mapcount(m, folio) + (nr if swapcache else 0) + 1:
        count_mthp_stat(m, order, "split_failed", 1)
        if order == HPAGE_PMD_ORDER:
            count_vm_events(m, "thp_split_page_failed", 1)
        if m.tracing:
            m.trace("__folio_split", f"folio {folio_name(m, folio)}: extra references, not split")
        return False
    name = folio_name(m, folio) if m.tracing else ""
    # unmap_folio() -> try_to_migrate(TTU_SPLIT_HUGE_PMD): (vma, table, slot, page, bits, exclusive)
    entries: list[tuple[Vma, PageTable, int, int, int, bool]] = []
    for vma, index in list(rmap.rmap_walk_anon(m, folio)):
        mm = vma.mm
        idx = index >> 9
        pmd = mm.pmds.get(idx) if order == HPAGE_PMD_ORDER else None
        if pmd is not None and pmd[1] == folio:
            # split_huge_pmd_locked(freeze=true): 512 migration entries at once, so
            # the folio is never partially mapped on the way.
            bits = pmd[0]
            del mm.pmds[idx]
            count_vm_events(m, "thp_split_pmd", 1)
            t = mm.pgtables[idx] = PageTable()
            if bits & PTE_DIRTY:
                mem.flags[folio] |= PG_dirty
            exclusive = bool(mem.flags[folio] & PG_anon_exclusive)
            mem.flags[folio] &= ~PG_anon_exclusive  # folio_try_share_anon_rmap_pmd()
            entries.extend((vma, t, i, folio + i, bits, exclusive) for i in range(HPAGE_PMD_NR))
            rmap.folio_remove_rmap_pmd(m, folio)
            mem.refcount[folio] -= 1
            continue
        for _vpn, t, i, page in list(rmap.page_vma_mapped_walk(m, folio, vma, index)):
            # try_to_migrate_one(): one PTE at a time.
            bits = t.bits[i]
            if bits & PTE_DIRTY:
                mem.flags[folio] |= PG_dirty
            entries.append((vma, t, i, page, bits, bool(mem.flags[page] & PG_anon_exclusive)))
            t.bits[i] = 0
            t.pfn[i] = 0
            rmap.folio_remove_rmap_ptes(m, folio, page, 1)
            mem.refcount[folio] -= 1
    # __split_unmapped_folio(): uniform split to order 0.
    count_mthp_stat(m, order, "split", 1)
    if order == HPAGE_PMD_ORDER:
        count_vm_events(m, "thp_split_page", 1)
    if mem.flags[folio] & PG_anon:
        count_mthp_stat(m, order, "nr_anon", -1)
    if m.deferred_split.pop(folio, False):
        count_mthp_stat(m, order, "nr_anon_partially_mapped", -1)
    m.entire_mapcount.pop(folio, None)
    inherit = mem.flags[folio] & _SPLIT_INHERIT
    entry = mem.swap[folio]  # folio->swap
    anon_vma = mem.anon_vma[folio]
    index = mem.index[folio]
    caller_refs = mem.refcount[folio]  # the caller's (and the swap cache's, below)
    for k in range(nr):
        page = folio + k
        mem.flags[page] = inherit | (mem.flags[page] & PG_anon_exclusive)
        mem.order[page] = 0
        mem.anon_vma[page] = anon_vma
        mem.index[page] = index + k
        refs = 1 if swapcache else 0
        if swapcache:
            mem.swap[page] = entry + k
        if k == 0:
            refs = caller_refs - ((nr - 1) if swapcache else 0)
        elif folio_list is not None:
            refs += 1  # lru_add_split_folio(): reclaim's list holds it
            folio_list.append(page)
        mem.refcount[page] = refs
    # remap_page(RMP_USE_SHARED_ZEROPAGE): remove_migration_pte() per entry.
    zero_ok = m.profile.has("split_remap_zero_page")
    for vma, t, i, page, bits, exclusive in entries:
        if (
            zero_ok
            and not mem.data[page]
            and not vma.flags & VM_LOCKED
            and not mem.flags[page] & PG_mlocked
        ):
            # try_to_map_unused_to_zeropage()
            t.bits[i] = PTE_PRESENT | PTE_SPECIAL
            t.pfn[i] = ZERO_PFN
            vma.mm.counters[MM_ANONPAGES] -= 1
            continue
        pte = PTE_PRESENT | (bits & (PTE_YOUNG | PTE_WRITE | PTE_SOFT_DIRTY))
        if bits & PTE_DIRTY and mem.flags[page] & PG_dirty:
            pte |= PTE_DIRTY
        t.bits[i] = pte
        t.pfn[i] = page
        mem.mapcount[page] += 1
        if exclusive:
            mem.flags[page] |= PG_anon_exclusive
        mem.refcount[page] += 1
        if vma.flags & VM_LOCKED:
            # __folio_add_anon_rmap() -> mlock_vma_folio(): small folios mapped
            # into a VM_LOCKED VMA are mlocked (large ones are left to reclaim).
            mlock.mlock_folio(m, page)
            mlock.mlock_drain_local(m)  # remove_migration_pte()
    # free_folio_and_swap_cache() of every new folio but the caller's.
    for page in range(folio + 1, folio + nr):
        if swapcache and not mem.mapcount[page]:
            swap.folio_free_swap(m, page)
        if not mem.refcount[page]:
            __folio_put(m, page)
    if m.tracing:
        m.trace("__folio_split", f"folio {name} (order {order}) split to order 0")
    return True


def enabled_store(m: Machine, mode: str) -> None:
    """enabled_store(), mm/huge_memory.c, Linux 6.18: write transparent_hugepage/enabled."""
    m.thp_enabled = mode
    m.thp_orders_cache.clear()


def thpsize_enabled_store(m: Machine, order: int, mode: str) -> None:
    """thpsize_enabled_store(), mm/huge_memory.c, Linux 6.18: hugepages-<N>kB/enabled."""
    m.mthp_enabled[order] = mode
    m.thp_orders_cache.clear()


def can_split_folio(m: Machine, folio: int) -> bool:
    """can_split_folio(folio, 1, NULL), mm/huge_memory.c, Linux 6.18: no references beyond
    the mappings, the swap cache and the caller's."""
    extra = folio_nr_pages(m, folio) if folio_test_swapcache(m, folio) else 0
    return folio_mapcount(m, folio) == m.mem.refcount[folio] - extra - 1


__all__ = [
    "copy_huge_pmd",
    "deferred_split_folio",
    "do_huge_pmd_anonymous_page",
    "do_huge_pmd_wp_page",
    "enabled_store",
    "madvise_free_huge_pmd",
    "split_folio",
    "split_folio_to_list",
    "split_huge_pmd_locked",
    "thp_vma_allowable_orders",
    "thpsize_enabled_store",
    "vma_adjust_trans_huge",
    "zap_huge_pmd",
]
