"""What /proc/PID/smaps and /proc/PID/pagemap show: fs/proc/task_mmu.c."""

from __future__ import annotations

import numpy as np

from foliosim.model.machine import Machine
from foliosim.model.types import (
    VM_ACCOUNT,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_LOCKONFAULT,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SOFTDIRTY,
    VM_WIPEONFORK,
    VM_WRITE,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    VM_LOCKED,
    Mapping,
    Mm,
    PG_anon,
    PG_dirty,
    PG_swapbacked,
    PG_tail,
    Vma,
)
from foliosim.observation import SMAPS_KEYS

PSS_SHIFT = 12
PAGE_SIZE = 4096


def mapping_ptes(mm: Mm, start: int, nr: int) -> tuple[np.ndarray, np.ndarray]:
    """PTE bits and pfns of nr pages from vpn `start` (none where no page table).

    A huge PMD shows as the 512 entries it stands for: its bits, pfns advancing.
    """
    bits = np.zeros(nr, np.uint8)
    pfn = np.zeros(nr, np.int64)
    vpn = start
    while vpn < start + nr:
        end = min(start + nr, (vpn | 511) + 1)
        t = mm.pte_table(vpn)
        a, b = vpn & 511, (vpn & 511) + (end - vpn)
        if t is not None:
            bits[vpn - start : end - start] = t.bits_v[a:b]
            pfn[vpn - start : end - start] = t.pfn_v[a:b]
        elif mm.pmds:
            pmd = mm.pmds.get(vpn >> 9)
            if pmd is not None:
                bits[vpn - start : end - start] = pmd[0]
                pfn[vpn - start : end - start] = np.arange(pmd[1] + a, pmd[1] + b)
        vpn = end
    return bits, pfn


def mapping_pmd_mapped(mm: Mm, start: int, nr: int) -> np.ndarray:
    """Which of nr pages from vpn `start` are mapped by a huge PMD."""
    mask = np.zeros(nr, bool)
    for idx in mm.pmds:
        s, e = max(start, idx << 9), min(start + nr, (idx + 1) << 9)
        if s < e:
            mask[s - start : e - start] = True
    return mask


def folio_heads(m: Machine, pfn: np.ndarray) -> np.ndarray:
    """compound_head(), include/linux/page-flags.h, Linux 6.18, of each pfn (folios are naturally aligned in pfn space)."""
    flags = m.mem.view("flags")
    heads = pfn.copy()
    tail = (flags[heads] & PG_tail).astype(bool)
    k = 1
    while tail.any():
        heads[tail] = pfn[tail] & ~((1 << k) - 1)
        tail = (flags[heads] & PG_tail).astype(bool)
        k += 1
    return heads


def precise_mapcounts(m: Machine, pages: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """folio_precise_page_mapcount(), fs/proc/internal.h, Linux 6.18, of each page: its PTEs plus its folio's PMDs."""
    mapcount = m.mem.view("mapcount")[pages].astype(np.int64)
    if m.entire_mapcount:
        entire = m.entire_mapcount
        mapcount += np.fromiter((entire.get(int(h), 0) for h in heads), np.int64, len(heads))
    return mapcount


def show_smap(m: Machine, vma: Vma) -> dict[str, int]:
    """show_smap(), fs/proc/task_mmu.c, Linux 6.18, of one VMA, in kB (smaps_pte_entry + smaps_account)."""
    mem = m.mem
    bits, pfn = mapping_ptes(vma.mm, vma.start, vma.end - vma.start)
    normal = (bits & PTE_PRESENT).astype(bool) & ~(bits & PTE_SPECIAL).astype(bool)
    pages = pfn[normal]
    heads = folio_heads(m, pages)
    pte_dirty = (bits[normal] & PTE_DIRTY).astype(bool)
    fflags = mem.view("flags")[heads]
    anon = (fflags & PG_anon).astype(bool)
    folio_dirty = (fflags & PG_dirty).astype(bool)
    dirty = pte_dirty | folio_dirty
    lazyfree = anon & ~(fflags & PG_swapbacked).astype(bool) & ~dirty
    mapcount = precise_mapcounts(m, pages, heads)
    refcount = mem.view("refcount")[heads]
    huge = 0
    if vma.mm.pmds:
        pmd_mapped = mapping_pmd_mapped(vma.mm, vma.start, vma.end - vma.start)[normal]
        huge = int((pmd_mapped & anon).sum())
    # smaps_account(): refcount 1 means private; otherwise by the page's mapcount.
    private = (refcount == 1) | (mapcount < 2)
    pss = (PAGE_SIZE << PSS_SHIFT) // np.maximum(mapcount, 1)
    pss = np.where(refcount == 1, PAGE_SIZE << PSS_SHIFT, pss)
    swap = (bits & PTE_SWAP).astype(bool)
    swap_pss = 0
    if swap.any():
        counts = m.swap.swap_map_v[pfn[swap]].astype(np.int64)
        swap_pss = int(((PAGE_SIZE << PSS_SHIFT) // np.maximum(counts, 1)).sum())
    n = int(normal.sum())
    kb = PAGE_SIZE // 1024
    total_pss = int(pss.sum())
    locked = bool(vma.flags & VM_LOCKED)
    return {
        "Rss": n * kb,
        "Pss": (total_pss >> PSS_SHIFT) // 1024,
        "Shared_Clean": int((~private & ~dirty).sum()) * kb,
        "Shared_Dirty": int((~private & dirty).sum()) * kb,
        "Private_Clean": int((private & ~dirty).sum()) * kb,
        "Private_Dirty": int((private & dirty).sum()) * kb,
        "Anonymous": int(anon.sum()) * kb,
        "LazyFree": int(lazyfree.sum()) * kb,
        "AnonHugePages": huge * kb,
        "Swap": int(swap.sum()) * kb,
        "SwapPss": (swap_pss >> PSS_SHIFT) // 1024,
        "Locked": ((total_pss >> PSS_SHIFT) // 1024) if locked else 0,
    }


def smaps_of_mapping(m: Machine, mm: Mm, mp: Mapping) -> dict[str, int]:
    """The contract's smaps: each field summed over the mapping's VMAs."""
    total = dict.fromkeys(SMAPS_KEYS, 0)
    for vma in mm.vmas:
        if vma.start < mp.start + mp.pages and mp.start < vma.end:
            for k, v in show_smap(m, vma).items():
                total[k] += v
    return total


def pte_to_pagemap_entry(
    m: Machine, bits: np.ndarray, pfn: np.ndarray, pmd_mapped: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """pte_to_pagemap_entry(), fs/proc/task_mmu.c, Linux 6.18: (present, swap, exclusive) per PTE.

    Exclusive is the page's precise mapcount == 1 (CONFIG_PAGE_MAPCOUNT), never
    for the zero page or a swap entry.  Soft-dirty is never set: this kernel is
    built without CONFIG_MEM_SOFT_DIRTY.
    """
    present = (bits & PTE_PRESENT).astype(bool)
    swap = (bits & PTE_SWAP).astype(bool)
    normal = present & ~(bits & PTE_SPECIAL).astype(bool)
    pages = np.where(normal, pfn, 0)
    heads = folio_heads(m, pages)
    if pmd_mapped is not None:
        # pagemap_pmd_range_thp() asks about pmd_page() -- the head -- for every
        # page the PMD maps.
        pages = np.where(pmd_mapped, heads, pages)
    exclusive = normal & (precise_mapcounts(m, pages, heads) == 1)
    return present, swap, exclusive


# show_smap_vma_flags(), fs/proc/task_mmu.c, Linux 6.18: the VmFlags mnemonics of the
# vm_flags the model keeps, in the kernel's bit order (VM_READ 0x1 ... VM_DROPPABLE
# bit 40), which is the order smaps prints them in.  None: a flag every model VMA
# has.  Model: every VMA is a private anonymous mapping made readable, with VM_MAYREAD,
# VM_MAYWRITE and VM_MAYEXEC (do_mmap()'s defaults); VM_SOFTDIRTY is set (and its
# letter printed) only with CONFIG_MEM_SOFT_DIRTY (profile feature mem_soft_dirty).
VM_MNEMONICS: tuple[tuple[int | None, str], ...] = (
    (VM_READ, "rd"),  # 0x1
    (VM_WRITE, "wr"),  # 0x2
    (None, "mr"),  # VM_MAYREAD 0x10
    (None, "mw"),  # VM_MAYWRITE 0x20
    (None, "me"),  # VM_MAYEXEC 0x40
    (VM_LOCKED, "lo"),  # 0x2000
    (VM_DONTCOPY, "dc"),  # 0x20000
    (VM_LOCKONFAULT, "lf"),  # 0x80000
    (VM_ACCOUNT, "ac"),  # 0x100000
    (VM_NORESERVE, "nr"),  # 0x200000
    (VM_WIPEONFORK, "wf"),  # 0x2000000
    (VM_DONTDUMP, "dd"),  # 0x4000000
    (VM_SOFTDIRTY, "sd"),  # 0x8000000, CONFIG_MEM_SOFT_DIRTY only
    (VM_HUGEPAGE, "hg"),  # 0x20000000
    (VM_NOHUGEPAGE, "nh"),  # 0x40000000
    (VM_DROPPABLE, "dp"),  # bit 40
)


def vma_soft_dirty(mm: Mm, start: int, nr: int) -> np.ndarray:
    """PM_SOFT_DIRTY of nr pages from vpn `start` as /proc/PID/pagemap reports it.

    pte_to_pagemap_entry() and pagemap_pte_hole(), fs/proc/task_mmu.c, Linux 6.18:
    a page of a VM_SOFTDIRTY VMA is soft-dirty whatever its PTE says.  Model: the
    PTE's own soft-dirty bit is not tracked; the language has no clear_refs, so
    every VMA keeps the VM_SOFTDIRTY that __mmap_region() gave it, or never had it.
    """
    out = np.zeros(nr, bool)
    for vma in mm.vmas:
        if vma.flags & VM_SOFTDIRTY and vma.start < start + nr and start < vma.end:
            out[max(vma.start, start) - start : min(vma.end, start + nr) - start] = True
    return out


def show_smap_vma_flags(vma: Vma) -> list[str]:
    """show_smap_vma_flags(), fs/proc/task_mmu.c, Linux 6.18: the VMA's VmFlags words, in order."""
    return [name for flag, name in VM_MNEMONICS if flag is None or vma.flags & flag]


def show_vma_header_prot(vma: Vma) -> str:
    """The permissions column of show_vma_header_prefix(), fs/proc/task_mmu.c, Linux 6.18."""
    return (
        ("r" if vma.flags & VM_READ else "-") + ("w" if vma.flags & VM_WRITE else "-") + "-p"
    )


def vmas_of_mapping(mm: Mm, mp: Mapping) -> list[dict[str, object]]:
    """The contract's VMA list of a mapping: each VMA inside it, first and last page, perms, VmFlags."""
    out: list[dict[str, object]] = []
    for vma in mm.vmas:
        if vma.start < mp.start + mp.pages and mp.start < vma.end:
            out.append(
                {
                    "first": vma.start - mp.start,
                    "last": vma.end - 1 - mp.start,
                    "prot": show_vma_header_prot(vma),
                    "flags": show_smap_vma_flags(vma),
                }
            )
    return out
