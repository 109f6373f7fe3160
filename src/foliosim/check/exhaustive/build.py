"""Build a configuration directly as model state: the machine a scenario would have led to.

The state is written into the model's own structures (types.py, machine.py)
the way the kernel's paths leave them: folio_alloc() and anon_vma_alloc() of
the machine, the rmap fields folio_add_new_anon_rmap() and fork's
anon_vma_fork() set, one reference per mapping, per swap-cache page and per
GUP reference, deferred_split_folio() for a partially mapped large folio.
tests/check/test_exhaustive.py validates every built state of small bounds
with the validate_* functions of model/checks.py.
"""

from __future__ import annotations

from array import array

import numpy as np

from foliosim.check.exhaustive.space import (
    DEVICE,
    DIRTY,
    PRESENT,
    SOFT_DIRTY,
    SWAP,
    WRITE,
    YOUNG,
    Config,
)
from foliosim.model.huge_memory import deferred_split_folio
from foliosim.model.machine import Machine
from foliosim.model.mm import GUP_PIN_COUNTING_BIAS
from foliosim.model.mmap import SLOT_BASE
from foliosim.model.page_alloc import folio_alloc
from foliosim.model.profile import Profile
from foliosim.model.rmap import anon_vma_alloc
from foliosim.model.swap import SwapInfo
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DEVICE_EXCLUSIVE,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_WRITE,
    PTE_YOUNG,
    PTRS_PER_PTE,
    VM_DROPPABLE,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_READ,
    VM_WIPEONFORK,
    VM_WRITE,
    Mapping,
    Mm,
    PG_anon,
    PG_anon_exclusive,
    PG_dirty,
    PG_lru,
    PG_mlocked,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    Vma,
)
from foliosim.model.vmstat import count_mthp_stat

BASE = SLOT_BASE * PTRS_PER_PTE  # the first mapping slot, 2M aligned
FILLER_BASE = BASE + 8 * PTRS_PER_PTE  # where swapped-out filler pages live
MAPPING = "A"
FILLER = "F"


def token(page: int) -> int:
    """What page `page` of the folio holds (its content token); never zero."""
    return 0xA000 + page


def folio_index(c: Config) -> int:
    """The virtual page number of the folio's first page (folio->index in the model)."""
    nr = c.nr
    if c.cut == "pgtable":
        return BASE + PTRS_PER_PTE - c.split  # pages split.. start the next page table
    if c.pt_end:
        return BASE + PTRS_PER_PTE - nr
    # Inside one page table, naturally aligned, off both of its ends.
    return BASE + (nr if 2 * nr < PTRS_PER_PTE else 0)


def _pte_bits(code: int, exclusive: bool) -> int:
    if code & PRESENT:
        bits = PTE_PRESENT
        if code & DIRTY:
            bits |= PTE_DIRTY
        if code & YOUNG:
            bits |= PTE_YOUNG
        if code & WRITE:
            bits |= PTE_WRITE
    elif code & DEVICE:
        bits = PTE_DEVICE_EXCLUSIVE | (PTE_WRITE if code & WRITE else 0)
    else:
        bits = PTE_SWAP | (PTE_SWP_EXCLUSIVE if exclusive else 0)
    if code & SOFT_DIRTY:
        bits |= PTE_SOFT_DIRTY
    return bits


def swap_layout(c: Config) -> tuple[int, int, int]:
    """(device slots, first slot of the folio's swap cache, filler slots)."""
    nr = c.nr
    if c.swap == "off":
        return 0, -1, 0
    slots = 2 * nr if c.swap == "full" else 4 * nr
    folio_slot = nr if c.state == "swapcache" else -1  # naturally aligned
    # Full: every slot the folio does not own is held by a swapped-out filler page.
    filler = slots - (nr if folio_slot > 0 else 0) if c.swap == "full" else 0
    return slots, folio_slot, filler


def build(c: Config, profile: Profile) -> tuple[Machine, int]:
    """A fresh machine in configuration `c`, and the folio's pfn."""
    m = Machine(profile)
    mem = m.mem
    nr = c.nr
    order = c.order
    index = folio_index(c)
    slots, folio_slot, filler = swap_layout(c)
    mem.reserve(nr * 2 + 16)
    folio = folio_alloc(m, order)
    mem.refcount[folio] = 0  # recounted below: one per mapping and per cache page

    # The VMAs: [index, index + nr), cut at split for a VMA boundary.  A cut
    # without a VM_LOCKED difference is a VM_HUGEPAGE one (madvise hugepage on
    # part of the range), so the two VMAs do not merge.
    flags = VM_READ | VM_WRITE  # PROT_READ | PROT_WRITE, as do_mmap() makes them
    if c.droppable:
        flags |= VM_DROPPABLE | VM_WIPEONFORK
    bounds = (
        [(index, index + c.split), (index + c.split, index + nr)]
        if c.cut == "vma"
        else [(index, index + nr)]
    )
    av0 = anon_vma_alloc(m)
    mms = []
    for p in range(c.nprocs):
        mm = Mm(f"p{p}")
        m.mms[mm.name] = mm
        mm.mappings[MAPPING] = Mapping(MAPPING, index, nr, c.droppable)
        own = av0 if p == 0 else anon_vma_alloc(m)  # anon_vma_fork(): one of its own
        for k, (s, e) in enumerate(bounds):
            vflags = flags
            if p == 0 and c.locked[k]:
                vflags |= VM_LOCKED  # fork clears VM_LOCKED in the child
            if c.cut == "vma" and k == 1 and c.locked[0] == c.locked[1]:
                vflags |= VM_HUGEPAGE
            vma = Vma(mm, s, e, vflags, MAPPING, anon_vma=own)
            vma.chain = [av0] if p == 0 else [av0, own]
            av0.vmas.append(vma)
            if p:
                own.vmas.append(vma)
            mm.vmas.append(vma)
        mms.append(mm)

    # The folio: anon, on its LRU, in the state the configuration names.
    fl = PG_anon | PG_lru
    if c.state != "lazyfree":
        fl |= PG_swapbacked
    if c.state == "swapcache":
        fl |= PG_swapcache
    if c.dirty:
        fl |= PG_dirty
    if c.mlocked:
        fl |= PG_mlocked | PG_unevictable
    mem.flags[folio] |= fl
    mem.anon_vma[folio] = av0.id
    mem.index[folio] = index
    if order:
        count_mthp_stat(m, order, "nr_anon", 1)

    # The PTEs, the mapcount of each page and the references they hold, one
    # part (a run of identical PTEs in every process) at a time.
    refs = 0
    mem.data[folio : folio + nr] = array("q", range(token(0), token(nr)))
    parts = c.parts()
    for j, (first, end) in enumerate(parts):
        codes = [p[j] for p in c.ptes]
        users = sum(1 for x in codes if x)
        mapped = sum(1 for x in codes if x & (PRESENT | DEVICE))  # pte_maps_page()
        n = end - first
        mem.mapcount[folio + first : folio + end] = array("i", [mapped]) * n
        refs += mapped * n
        if mapped == 1 and users == 1 and any(x & WRITE for x in codes):
            for page in range(folio + first, folio + end):
                mem.flags[page] |= PG_anon_exclusive
        vpn = index + first
        i = vpn & (PTRS_PER_PTE - 1)
        for p, code in enumerate(codes):
            if not code:
                continue
            mm = mms[p]
            t = mm.pte_table(vpn, alloc=True)  # a part never crosses a page table
            t.bits[i : i + n] = array("B", [_pte_bits(code, exclusive=users == 1)]) * n
            if code & SWAP:
                t.pfn[i : i + n] = array("i", range(folio_slot + first, folio_slot + end))
                mm.counters[MM_SWAPENTS] += n
            else:
                t.pfn[i : i + n] = array("i", range(folio + first, folio + end))
                mm.counters[MM_ANONPAGES] += n

    # The swap device: the folio's slots in the swap cache, filler pages.
    if slots:
        si = m.swap = SwapInfo(slots + 1)
        used = 0
        if folio_slot > 0:
            for k in range(nr):
                si.cache[folio_slot + k] = folio + k
            for j, (first, end) in enumerate(parts):
                swapped = sum(1 for p in c.ptes if p[j] & SWAP)
                si.swap_map[folio_slot + first : folio_slot + end] = array("b", [swapped]) * (
                    end - first
                )
            if not c.dirty:
                # Written back and clean again: the device holds the same data.
                si.data[folio_slot : folio_slot + nr] = mem.data[folio : folio + nr]
            mem.swap[folio] = folio_slot
            refs += nr
            used += nr
        if filler:
            _fill_swap(m, mms[0], si, folio_slot, nr)
            used += filler
        si.inuse_pages = used
        si.next = 1

    # Extra references: GUP'd through p0's or any mapper's PTE of the first page.
    for n, kind in enumerate(c.refs):
        ref = f"R{n}"
        pfn = folio
        if kind == "get":
            m.gup_refs[ref] = [pfn]
            refs += 1
        elif order:
            # try_grab_folio(FOLL_PIN) on a large folio: one reference and _pincount.
            m.pincount[folio] = m.pincount.get(folio, 0) + 1
            m.gup_refs[ref] = [pfn]
            refs += 1
            mms[0].has_pinned = True
        else:
            # A small folio takes GUP_PIN_COUNTING_BIAS references.  Model: the
            # held-reference list names the page once per reference, which is
            # what validate_folio_refcount() counts.
            m.gup_refs[ref] = [pfn] * GUP_PIN_COUNTING_BIAS
            refs += GUP_PIN_COUNTING_BIAS
            mms[0].has_pinned = True
    mem.refcount[folio] = refs

    # A large folio with some pages unmapped and some mapped is partially
    # mapped: folio_remove_rmap_ptes() queued it for deferred split.
    if order and c.state != "swapcache":
        mc = mem.mapcount[folio : folio + nr]
        if any(mc) and not all(mc):
            deferred_split_folio(m, folio, partially_mapped=True)
    return m, folio


def _fill_swap(m: Machine, mm: Mm, si: SwapInfo, folio_slot: int, nr: int) -> None:
    # Swapped-out pages of another mapping of p0 hold every slot the folio does not.
    free = np.arange(1, si.max)
    if folio_slot > 0:
        free = free[(free < folio_slot) | (free >= folio_slot + nr)]
    n = len(free)
    vma = Vma(mm, FILLER_BASE, FILLER_BASE + n, VM_READ | VM_WRITE, FILLER)
    mm.vmas.append(vma)
    mm.mappings[FILLER] = Mapping(FILLER, FILLER_BASE, n, False)
    t = mm.pte_table(FILLER_BASE, alloc=True)  # at most 512 slots: one page table
    t.bits_v[:n] = PTE_SWAP | PTE_SWP_EXCLUSIVE
    t.pfn_v[:n] = free
    si.swap_map_v[free] = 1
    si.data_v[free] = 0xF000 + np.arange(n)
    mm.counters[MM_SWAPENTS] += n
