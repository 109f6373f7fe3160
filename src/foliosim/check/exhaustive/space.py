"""The bounded space of one anonymous folio under reclaim, enumerated exhaustively.

A configuration is a kernel state of one folio just before reclaim meets it:
its order and flags, the processes that map it and each PTE's state and bits,
where its mapping lies (inside one page table, ending at a page-table
boundary, straddling one, cut by a VMA boundary), its extra references, the
VMA flags, the swap device, and which reclaim path reaches it.  Every
combination within the bounds is generated, minus the combinations Linux
cannot reach (each constraint below says why); nothing is sampled.

The bounds (Bounds) are the checker's scope: --max-order, --max-procs and
--max-refs, and the page layout: the folio's pages are cut at most once
(a change of PTE pattern, a page-table boundary or a VMA boundary, all at the
same page), at one of the points Bounds.split_points() lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

# A PTE of one process at one page of the folio, as a small int:
#   0: pte_none;  SWAP | sd: a swap entry for that page's slot;
#   PRESENT | bits: maps that page of the folio;  DEVICE | WRITE | sd: a
#   device-exclusive entry of that page.
PTE_NONE = 0
DEVICE = 0x20  # a device-exclusive entry (HMM's make_device_exclusive()) of that page
SWAP = 0x40
PRESENT = 0x80
DIRTY, WRITE, SOFT_DIRTY, YOUNG = 1, 2, 4, 8

FOLIO_STATES = ("lazyfree", "swapbacked", "swapcache")  # the folio's LRU/swap life stage
REF_KINDS = ("get", "pin")  # FOLL_GET (vmsplice) or FOLL_PIN (io_uring, RDMA, O_DIRECT)
SWAP_STATES = ("off", "free", "full")
PATHS = ("pageout", "lru")
CUTS = ("none", "pattern", "pgtable", "vma")


def pte_present(code: int) -> bool:
    return bool(code & PRESENT)


def pte_maps_page(code: int) -> bool:
    """A present PTE or a device-exclusive entry: a mapping of the page (mapcount, RSS)."""
    return bool(code & (PRESENT | DEVICE))


def pte_swap(code: int) -> bool:
    return bool(code & SWAP)


@dataclass(frozen=True)
class Bounds:
    """The scope of an exhaustive run."""

    max_order: int = 4
    max_procs: int = 2
    max_refs: int = 1
    all_splits: bool = False  # every cut point, not only the middle
    max_shared_order: int = 2  # the largest order enumerated with several processes

    def procs(self, order: int) -> range:
        """Process counts enumerated at `order`."""
        return range(1, (self.max_procs if order <= self.max_shared_order else 1) + 1)

    def orders(self) -> list[int]:
        # Anonymous folios have no order 1 (mTHP sizes start at 16K, order 2).
        return [0] + list(range(2, self.max_order + 1))

    def split_points(self, order: int) -> list[int]:
        """Where a folio of `order` may be cut: the first page of its upper part."""
        nr = 1 << order
        if nr == 1:
            return []
        if self.all_splits:
            return list(range(1, nr))
        # Bound: the middle (--all-splits for every page).
        return [nr // 2]

    def ref_sets(self) -> list[tuple[str, ...]]:
        """Extra references: 0 to max_refs, each a GUP get or pin (as a multiset)."""
        out: list[tuple[str, ...]] = [()]
        for n in range(1, self.max_refs + 1):
            out.extend(tuple(r) for r in _multisets(REF_KINDS, n))
        return out


def _multisets(items: tuple[str, ...], n: int) -> Iterator[tuple[str, ...]]:
    if n == 0:
        yield ()
        return
    for i, x in enumerate(items):
        for rest in _multisets(items[i:], n - 1):
            yield (x, *rest)


@dataclass(frozen=True)
class Config:
    """One kernel state of one folio just before reclaim."""

    order: int
    cut: str  # "none" | "pattern" | "pgtable" | "vma": what cuts the folio at `split`
    split: int  # first page of the upper part (0: not cut)
    pt_end: bool  # the folio's last page is the last entry of its page table
    ptes: tuple[tuple[int, ...], ...]  # per process, per part (1 or 2): PTE code
    droppable: bool
    state: str  # FOLIO_STATES
    dirty: bool  # PG_dirty
    mlocked: bool  # PG_mlocked (and PG_unevictable)
    locked: tuple[bool, ...]  # VM_LOCKED of p0's VMA(s), lower part first
    refs: tuple[str, ...]
    swap: str
    path: str

    @property
    def nr(self) -> int:
        return 1 << self.order

    @property
    def nprocs(self) -> int:
        return len(self.ptes)

    def parts(self) -> list[tuple[int, int]]:
        """The folio's parts as [first, end) page ranges."""
        return [(0, self.split), (self.split, self.nr)] if self.split else [(0, self.nr)]

    def page_pte(self, proc: int, page: int) -> int:
        part = 1 if self.split and page >= self.split else 0
        return self.ptes[proc][part]

    def size(self) -> tuple[int, ...]:
        """Sort key of minimality: order, processes, pages cut, bits, refs, the rest."""
        bits = sum((c & 0x0F).bit_count() for p in self.ptes for c in p if c & PRESENT)
        devices = sum(1 for p in self.ptes for c in p if c & DEVICE)
        mapped = sum(1 for p in self.ptes for c in p if c)
        return (
            self.order,
            self.nprocs,
            CUTS.index(self.cut),
            mapped,
            devices,
            bits,
            len(self.refs),
            FOLIO_STATES.index(self.state),
            int(self.dirty),
            int(self.droppable),
            int(self.mlocked),
            sum(self.locked),
            SWAP_STATES.index(self.swap),
            PATHS.index(self.path),
        )


# --- PTE patterns ----------------------------------------------------------------


def _present_code(alone: bool, dirty: bool) -> int:
    """A present PTE: writable exactly where the process alone maps the page.

    A writable anon PTE implies PageAnonExclusive, so no other mapping or swap
    entry of that page can exist (do_wp_page(), mm/memory.c); a page mapped by
    several processes is read-only in all of them (__copy_present_ptes()).
    A store sets dirty and young together and MADV_FREE clears both
    (clear_young_dirty_ptes()), so young follows dirty.
    """
    code = PRESENT
    if dirty:
        code |= DIRTY | YOUNG
    if alone:
        code |= WRITE
    return code


def _part_patterns(nprocs: int, swap_ok: bool) -> list[tuple[int, ...]]:
    """Every assignment of PTEs of nprocs processes to the pages of one part."""
    out = []
    states = ["none", "dirty", "clean"] + (["swap"] if swap_ok else [])
    # Bound: device-exclusive entries with one process (a driver's, through
    # HMM); make_device_exclusive() takes the page with FOLL_WRITE, so it is
    # exclusive and the entry keeps the write bit.
    if nprocs == 1:
        states.append("device")
    for kinds in product(states, repeat=nprocs):
        users = sum(k != "none" for k in kinds)
        codes = []
        for k in kinds:
            if k == "none":
                codes.append(PTE_NONE)
            elif k == "swap":
                codes.append(SWAP)
            elif k == "device":
                codes.append(DEVICE | WRITE)
            else:
                codes.append(_present_code(alone=users == 1, dirty=k == "dirty"))
        out.append(tuple(codes))
    return out


def _with_soft_dirty(ptes: tuple[tuple[int, ...], ...]):
    """Every PTE soft-dirty, or none (bound: one choice for the whole folio).

    Soft-dirty is carried, never read, by reclaim: into the swap PTE
    (pte_swp_mksoft_dirty()) and back by a restore; one choice shows whether a
    variant carries it.
    """
    yield ptes
    yield tuple(tuple(c | SOFT_DIRTY if c else c for c in parts) for parts in ptes)


def _patterns(nprocs: int, nparts: int, swap_ok: bool, differ: bool):
    # Bound: soft-dirty is enumerated for an uncut folio of one process.
    """Per process, per part PTE codes; every process maps or swaps some page."""
    per_part = _part_patterns(nprocs, swap_ok)
    for parts in product(per_part, repeat=nparts):
        ptes = tuple(tuple(parts[j][i] for j in range(nparts)) for i in range(nprocs))
        # A process that holds nothing of the folio is not part of the state.
        if any(not any(p) for p in ptes):
            continue
        if differ and all(p[0] == p[1] for p in ptes):
            continue  # the same as the folio not cut
        if nprocs == 1 and nparts == 1:
            yield from _with_soft_dirty(ptes)
        else:
            yield ptes


# --- the whole space ---------------------------------------------------------------


def _geometries(b: Bounds, order: int):
    """(cut, split, pt_end) of a folio of `order`."""
    yield "none", 0, False
    if order == 0:
        return
    yield "none", 0, True
    for s in b.split_points(order):
        yield "pattern", s, False
        yield "pgtable", s, False
        yield "vma", s, False


def enumerate_configs(b: Bounds) -> Iterator[Config]:
    """Every configuration within `b`, smallest first (order, then processes)."""
    for order in b.orders():
        for nprocs in b.procs(order):
            yield from configs_of(b, order, nprocs)


def blocks(b: Bounds) -> list[tuple[int, int, str, int, bool]]:
    """The space cut into independent blocks (order, procs, geometry), for --jobs."""
    return [
        (order, nprocs, cut, split, pt_end)
        for order in b.orders()
        for nprocs in b.procs(order)
        for cut, split, pt_end in _geometries(b, order)
    ]


def configs_of(b: Bounds, order: int, nprocs: int) -> Iterator[Config]:
    for cut, split, pt_end in _geometries(b, order):
        yield from configs_of_block(b, (order, nprocs, cut, split, pt_end))


def configs_of_block(b: Bounds, block: tuple[int, int, str, int, bool]) -> Iterator[Config]:
    _order, nprocs, cut, split, _pt_end = block
    nparts = 2 if split else 1
    # Bound: with several processes, at most one extra reference.
    refsets = b.ref_sets() if nprocs == 1 else [r for r in b.ref_sets() if len(r) <= 1]
    for droppable in (False, True):
        # MAP_DROPPABLE is VM_WIPEONFORK: a child never maps a droppable folio.
        if droppable and nprocs > 1:
            continue
        for state in FOLIO_STATES:
            # A droppable folio is never swap-backed (9651fcedf7b9, v6.11): it
            # lives on the file LRU like a lazyfree one.
            if droppable and state != "lazyfree":
                continue
            swapcache = state == "swapcache"
            for ptes in _patterns(nprocs, nparts, swapcache, differ=cut == "pattern"):
                if not any(pte_maps_page(c) for p in ptes for c in p) and not swapcache:
                    continue  # unmapped and out of the swap cache: already freed
                yield from _rest(b, block, ptes, droppable, state, refsets)


def _lock_choices(cut: str) -> list[tuple[bool, ...]]:
    if cut == "vma":
        return [(False, False), (True, False), (False, True), (True, True)]
    return [(False,), (True,)]


def _rest(b: Bounds, block, ptes, droppable: bool, state: str, refsets) -> Iterator[Config]:
    # Bound: with several processes, reclaim from the LRU only.  p0's
    # MADV_PAGEOUT leaves a folio other processes map alone
    # (madvise_cold_or_pageout_pte_range(): folio_mapcount() != nr, or
    # folio_maybe_mapped_shared() for a partly covered one).
    order, _nprocs, cut, split, pt_end = block
    swapcache = state == "swapcache"
    for dirty in (False, True):
        for locked in _lock_choices(cut):
            # mlock_fixup() never sets VM_LOCKED on a droppable VMA (v6.11).
            if droppable and any(locked):
                continue
            # PG_mlocked needs a VM_LOCKED mapping of the folio in p0 (the
            # model's mlock_count is one mapping; fork clears VM_LOCKED).
            p0_locked = any(
                locked[k if cut == "vma" else 0] and pte_maps_page(c) for k, c in enumerate(ptes[0])
            )
            for mlocked in (False, True) if p0_locked else (False,):
                for refs in refsets:
                    for swap in ("free", "full") if swapcache else SWAP_STATES:
                        for path in PATHS if len(ptes) == 1 else ("lru",):
                            # shrink_inactive_list() never sees an unevictable folio.
                            if mlocked and path == "lru":
                                continue
                            yield Config(
                                order,
                                cut,
                                split,
                                pt_end,
                                ptes,
                                droppable,
                                state,
                                dirty,
                                mlocked,
                                locked,
                                refs,
                                swap,
                                path,
                            )


def count_configs(b: Bounds) -> int:
    """How many configurations `b` holds (by enumeration)."""
    return sum(1 for _ in enumerate_configs(b))
