"""Resizing and moving a mapping: mm/mremap.c (and move_huge_pmd() of mm/huge_memory.c).

The scenario's `mremap NAME PAGES` is mremap(addr, old_len, new_len, 0): shrink
or grow in place; `mremap NAME PAGES move [offset N]` is MREMAP_MAYMOVE |
MREMAP_FIXED to a fresh 2M slot, N pages into it.  A moved VMA keeps its
vm_pgoff, so folio->index stays as it was and rmap finds the folio at its new
address (vma_address()).  Model: x86-64, so pte_batch_hint() is 1 and
move_ptes() moves one PTE at a time; no soft-dirty, no uffd; the target slot
is empty, so copy_vma() has nothing to merge with (a VMA of the same move
before it differs in flags or lies past a hole, or it would not be separate).
"""

from __future__ import annotations

from foliosim.model import gup, huge_memory, mmap, rmap
from foliosim.model.errors import SyscallError
from foliosim.model.machine import Machine
from foliosim.model.types import PTRS_PER_PTE, VM_LOCKED, Mm, PageTable, Vma

PMD_NR = PTRS_PER_PTE  # pages a page table (one PMD entry) maps


def vma_lookup(mm: Mm, vpn: int) -> Vma | None:
    """vma_lookup(), include/linux/mm.h, Linux 6.18: the VMA containing vpn."""
    return mm.find_vma(vpn)


def copy_vma(m: Machine, vma: Vma, addr: int, pages: int, pgoff: int) -> Vma:
    """copy_vma(), mm/vma.c, Linux 6.18: the VMA at the destination (vm_area_dup() + anon_vma_clone())."""
    if vma.anon_vma is None:
        pgoff = addr  # never faulted: the new location's own pgoff
    new = Vma(
        vma.mm,
        addr,
        addr + pages,
        vma.flags,
        vma.name,
        vma.anon_vma,
        [],
        vma.swap_readahead_info,
        pgoff=pgoff,
    )
    rmap.anon_vma_clone(new, vma)
    vma.mm.vmas.append(new)
    vma.mm.vmas.sort(key=lambda v: v.start)
    return new


def can_align_down(mm: Mm, vma: Vma, addr: int) -> bool:
    """can_align_down(), mm/mremap.c, Linux 6.18: addr is the VMA's start and nothing lies below it in its PMD."""
    if vma.start != addr:
        return False
    down = addr & ~(PMD_NR - 1)
    return not mmap.vmas_in_range(mm, down, vma.start)


def move_ptes(t_old: PageTable, t_new: PageTable, old: int, new: int, extent: int) -> None:
    """move_ptes(), mm/mremap.c, Linux 6.18: each entry (present or swap) to its new slot."""
    for k in range(extent):
        i, j = (old + k) & 511, (new + k) & 511
        bits = t_old.bits[i]
        if not bits:
            continue
        # get_and_clear_ptes() + set_ptes(), one entry at a time on x86
        # (mremap_folio_pte_batch(): pte_batch_hint() is 1).
        t_new.bits[j] = bits
        t_new.pfn[j] = t_old.pfn[i]
        t_old.bits[i] = 0
        t_old.pfn[i] = 0


def move_page_tables(m: Machine, vma: Vma, new_vma: Vma, old_addr: int, new_addr: int, nr: int) -> None:
    """move_page_tables(), mm/mremap.c, Linux 6.18: whole page tables and PMDs where aligned, else PTEs."""
    mm = vma.mm
    old_end = old_addr + nr
    # try_realign_addr(): equally misaligned ends that reach a PMD boundary move
    # from the PMD below, when nothing else is mapped there.
    old_align, new_align = old_addr & (PMD_NR - 1), new_addr & (PMD_NR - 1)
    if (
        nr >= PMD_NR - old_align
        and old_align
        and old_align == new_align
        and can_align_down(mm, vma, old_addr)
        and can_align_down(mm, new_vma, new_addr)
    ):
        old_addr -= old_align
        new_addr -= new_align
    while old_addr < old_end:
        # get_extent(NORMAL_PMD): to the next PMD boundary of either side.
        extent = min(
            ((old_addr + PMD_NR) & ~(PMD_NR - 1)) - old_addr,
            old_end - old_addr,
            ((new_addr + PMD_NR) & ~(PMD_NR - 1)) - new_addr,
        )
        oi, ni = old_addr >> 9, new_addr >> 9
        new_none = ni not in mm.pmds and ni not in mm.pgtables
        if oi in mm.pmds:
            if extent == PMD_NR and new_none:
                mm.pmds[ni] = mm.pmds.pop(oi)  # move_huge_pmd()
                if m.tracing:
                    m.trace("move_huge_pmd", f"PMD moved to {new_addr << 12:#x}")
                old_addr += extent
                new_addr += extent
                continue
            huge_memory.__split_huge_pmd(m, vma, oi)  # split_huge_pmd()
        elif extent == PMD_NR and oi in mm.pgtables and new_none:
            mm.pgtables[ni] = mm.pgtables.pop(oi)  # move_normal_pmd(): the page table itself
            if m.tracing:
                m.trace("move_normal_pmd", f"page table moved to {new_addr << 12:#x}")
            old_addr += extent
            new_addr += extent
            continue
        t_old = mm.pgtables.get(oi)
        if t_old is not None:
            t_new = mm.pte_table(new_addr, alloc=True)
            assert t_new is not None
            move_ptes(t_old, t_new, old_addr, new_addr, extent)
        old_addr += extent
        new_addr += extent


def move_vma(m: Machine, vma: Vma, addr: int, old_pages: int, new_addr: int, new_pages: int) -> None:
    """move_vma() -> copy_vma_and_data(), unmap_source_vma(), mm/mremap.c, Linux 6.18."""
    mm = vma.mm
    new_pgoff = vma.pgoff + (addr - vma.start)
    new_vma = copy_vma(m, vma, new_addr, new_pages, new_pgoff)
    move_page_tables(m, vma, new_vma, addr, new_addr, old_pages)
    # unmap_source_vma(): the old range goes (its entries have moved already).
    mmap.do_vmi_munmap(m, mm, addr, addr + old_pages)


def _populate_expand(m: Machine, mm: Mm, start: int, end: int) -> None:
    # mm_populate() of what a VM_LOCKED mapping grew by: __mm_populate(ignore_errors=1).
    for v in mmap.vmas_in_range(mm, start, end):
        if v.flags & VM_LOCKED:
            try:
                gup.populate_vma_page_range(m, v, max(start, v.start), min(end, v.end))
            except SyscallError:
                pass


def do_mremap(m: Machine, mm: Mm, name: str, pages: int, move: bool, offset: int) -> None:
    """do_mremap(), mm/mremap.c, Linux 6.18, of a whole scenario mapping; raises SyscallError."""
    mp = mm.mappings[name]
    addr, old = mp.start, mp.pages
    new_addr = addr
    if move:
        # The fresh 2M slot, placed as do_mmap() places mappings (taken even if
        # the call then fails, as the kernel backend takes it).
        new_addr = (mmap.SLOT_BASE + mm.next_slot) * PTRS_PER_PTE + offset
        mm.next_slot += -(-(offset + pages) // PTRS_PER_PTE) + 1
    if move and old == pages:
        # remap_move(): every VMA of the range moves, holes kept between them.
        vmas = mmap.vmas_in_range(mm, addr, addr + old)
        if not vmas or vmas[0].start > addr:
            raise SyscallError("EFAULT")
        for v in vmas:
            s, e = max(v.start, addr), min(v.end, addr + old)
            move_vma(m, v, s, e - s, new_addr + (s - addr), e - s)
    else:
        vma = vma_lookup(mm, addr)
        if vma is None:
            raise SyscallError("EFAULT")
        # check_prep_vma(): only a remap that maps anew (an expand or a move,
        # vrm_will_map_new()) must keep what stays mapped inside one VMA; a shrink
        # or a same-size remap in place may cross VMA boundaries.
        if (move or pages > old) and min(old, pages) > vma.end - addr:
            raise SyscallError("EFAULT")
        if move:
            # mremap_to(): shrink first, then move what is left.
            if pages < old:
                mmap.do_vmi_munmap(m, mm, addr + pages, addr + old)
                old = pages
                vma = vma_lookup(mm, addr)
                assert vma is not None
            elif old > vma.end - addr:
                raise SyscallError("EFAULT")
            move_vma(m, vma, addr, old, new_addr, pages)
        elif pages < old:
            mmap.do_vmi_munmap(m, mm, addr + pages, addr + old)  # shrink_vma()
        elif pages > old:
            # expand_vma(): in place if the VMA ends there and nothing follows it.
            if old > vma.end - addr or vma.end != addr + old:
                raise SyscallError("EFAULT" if old > vma.end - addr else "ENOMEM")
            if mmap.vmas_in_range(mm, vma.end, addr + pages):
                raise SyscallError("ENOMEM")  # no MREMAP_MAYMOVE
            vma.end = addr + pages  # vma_merge_extend() -> vma_expand()
        if pages > old and vma.flags & VM_LOCKED:
            _populate_expand(m, mm, new_addr + old, new_addr + pages)
    mp.start, mp.pages = new_addr, pages
    if m.tracing:
        m.trace("do_mremap", f"{mm.name} {name}: {pages} pages at {new_addr << 12:#x}")


__all__ = ["do_mremap", "move_page_tables", "move_vma"]
