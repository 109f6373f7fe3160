"""Invariants of the model, checked after every command in tests and `--check` mode.

Each validate_* raises InvariantError naming the object and both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foliosim.model.errors import InvariantError
from foliosim.model.machine import Machine
from foliosim.model.mm import GUP_PIN_COUNTING_BIAS
from foliosim.model.page_flags import page_folio
from foliosim.model.task_mmu import mapping_ptes
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    ZERO_PFN,
    PG_lru,
    PG_swapbacked,
    PG_swapcache,
    PG_zero,
)


def _maps_page(bits: np.ndarray) -> np.ndarray:
    # pte_maps_page() over an array: present non-zero-page PTEs and device-exclusive entries.
    kind = bits & (PTE_PRESENT | PTE_SWAP | PTE_SPECIAL)
    return (kind == PTE_PRESENT) | (kind == PTE_SPECIAL)


def _all_ptes(m: Machine):
    for mm in m.mms.values():
        for t in mm.pgtables.values():
            yield mm, t


def validate_folio_mapcount(m: Machine) -> np.ndarray:
    """Each page's mapcount equals the PTEs that map it; returns the PTE counts."""
    n = m.mem.nr
    counts = np.zeros(n, np.int64)
    for _, t in _all_ptes(m):
        counts += np.bincount(t.pfn_v[_maps_page(t.bits_v)], minlength=n)[:n]
    bad = np.nonzero(counts[1:] != m.mem.view("mapcount")[1:n])[0]
    if bad.size:
        p = int(bad[0]) + 1
        raise InvariantError(
            f"validate_folio_mapcount: page pfn {p} ({folio_name(m, p)}): "
            f"mapcount {int(m.mem.mapcount[p])}, but {int(counts[p])} PTEs map it"
        )
    pmds: dict[int, int] = {}
    for mm in m.mms.values():
        for _bits, pfn in mm.pmds.values():
            if pfn != m.huge_zero_pfn:
                pmds[pfn] = pmds.get(pfn, 0) + 1
    if pmds != m.entire_mapcount:
        raise InvariantError(
            f"validate_folio_mapcount: entire mapcounts {m.entire_mapcount}, but PMDs map {pmds}"
        )
    for f, c in pmds.items():
        counts[f] += c  # one reference per PMD, on the head
    return counts


def validate_folio_refcount(m: Machine, ptes: np.ndarray) -> None:
    """refcount = mappings + swap cache + per-CPU batches + GUP references and pins."""
    mem = m.mem
    n = mem.nr
    expected = np.zeros(n, np.int64)
    order = mem.view("order").astype(np.int64)
    heads = np.nonzero(mem.view("refcount") != 0)[0]
    for h in heads:
        nr = 1 << int(order[h])
        expected[h] = int(ptes[h : h + nr].sum())
        if mem.flags[h] & PG_swapcache:
            expected[h] += nr
    for batch in m.fbatches.values():
        for f in batch:
            expected[f] += 1
    for f, _ in m.mlock_fbatch:
        expected[f] += 1
    for pages in m.gup_refs.values():
        for p in pages:
            if not mem.flags[p] & PG_zero:
                expected[page_folio(m, p)] += 1
    for bufs in m.pins.values():  # long-term pins: one pin per bvec entry
        for imu in bufs:
            for p in imu.bvec:
                if not mem.flags[p] & PG_zero:
                    f = page_folio(m, p)
                    expected[f] += 1 if mem.order[f] else GUP_PIN_COUNTING_BIAS
    expected[ZERO_PFN] = mem.refcount[ZERO_PFN]
    bad = np.nonzero(expected != mem.view("refcount"))[0]
    if bad.size:
        f = int(bad[0])
        raise InvariantError(
            f"validate_folio_refcount: folio pfn {f} ({folio_name(m, f)}): "
            f"refcount {int(mem.refcount[f])}, but mappings, swap cache, "
            f"batches and GUP account for {int(expected[f])}"
        )


def validate_folio_lru(m: Machine) -> None:
    """Between commands a live folio is on an LRU, or waits in lru_add (or mlock) to get there."""
    mem = m.mem
    arriving = set(m.fbatches["lru_add"]) | {f for f, _ in m.mlock_fbatch}
    for f in np.nonzero(mem.view("refcount")[1:] > 0)[0] + 1:
        f = int(f)
        on_lru = bool(mem.flags[f] & PG_lru)
        if f in m.fbatches["lru_add"] and on_lru:
            raise InvariantError(
                f"validate_folio_lru: folio pfn {f} ({folio_name(m, f)}): "
                "PG_lru set while queued in lru_add"
            )
        if not on_lru and f not in arriving:
            raise InvariantError(
                f"validate_folio_lru: folio pfn {f} ({folio_name(m, f)}): "
                "on no LRU and in no batch that puts it on one"
            )


def validate_mm_counters(m: Machine) -> None:
    """MM_ANONPAGES equals present anon PTEs; MM_SWAPENTS equals swap PTEs."""
    for mm in m.mms.values():
        anon = swap = 0
        for t in mm.pgtables.values():
            anon += int(_maps_page(t.bits_v).sum())
            swap += int(((t.bits_v & PTE_SWAP) != 0).sum())
        anon += 512 * sum(1 for _b, pfn in mm.pmds.values() if pfn != m.huge_zero_pfn)
        if set(mm.pmds) & set(mm.pgtables):
            raise InvariantError(f"validate_mm_counters: {mm.name}: a PMD is both huge and a table")
        if anon != mm.counters[MM_ANONPAGES] or swap != mm.counters[MM_SWAPENTS]:
            raise InvariantError(
                f"validate_mm_counters: {mm.name}: MM_ANONPAGES {mm.counters[MM_ANONPAGES]} "
                f"MM_SWAPENTS {mm.counters[MM_SWAPENTS]}, but page tables hold {anon} anon and "
                f"{swap} swap PTEs"
            )


def validate_swap(m: Machine) -> None:
    """Each slot's swap count equals the swap PTEs naming it; the swap cache agrees."""
    si = m.swap
    if si is None:
        for _, t in _all_ptes(m):
            if (t.bits_v & PTE_SWAP).any():
                raise InvariantError("validate_swap: swap PTEs but no swap device")
        return
    refs = np.zeros(si.max, np.int64)
    for _, t in _all_ptes(m):
        sw = (t.bits_v & PTE_SWAP).astype(bool)
        refs += np.bincount(t.pfn_v[sw], minlength=si.max)[: si.max]
    bad = np.nonzero(refs[1:] != si.swap_map_v[1:])[0]
    if bad.size:
        o = int(bad[0]) + 1
        raise InvariantError(
            f"validate_swap: slot {o}: swap count {int(si.swap_map[o])}, but "
            f"{int(refs[o])} swap PTEs name it"
        )
    for o, f in sorted(si.cache.items()):
        # The cache names each slot's page; a large folio's flags and swap are its head's.
        head = page_folio(m, f)
        if not m.mem.flags[head] & PG_swapcache or int(m.mem.swap[head]) + f - head != int(o):
            raise InvariantError(
                f"validate_swap: slot {int(o)} caches pfn {f}, whose folio->swap "
                f"is {int(m.mem.swap[head])} (page {f - head} of the folio)"
            )
        if not m.mem.flags[head] & PG_swapbacked:
            raise InvariantError(f"validate_swap: slot {int(o)}: cached folio not swapbacked")
    used = si.swap_map_v > 0
    used[list(si.cache)] = True
    inuse = int(used[1:].sum())
    if inuse != si.inuse_pages:
        raise InvariantError(
            f"validate_swap: inuse_pages {si.inuse_pages}, but {inuse} slots are used"
        )


@dataclass
class _ShadowMap:
    content: np.ndarray  # what the page must hold (0 = zeroes)
    may_lose: np.ndarray  # Linux may replace it by zeroes (MADV_FREE'd, droppable)
    droppable: bool
    # Pages a fork child does not get: VM_WIPEONFORK (zeroes, in a VMA of its own)
    # and VM_DONTCOPY (no VMA), set by madvise.
    wipe: np.ndarray | None = None
    dontcopy: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.content)
        if self.wipe is None:
            self.wipe = np.full(n, self.droppable)
        if self.dontcopy is None:
            self.dontcopy = np.zeros(n, bool)


@dataclass
class Shadow:
    """What user space stored where: the reference for validate_no_data_loss."""

    procs: dict[str, dict[str, _ShadowMap]] = field(default_factory=lambda: {"p0": {}})

    def mmap(self, proc: str, name: str, pages: int, droppable: bool) -> None:
        self.procs[proc][name] = _ShadowMap(
            np.zeros(pages, np.int64), np.full(pages, droppable), droppable
        )

    def munmap(self, proc: str, name: str) -> None:
        del self.procs[proc][name]

    def munmap_range(self, proc: str, name: str, first: int, end: int) -> None:
        # A hole reads back as nothing; what was there is gone.
        sm = self.procs[proc][name]
        sm.content[first:end] = 0
        sm.may_lose[first:end] = True

    def mremap(self, proc: str, name: str, pages: int) -> None:
        # The pages keep their content; a grown tail starts zero, a cut one goes.
        sm = self.procs[proc][name]
        n = min(pages, len(sm.content))
        content = np.zeros(pages, np.int64)
        content[:n] = sm.content[:n]
        may_lose = np.full(pages, sm.droppable)
        may_lose[:n] = sm.may_lose[:n]
        self.procs[proc][name] = _ShadowMap(content, may_lose, sm.droppable)

    def write(self, proc: str, name: str, first: int, end: int, tokens: list[int]) -> None:
        sm = self.procs[proc][name]
        sm.content[first:end] = tokens
        sm.may_lose[first:end] = sm.droppable

    def may_drop(self, proc: str, name: str, first: int, end: int, advice: str) -> None:
        """Before the call: what it may zero even if it fails part-way."""
        if advice in ("free", "dontneed"):
            self.procs[proc][name].may_lose[first:end] = True
        elif advice in ("wipeonfork", "dontfork"):
            # madvise_walk_vmas() sets the flag on the VMAs it meets before it fails
            # (ENOMEM at a hole): a child forked later may get no copy of those pages.
            self.procs[proc][name].may_lose[first:end] = True

    def madvise(self, proc: str, name: str, first: int, end: int, advice: str) -> None:
        sm = self.procs[proc][name]
        if advice == "free":
            sm.may_lose[first:end] = True
        elif advice == "dontneed":
            sm.content[first:end] = 0
            sm.may_lose[first:end] = sm.droppable
        elif advice in ("wipeonfork", "keeponfork"):
            sm.wipe[first:end] = advice == "wipeonfork" or sm.droppable
        elif advice in ("dontfork", "dofork"):
            sm.dontcopy[first:end] = advice == "dontfork"

    def fork(self, parent: str, child: str) -> None:
        # dup_mmap(): a VM_WIPEONFORK page reads zero in the child, and keeps the
        # flag; a VM_DONTCOPY page has no VMA there (nothing to read).
        self.procs[child] = {
            n: _ShadowMap(
                np.where(s.wipe | s.dontcopy, 0, s.content),
                s.may_lose.copy(),
                s.droppable,
                s.wipe.copy(),
                np.zeros_like(s.dontcopy),
            )
            for n, s in self.procs[parent].items()
        }

    def exit(self, proc: str) -> None:
        del self.procs[proc]


def validate_no_data_loss(m: Machine, shadow: Shadow) -> None:
    """Every page holds what was stored there, or zeroes where Linux may drop it."""

    si = m.swap
    for pname, maps in shadow.procs.items():
        mm = m.mms[pname]
        for name, sm in maps.items():
            mp = mm.mappings[name]
            bits, pfn = mapping_ptes(mm, mp.start, mp.pages)
            actual = np.zeros(mp.pages, np.int64)
            present = (bits & PTE_PRESENT).astype(bool) | _maps_page(bits)
            actual[present] = m.mem.view("data")[pfn[present]]
            for k in np.nonzero((bits & PTE_SWAP).astype(bool))[0]:
                o = int(pfn[k])
                cached = int(si.cache[o])
                actual[k] = (
                    m.mem.data[cached] if cached >= 0 else 0 if si.zeromap[o] else si.data[o]
                )
            bad = np.nonzero((actual != sm.content) & ~(sm.may_lose & (actual == 0)))[0]
            if bad.size:
                k = int(bad[0])
                raise InvariantError(
                    f"validate_no_data_loss: {pname} {name} page {k}: holds token {actual[k]:#x},"
                    f" but {sm.content[k]:#x} was stored and Linux would keep it"
                )


def validate_all(m: Machine, shadow: Shadow | None) -> None:
    """Every invariant; raises InvariantError at the first broken one."""
    ptes = validate_folio_mapcount(m)
    validate_folio_refcount(m, ptes)
    validate_folio_lru(m)
    validate_mm_counters(m)
    validate_swap(m)
    if shadow is not None:
        validate_no_data_loss(m, shadow)
