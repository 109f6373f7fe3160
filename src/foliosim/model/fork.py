"""fork(): dup_mmap() of kernel/fork.c and the copy_page_range() of mm/memory.c it calls."""

from __future__ import annotations

from foliosim.model import huge_memory, lru, page_alloc, rmap, swap
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_get
from foliosim.model.page_flags import page_folio
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
    VM_DONTCOPY,
    VM_LOCKONFAULT,
    VM_WIPEONFORK,
    Mapping,
    Mm,
    Vma,
)


def copy_present_page(m: Machine, dst: Vma, vpn: int, src_pfn: int) -> tuple[int, int]:
    """copy_present_page(), mm/memory.c, Linux 6.18: the child gets its own copy at once."""
    new = page_alloc.folio_alloc(m, 0)
    m.mem.data[new] = m.mem.data[src_pfn]
    rmap.folio_add_new_anon_rmap(m, new, dst, vpn)
    lru.folio_add_lru_vma(m, new, dst)
    return new, PTE_PRESENT | PTE_DIRTY | PTE_YOUNG | PTE_WRITE


def copy_pte_range(m: Machine, dst: Vma, src: Vma) -> None:
    """copy_pmd_range() -> copy_pte_range(), mm/memory.c, Linux 6.18: one PTE at a time.

    Model: a large folio's PTEs are copied one by one; without pins the
    outcome equals copy_present_ptes()' batches.
    """
    smm, dmm = src.mm, dst.mm
    for idx in [k for k in smm.pmds if src.start <= k << 9 < src.end]:
        huge_memory.copy_huge_pmd(m, dst, src, idx)
    for vpn in range(src.start, src.end):
        st = smm.pte_table(vpn)
        if st is None:
            continue
        i = vpn & 511
        bits = int(st.bits[i])
        if not bits:
            continue
        dt = dmm.pte_table(vpn, alloc=True)
        pfn = int(st.pfn[i])
        if bits & PTE_SWAP:
            # copy_nonpresent_pte(): one more user of the slot; nobody is exclusive now.
            swap.swap_duplicate(m, pfn)
            if bits & PTE_SWP_EXCLUSIVE:
                bits &= ~PTE_SWP_EXCLUSIVE
                st.bits[i] = bits
            dmm.counters[MM_SWAPENTS] += 1
            dt.bits[i] = bits
            dt.pfn[i] = pfn
            continue
        if bits & PTE_SPECIAL:
            dt.bits[i] = bits & ~PTE_YOUNG
            dt.pfn[i] = pfn
            continue
        folio = page_folio(m, pfn)
        if not rmap.folio_try_dup_anon_rmap_pte(m, folio, pfn, src):
            new, nbits = copy_present_page(m, dst, vpn, pfn)
            dmm.counters[MM_ANONPAGES] += 1
            dt.bits[i] = nbits | (bits & PTE_SOFT_DIRTY)
            dt.pfn[i] = new
            continue
        folio_get(m, folio)
        dmm.counters[MM_ANONPAGES] += 1
        # __copy_present_ptes(): a COW mapping write-protects both sides; the
        # child's entry starts old; dirty stays (private mapping).
        if bits & PTE_WRITE:
            bits &= ~PTE_WRITE
            st.bits[i] = bits
        dt.bits[i] = bits & ~PTE_YOUNG
        dt.pfn[i] = pfn


def dup_mmap(m: Machine, parent: Mm, child_name: str) -> Mm:
    """dup_mmap(), kernel/fork.c / mm/mmap.c, Linux 6.18: the child's mm."""
    child = Mm(child_name, next_slot=parent.next_slot, has_pinned=False)
    for name, mp in parent.mappings.items():
        child.mappings[name] = Mapping(mp.name, mp.start, mp.pages, mp.droppable, mp.mapped)
    for vma in parent.vmas:
        if vma.flags & VM_DONTCOPY:
            # MADV_DONTFORK: the child gets no VMA there at all (vma_iter_clear_gfp()).
            continue
        new = Vma(
            child,
            vma.start,
            vma.end,
            vma.flags & ~(VM_LOCKED | VM_LOCKONFAULT),
            vma.name,
            swap_readahead_info=vma.swap_readahead_info,
            pgoff=vma.pgoff,
        )  # vm_area_dup() copies them
        child.vmas.append(new)
        if vma.flags & VM_WIPEONFORK:
            # The child gets the VMA but neither anon_vma nor page tables: zeroes.
            continue
        if vma.anon_vma is None:
            # vma_needs_copy(): no anon_vma (only zero pages were ever mapped), so
            # the child's faults will fill the page table; nothing is copied.
            continue
        if vma.anon_vma is not None:
            # anon_vma_fork(): join every anon_vma of the parent, plus one of its own.
            for av in vma.chain:
                av.vmas.append(new)
                new.chain.append(av)
            own = rmap.anon_vma_alloc(m)
            own.vmas.append(new)
            new.chain.append(own)
            new.anon_vma = own
        copy_pte_range(m, new, vma)
    m.mms[child_name] = child
    # dup_mmap() calls no lru_add_drain(): the lazyfree, deactivate and activate
    # batches keep what they hold.  Model: the contract (docs/scenario-format.md)
    # has lru_add empty after fork; a real child's first COW faults add folios to
    # it (wp_page_copy() -> folio_add_lru_vma()) in numbers the model cannot know,
    # and the kernel backend pushes it out.
    lru.folio_batch_move_lru(m, "lru_add")
    if m.tracing:
        m.trace("dup_mmap", f"{parent.name} forked {child_name}: PTEs write-protected and shared")
    return child


def kernel_clone(m: Machine, parent: Mm, child_name: str) -> Mm:
    """kernel_clone(), kernel/fork.c, Linux 6.18: the fork(2) entry point; returns the child.

    The model's process is its mm: copy_process() -> copy_mm() -> dup_mmap().
    """
    return dup_mmap(m, parent, child_name)
