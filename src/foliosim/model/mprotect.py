"""Changing a range's protection: mm/mprotect.c (and change_huge_pmd() of mm/huge_memory.c).

Model: private anonymous VMAs, so vm_page_prot never carries the write bit
(vm_get_page_prot() of a private writable VMA is PAGE_COPY: writes fault for
COW) and vma_wants_manual_pte_write_upgrade() is VM_WRITE; no soft-dirty
tracking (CONFIG_MEM_SOFT_DIRTY is off), no uffd-wp, no NUMA hinting.  A
PROT_NONE PTE keeps its page and its young and dirty bits (pte_modify() keeps
_PAGE_CHG_MASK); pte_protnone() holds for every present PTE of a VMA without
VM_READ | VM_WRITE, which is how the model tells it (the user access in
fault.py and GUP's check_vma_flags() read the VMA's flags).
"""

from __future__ import annotations

from foliosim.model import gup, huge_memory
from foliosim.model import vma as mm_vma
from foliosim.model.errors import SyscallError
from foliosim.model.internal import FPB_RESPECT_SOFT_DIRTY, FPB_RESPECT_WRITE, folio_pte_batch_flags
from foliosim.model.machine import Machine
from foliosim.model.mm import folio_nr_pages
from foliosim.model.page_flags import page_folio
from foliosim.model.trace import vpn_name
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_WRITE,
    PTE_YOUNG,
    VM_ACCOUNT,
    VM_LOCKED,
    VM_NORESERVE,
    VM_READ,
    VM_WRITE,
    Mm,
    PageTable,
    PG_anon,
    PG_anon_exclusive,
    Vma,
)

# The scenario's protections as calc_vm_prot_bits() of PROT_NONE, PROT_READ and
# PROT_READ | PROT_WRITE, include/linux/mman.h.
PROT_VM_FLAGS = {"none": 0, "read": VM_READ, "readwrite": VM_READ | VM_WRITE}


def vma_is_accessible(vma: Vma) -> bool:
    """vma_is_accessible(), include/linux/mm.h, Linux 6.18: VM_READ, VM_WRITE or VM_EXEC."""
    return bool(vma.flags & mm_vma.VM_ACCESS_FLAGS)


def can_change_private_pte_writable(m: Machine, vma: Vma, bits: int, page: int) -> bool:
    """can_change_private_pte_writable(), mm/mprotect.c, Linux 6.18: an exclusive anonymous page.

    maybe_change_pte_writable() first: never a PROT_NONE entry (the VMA is
    writable here, so none is).
    """
    if not vma.flags & VM_WRITE or bits & PTE_SPECIAL:
        return False  # vm_normal_page() is NULL for the zero page
    mem = m.mem
    return bool(mem.flags[page_folio(m, page)] & PG_anon and mem.flags[page] & PG_anon_exclusive)


def prot_commit_flush_ptes(
    t: PageTable, i: int, bits: int, pfn: int, nr: int, set_write: bool
) -> None:
    """prot_commit_flush_ptes(), mm/mprotect.c, Linux 6.18: nr PTEs from slot i get `bits`, pfns advancing."""
    if set_write:
        bits |= PTE_WRITE  # pte_mkwrite()
    for k in range(nr):  # modify_prot_commit_ptes()
        t.bits[i + k] = bits
        t.pfn[i + k] = pfn + k


def commit_anon_folio_batch(
    m: Machine, t: PageTable, i: int, bits: int, page: int, nr: int
) -> None:
    """commit_anon_folio_batch(), mm/mprotect.c, Linux 6.18: sub-batches of equal PageAnonExclusive,
    the exclusive ones made writable."""
    flags = m.mem.flags
    k = 0
    while k < nr:
        excl = bool(flags[page + k] & PG_anon_exclusive)
        # page_anon_exclusive_sub_batch()
        n = 1
        while k + n < nr and bool(flags[page + k + n] & PG_anon_exclusive) == excl:
            n += 1
        prot_commit_flush_ptes(t, i + k, bits, page + k, n, excl)
        k += n


def change_pte_range(
    m: Machine, vma: Vma, t: PageTable, start: int, end: int, try_writable: bool
) -> int:
    """change_pte_range(), mm/mprotect.c, Linux 6.18: [start, end) of one page table; pages changed."""
    writable = bool(vma.flags & VM_WRITE)
    pages = 0
    vpn = start
    while vpn < end:
        i = vpn & 511
        old = int(t.bits[i])
        nr = 1
        if old & PTE_PRESENT:
            page = int(t.pfn[i])
            folio = -1 if old & PTE_SPECIAL else page_folio(m, page)
            if folio >= 0 and m.mem.order[folio]:
                # mprotect_folio_pte_batch(): write and soft-dirty must match.
                nr = folio_pte_batch_flags(
                    t,
                    i,
                    page,
                    folio,
                    folio_nr_pages(m, folio),
                    end - vpn,
                    FPB_RESPECT_SOFT_DIRTY | FPB_RESPECT_WRITE,
                )
            # modify_prot_start_ptes(): the batch's young and dirty bits gathered
            # into one value, which modify_prot_commit_ptes() writes to every entry.
            for k in range(1, nr):
                old |= int(t.bits[i + k]) & (PTE_YOUNG | PTE_DIRTY)
            # pte_modify(oldpte, vm_page_prot): a private mapping's prot has no
            # write bit, PROT_NONE's no present bit (the model keeps PTE_PRESENT:
            # pte_present() still holds for a protnone entry).
            ptent = old & ~PTE_WRITE
            if try_writable and writable:
                # set_write_prot_commit_flush_ptes()
                if folio >= 0 and m.mem.flags[folio] & PG_anon:
                    commit_anon_folio_batch(m, t, i, ptent, page, nr)
                else:
                    prot_commit_flush_ptes(t, i, ptent, page, nr, False)
            else:
                prot_commit_flush_ptes(t, i, ptent, page, nr, False)
            pages += nr
        # A swap entry keeps its value (not a writable migration entry); none is none.
        elif old & PTE_SWAP:
            pass
        vpn += nr
    return pages


def can_change_pmd_writable(m: Machine, vma: Vma, pmd: list[int]) -> bool:
    """can_change_pmd_writable(), mm/huge_memory.c, Linux 6.18: an exclusive anonymous THP."""
    if not vma.flags & VM_WRITE or pmd[0] & PTE_SPECIAL:
        return False  # vm_normal_page_pmd() is NULL for the huge zero page
    mem = m.mem
    return bool(mem.flags[pmd[1]] & PG_anon and mem.flags[pmd[1]] & PG_anon_exclusive)


def change_huge_pmd(m: Machine, vma: Vma, idx: int, try_writable: bool) -> int:
    """change_huge_pmd(), mm/huge_memory.c, Linux 6.18: the PMD's new protection; HPAGE_PMD_NR."""
    pmd = vma.mm.pmds[idx]
    entry = pmd[0] & ~PTE_WRITE  # pmd_modify()
    if try_writable and can_change_pmd_writable(m, vma, pmd):
        entry |= PTE_WRITE
    pmd[0] = entry
    return huge_memory.HPAGE_PMD_NR


def change_protection(m: Machine, vma: Vma, start: int, end: int, try_writable: bool) -> int:
    """change_protection() -> change_pmd_range(), mm/mprotect.c, Linux 6.18: pages changed."""
    mm = vma.mm
    pages = 0
    vpn = start
    while vpn < end:
        nxt = min(end, (vpn | 511) + 1)
        idx = vpn >> 9
        if idx in mm.pmds:
            if nxt - vpn != 512:
                huge_memory.__split_huge_pmd(m, vma, idx)
            else:
                pages += change_huge_pmd(m, vma, idx, try_writable)
                vpn = nxt
                continue
        t = mm.pgtables.get(idx)
        if t is not None:
            pages += change_pte_range(m, vma, t, vpn, nxt, try_writable)
        vpn = nxt
    return pages


def mprotect_fixup(
    m: Machine, vma: Vma, prev: Vma | None, start: int, end: int, newflags: int
) -> Vma:
    """mprotect_fixup(), mm/mprotect.c, Linux 6.18: [start, end) of the VMA gets newflags; returns the new prev."""
    oldflags = vma.flags
    if newflags == oldflags:
        return vma
    # A private mapping made writable is charged (VM_ACCOUNT) unless it already
    # was; made read-only, it is uncharged only while it has no anon_vma.
    if newflags & VM_WRITE:
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_NORESERVE):
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    vma = mm_vma.vma_modify_flags(m, prev, vma, start, end, newflags)
    vma.flags = newflags  # vm_flags_reset_once()
    # vma_wants_manual_pte_write_upgrade(): a private writable VMA gets
    # MM_CP_TRY_CHANGE_WRITABLE.
    try_writable = bool(newflags & VM_WRITE)
    pages = change_protection(m, vma, start, end, try_writable)
    if m.tracing:
        m.trace(
            "change_protection",
            f"{vpn_name(vma.mm, start)} +{end - start} pages: now "
            f"{'rw' if newflags & VM_WRITE else 'r' if newflags & VM_READ else 'none'}, "
            f"{pages} PTEs changed",
        )
    # A private VM_LOCKED VMA becoming writable: COW now, not at the first access.
    if oldflags & (VM_WRITE | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
        gup.populate_vma_page_range(m, vma, start, end)
    return vma


def do_mprotect_pkey(m: Machine, mm: Mm, start: int, end: int, prot: int) -> None:
    """do_mprotect_pkey(pkey=-1), mm/mprotect.c, Linux 6.18: the mprotect(2) entry point.

    Raises SyscallError("ENOMEM") where [start, end) is not mapped throughout;
    the VMAs before the hole have their new protection already.
    """
    vma = next((v for v in mm.vmas if v.end > start), None)  # vma_find()
    if vma is None or vma.start >= end or vma.start > start:
        raise SyscallError("ENOMEM")
    prev = vma if start > vma.start else mm_vma.vma_prev(mm, vma)
    nstart = start
    tmp = vma.start
    while True:
        vma = next((v for v in mm.vmas if v.end > nstart), None)  # for_each_vma_range()
        if vma is None or vma.start >= end:
            break
        if vma.start != tmp:
            raise SyscallError("ENOMEM")
        newflags = prot | (vma.flags & ~mm_vma.VM_ACCESS_FLAGS)
        prev = mprotect_fixup(m, vma, prev, nstart, min(vma.end, end), newflags)
        # vma_iter_end(): the end of the VMA the range now lies in, a merge's included.
        tmp = nstart = prev.end
        if nstart >= end:
            break
    if tmp < end:
        raise SyscallError("ENOMEM")


__all__ = [
    "PROT_VM_FLAGS",
    "change_protection",
    "do_mprotect_pkey",
    "mprotect_fixup",
    "vma_is_accessible",
]
