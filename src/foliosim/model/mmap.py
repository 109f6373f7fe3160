"""Mappings and VMAs: mm/mmap.c, mm/vma.c (placement follows the scenario contract)."""

from __future__ import annotations

from foliosim.model import memory, mlock, rmap
from foliosim.model import vma as mm_vma
from foliosim.model.machine import Machine
from foliosim.model.errors import SyscallError
from foliosim.model.types import (
    PTRS_PER_PTE,
    VM_ACCOUNT,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_NORESERVE,
    VM_READ,
    VM_SOFTDIRTY,
    VM_WIPEONFORK,
    VM_WRITE,
    Mapping,
    Mm,
    Vma,
)

# Slots start high in the address space, like mmap's top-down placement; only
# their 2M alignment matters to the model.
SLOT_BASE = 0x3F800


def do_mmap(
    m: Machine,
    mm: Mm,
    name: str,
    pages: int,
    droppable: bool,
    offset: int,
    prot: int = VM_READ | VM_WRITE,
) -> Mapping:
    """do_mmap(), mm/mmap.c, Linux 6.18, of a private (or droppable) anonymous mapping in its own 2M slot.

    `prot` is calc_vm_prot_bits() of the PROT_* bits: VM_READ and VM_WRITE.
    """
    slots = -(-(offset + pages) // PTRS_PER_PTE)
    start = (SLOT_BASE + mm.next_slot) * PTRS_PER_PTE + offset
    mm.next_slot += slots + 1  # at least 2M of unmapped gap after it
    if droppable and not m.profile.has("map_droppable"):
        # Before Linux commit 9651fcedf7b9 ("mm: add MAP_DROPPABLE for designating
        # always lazily freeable mappings") (v6.11), MAP_DROPPABLE's 0x08 makes an
        # unknown MAP_TYPE: do_mmap()'s switch on flags & MAP_TYPE returns -EINVAL.
        # The scenario's mapping still names the (empty) place it asked for.
        mm.mappings[name] = Mapping(name, start, pages, droppable, mapped=False)
        raise SyscallError("EINVAL")
    flags = prot | mm.def_flags  # mm->def_flags: mlockall(MCL_FUTURE) applies to every new VMA
    if droppable:
        # MAP_DROPPABLE: VM_DROPPABLE | VM_WIPEONFORK | VM_NORESERVE | VM_DONTDUMP.
        flags |= VM_DROPPABLE | VM_WIPEONFORK | VM_NORESERVE | VM_DONTDUMP
    # __mmap_region() -> accountable_mapping(), mm/vma.c: a private writable
    # mapping without VM_NORESERVE is charged, VM_ACCOUNT.
    if flags & (VM_NORESERVE | VM_WRITE) == VM_WRITE:
        flags |= VM_ACCOUNT
    if m.profile.has("mem_soft_dirty"):
        # __mmap_region(), mm/vma.c (mmap_region(), mm/mmap.c before v6.13): "New (or
        # expanded) vma always get soft dirty status", with CONFIG_MEM_SOFT_DIRTY.
        flags |= VM_SOFTDIRTY
    populate = bool(flags & VM_LOCKED)  # do_mmap(): *populate = len for VM_LOCKED
    if flags & VM_LOCKED and flags & VM_DROPPABLE:
        # __mmap_complete(), mm/vma.c: !vma_supports_mlock() clears VM_LOCKED_MASK
        # on the VMA; do_mmap() asked for the population all the same.
        flags &= ~(VM_LOCKED | VM_LOCKONFAULT)
    vma = Vma(mm, start, start + pages, flags, name)
    mm.vmas.append(vma)
    mm.vmas.sort(key=lambda v: v.start)
    mp = mm.mappings[name] = Mapping(name, start, pages, droppable)
    if m.tracing:
        m.trace(
            "do_mmap",
            f"{mm.name} {name}: {pages} pages at {start << 12:#x}"
            f"{' droppable' if droppable else ''}",
        )
    if populate:
        # vm_mmap_pgoff(), mm/util.c: mm_populate(addr, len) after the mmap.
        mlock.__mm_populate(m, mm, start, start + pages, ignore_errors=True)
    return mp


def vmas_in_range(mm: Mm, start: int, end: int) -> list[Vma]:
    """The VMAs overlapping [start, end), in address order (a snapshot)."""
    return [v for v in mm.vmas if v.start < end and start < v.end]


def unlink_vma(m: Machine, vma: Vma) -> None:
    """The VMA leaves its anon_vmas and the mm's VMA tree.

    unlink_anon_vmas(), mm/rmap.c, and the VMA tree removal of vms_complete_munmap_vmas(), mm/vma.c, Linux 6.18.
    """
    rmap.unlink_anon_vmas(vma)
    vma.mm.vmas.remove(vma)


def free_pgtables(mm: Mm) -> None:
    """free_pgtables(), mm/memory.c, Linux 6.18: drop PTE pages no VMA covers any more."""
    live = set()
    for v in mm.vmas:
        live.update(range(v.start >> 9, ((v.end - 1) >> 9) + 1))
    for k in [k for k in mm.pgtables if k not in live]:
        del mm.pgtables[k]


def do_munmap(m: Machine, mm: Mm, name: str) -> None:
    """do_munmap() -> do_vmi_munmap(), mm/mmap.c and mm/vma.c, Linux 6.18, of a whole scenario mapping: zap, unlink, free page tables."""
    mp = mm.mappings.pop(name)
    # No lru_add_drain(): vms_clear_ptes() (mm/vma.c, 6.18) has none, so folios
    # still queued (e.g. for lazyfree) are moved and counted at the next drain.
    for vma in vmas_in_range(mm, mp.start, mp.start + mp.pages):
        memory.zap_pte_range(m, vma, vma.start, vma.end)
        unlink_vma(m, vma)
    free_pgtables(mm)


def do_vmi_munmap(m: Machine, mm: Mm, start: int, end: int) -> None:
    """do_vmi_munmap() -> do_vmi_align_munmap(), mm/vma.c, Linux 6.18, of [start, end) of a mapping.

    vms_gather_munmap_vmas() splits the VMAs that reach past either end
    (__split_vma(), which splits a huge PMD the new boundary cuts), then
    vms_clear_ptes() zaps what is left inside: a large folio only partly
    inside loses those PTEs and goes on the deferred split queue, partially
    mapped (folio_remove_rmap_ptes()).  No lru_add_drain(), as do_munmap().
    """
    vmas = vmas_in_range(mm, start, end)
    if not vmas:
        return  # nothing mapped there: munmap() succeeds
    if vmas[0].start < start:
        mm_vma.__split_vma(m, vmas[0], start)
    last = vmas_in_range(mm, start, end)[-1]
    if last.end > end:
        mm_vma.__split_vma(m, last, end)
    for vma in vmas_in_range(mm, start, end):
        memory.zap_pte_range(m, vma, vma.start, vma.end)
        unlink_vma(m, vma)
    free_pgtables(mm)
    if m.tracing:
        m.trace("do_vmi_munmap", f"{mm.name}: [{start << 12:#x}, {end << 12:#x}) unmapped")


def exit_mmap(m: Machine, mm: Mm) -> None:
    """exit_mmap(), mm/mmap.c, Linux 6.18: zap every VMA, free everything."""
    # No lru_add_drain(): 6.18's exit_mmap() has none (Rik van Riel's "mm: remove
    # unnecessary calls to lru_add_drain" took it out), so a MADV_FREE'd folio
    # still queued when its process exits is counted at the next drain, if any.
    for vma in list(mm.vmas):
        memory.zap_pte_range(m, vma, vma.start, vma.end)
        unlink_vma(m, vma)
    mm.pgtables.clear()
    mm.mappings.clear()


__all__ = [
    "do_mmap",
    "do_munmap",
    "do_vmi_munmap",
    "exit_mmap",
    "vmas_in_range",
]
