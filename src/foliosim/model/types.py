"""Kernel state of the model: the memory map, page tables, VMAs, mms.

Per-page state lives in `array.array`s indexed by pfn, like the kernel's
memmap (fast scalar access from Python; numpy views of the same buffers do the
vector work); page tables are arrays of 512 entries per 2M region.  A folio
is named by the pfn of its head page.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

PAGE_SHIFT = 12
PTRS_PER_PTE = 512  # x86-64: one page table maps 2M
HPAGE_PMD_ORDER = 9
ZERO_PFN = 0  # the shared zero page

# struct page / folio flags (model bit numbers, kernel names).  Folio flags
# live on the head page; PG_anon_exclusive is per page.
PG_locked = 1 << 0
PG_referenced = 1 << 1
PG_uptodate = 1 << 2
PG_dirty = 1 << 3
PG_lru = 1 << 4
PG_active = 1 << 5
PG_workingset = 1 << 6
PG_swapbacked = 1 << 7
PG_swapcache = 1 << 8
PG_unevictable = 1 << 9
PG_mlocked = 1 << 10
PG_reclaim = 1 << 11
PG_readahead = PG_reclaim  # one bit, two names, as in the kernel
PG_writeback = 1 << 12
PG_head = 1 << 13
PG_reserved = 1 << 14
PG_anon = 1 << 15  # FOLIO_MAPPING_ANON in folio->mapping
PG_anon_exclusive = 1 << 16  # PG_owner_2 on an anon page
PG_zero = 1 << 17  # is_zero_pfn(): not a page flag, kept here for the memmap dump
PG_tail = 1 << 18
PG_large_rmappable = 1 << 19

# PTE bits (x86-64 meaning; swap entries carry their own software bits).
PTE_PRESENT = 1 << 0
PTE_WRITE = 1 << 1
PTE_DIRTY = 1 << 2
PTE_YOUNG = 1 << 3
PTE_SPECIAL = 1 << 4  # zero-page PTE
PTE_SWAP = 1 << 5  # a swap entry; pfn field holds the swap offset
PTE_SWP_EXCLUSIVE = 1 << 6
PTE_SOFT_DIRTY = 1 << 7
# A device-exclusive entry (make_device_exclusive(), mm/rmap.c): not present,
# the page's pfn kept, still mapped and counted in RSS.  Model encoding:
# PTE_SPECIAL without PTE_PRESENT or PTE_SWAP (unused otherwise).  Only the
# model's Python API makes one: a device driver (HMM) asks for it, no syscall.
PTE_DEVICE_EXCLUSIVE = PTE_SPECIAL
_PTE_KIND = PTE_PRESENT | PTE_SWAP | PTE_SPECIAL


def is_device_exclusive_entry(bits: int) -> bool:
    """is_device_exclusive_entry(), include/linux/swapops.h: a device-exclusive PTE."""
    return bits & _PTE_KIND == PTE_DEVICE_EXCLUSIVE


def pte_maps_page(bits: int) -> bool:
    """The PTE maps a page of a folio: present and not the zero page, or device-exclusive."""
    kind = bits & _PTE_KIND
    return kind == PTE_PRESENT or kind == PTE_DEVICE_EXCLUSIVE


# vm_flags
VM_WRITE = 1 << 0
VM_LOCKED = 1 << 1
VM_HUGEPAGE = 1 << 2
VM_NOHUGEPAGE = 1 << 3
VM_DROPPABLE = 1 << 4
VM_WIPEONFORK = 1 << 5
VM_LOCKONFAULT = 1 << 6
# More vm_flags of include/linux/mm.h the model keeps (bit numbers its own;
# /proc/PID/smaps' VmFlags letters come from task_mmu.VM_MNEMONICS).
VM_DONTCOPY = 1 << 16  # MADV_DONTFORK: dup_mmap() skips the VMA
VM_ACCOUNT = 1 << 17  # a private writable mapping charged to the commit limit
VM_NORESERVE = 1 << 18  # MAP_NORESERVE (MAP_DROPPABLE sets it)
VM_DONTDUMP = 1 << 19  # MADV_DONTDUMP (MAP_DROPPABLE sets it)
VM_SOFTDIRTY = 1 << 20  # every new VMA, with CONFIG_MEM_SOFT_DIRTY (profile mem_soft_dirty)
# mprotect(2) and mmap(2)'s PROT_* (calc_vm_prot_bits(), include/linux/mman.h); bit number the model's.
VM_READ = 1 << 24

# mm counters
MM_ANONPAGES = 0
MM_SWAPENTS = 1


_MEMMAP_FIELDS = {
    # name: (array typecode, numpy dtype, initial value)
    "flags": ("I", np.uint32, 0),
    "refcount": ("i", np.int32, 0),
    "mapcount": ("i", np.int32, 0),  # per page: PTE mappings of it (+ PMD on the head)
    "order": ("b", np.int8, 0),
    "data": ("q", np.int64, 0),  # content token; 0 is all zeroes
    "swap": ("i", np.int32, -1),  # folio->swap while in swap cache
    "anon_vma": ("i", np.int32, 0),  # folio->mapping (anon_vma id)
    "index": ("i", np.int32, 0),  # folio->index (linear page index)
}


class Memmap:
    """The array of struct page: one entry per pfn, grown on demand.

    Fields are array.array (fast scalar access from Python); `view(name)` gives
    a numpy view for vector work.  Views must not outlive a call: the arrays
    cannot grow while a view exists.
    """

    def __init__(self, capacity: int = 1024) -> None:
        for name, (code, _, init) in _MEMMAP_FIELDS.items():
            setattr(self, name, array(code, [init]) * capacity)
        self.flags: array
        self.refcount: array
        self.mapcount: array
        self.order: array
        self.data: array
        self.swap: array
        self.anon_vma: array
        self.index: array
        self.capacity = capacity
        self.nr = 1  # pfns handed out so far; pfn 0 is the zero page
        self.flags[ZERO_PFN] = PG_reserved | PG_zero

    def alloc(self, nr_pages: int) -> int:
        """First pfn of `nr_pages` fresh, zeroed struct pages (never reused).

        A run of 2^order pages starts at a multiple of 2^order, as the buddy
        allocator's do: page_folio() relies on it.
        """
        # Model: pfns are not recycled; freed pages simply stay unreferenced.
        first = self.nr + (-self.nr % nr_pages)
        self.nr = first + nr_pages
        if self.nr > self.capacity:
            self.reserve(max(self.nr, self.capacity + self.capacity // 4))
        return first

    def alloc_order0_run(self, count: int) -> int:
        """alloc(1) `count` times: the first of `count` consecutive pfns (the same growth)."""
        first = self.nr
        self.nr = first + count
        while self.nr > self.capacity:
            self.reserve(max(self.capacity + 1, self.capacity + self.capacity // 4))
        return first

    def reserve(self, capacity: int) -> None:
        """Make room for `capacity` pfns (the backend sizes it from the scenario)."""
        grow = capacity - self.capacity
        if grow <= 0:
            return
        for name, (code, _, init) in _MEMMAP_FIELDS.items():
            getattr(self, name).extend(array(code, [init]) * grow)
        self.capacity = capacity

    def view(self, name: str) -> np.ndarray:
        """A numpy view of one field over every pfn handed out so far."""
        return np.frombuffer(getattr(self, name), _MEMMAP_FIELDS[name][1])[: self.nr]

    def nbytes(self) -> int:
        return sum(getattr(self, n).itemsize * self.capacity for n in _MEMMAP_FIELDS)


class PageTable:
    """One PTE page: 512 entries of (bits, pfn or swap offset)."""

    __slots__ = ("bits", "bits_v", "pfn", "pfn_v")

    def __init__(self) -> None:
        # array.array for scalar access, numpy views (fixed size, so kept) for vectors.
        self.bits = array("B", bytes(PTRS_PER_PTE))
        self.pfn = array("i", bytes(4 * PTRS_PER_PTE))
        self.bits_v = np.frombuffer(self.bits, np.uint8)
        self.pfn_v = np.frombuffer(self.pfn, np.int32)


@dataclass(eq=False)
class AnonVma:
    """struct anon_vma: the VMAs an anonymous folio may be mapped in (rmap)."""

    id: int
    vmas: list[Vma] = field(default_factory=list)  # anon_vma_chain, interval-tree order


@dataclass(eq=False)
class Vma:
    """struct vm_area_struct: [start, end) in virtual page numbers."""

    mm: Mm
    start: int
    end: int
    flags: int
    name: str  # the scenario mapping it belongs to
    anon_vma: AnonVma | None = None  # where new folios of this VMA go
    chain: list[AnonVma] = field(default_factory=list)  # every anon_vma it is linked into
    swap_readahead_info: int = 0  # SWAP_RA_VAL(addr, win, hits), mm/swap_state.c
    # vm_pgoff: for a private anonymous VMA, the page number it was mapped at
    # (do_mmap(), mm/mmap.c); a VMA split off at page `at` gets pgoff + (at - start).
    pgoff: int = -1

    def __post_init__(self) -> None:
        if self.pgoff < 0:
            self.pgoff = self.start

    def contains(self, vpn: int) -> bool:
        return self.start <= vpn < self.end


@dataclass(eq=False)
class Mapping:
    """A scenario mapping: the slot it lives in and its page count."""

    name: str
    start: int  # virtual page number of page 0
    pages: int
    droppable: bool
    # False when its mmap(2) failed: lines still name it, STATE has no such mapping.
    mapped: bool = True


@dataclass(eq=False)
class Mm:
    """struct mm_struct of one scenario process."""

    name: str
    vmas: list[Vma] = field(default_factory=list)  # sorted by start
    pgtables: dict[int, PageTable] = field(default_factory=dict)  # pmd index -> PTE page
    # pmd index -> [bits, pfn] of a huge PMD (a PMD-mapped THP or the huge zero
    # page); a pmd index is in at most one of pgtables and pmds (pmd_none: neither).
    pmds: dict[int, list[int]] = field(default_factory=dict)
    counters: list[int] = field(default_factory=lambda: [0, 0])  # MM_ANONPAGES, MM_SWAPENTS
    mappings: dict[str, Mapping] = field(default_factory=dict)
    next_slot: int = 0
    has_pinned: bool = False  # MMF_HAS_PINNED
    # The task's fault counters (task_struct min_flt/maj_flt; the model's
    # process is its mm): what mm_account_fault() counts for `current`.
    min_flt: int = 0
    maj_flt: int = 0
    # mm->def_flags: vm_flags every new VMA gets (mlockall(MCL_FUTURE)).
    def_flags: int = 0

    def pte_table(self, vpn: int, alloc: bool = False) -> PageTable | None:
        """The PTE page covering vpn (pte_offset_map), allocated if asked (pte_alloc)."""
        t = self.pgtables.get(vpn >> 9)
        if t is None and alloc:
            t = self.pgtables[vpn >> 9] = PageTable()
        return t

    def find_vma(self, vpn: int) -> Vma | None:
        for vma in self.vmas:
            if vma.start <= vpn < vma.end:
                return vma
        return None


class LruSeq:
    """Each folio's place on its lruvec list: pfn -> the sequence number of its last add (0: none).

    The mapping lruvec_add_folio() keeps, stored like the memmap (8 bytes a pfn,
    grown on demand) rather than as a dict entry per folio; reads as a dict would.
    """

    def __init__(self) -> None:
        self.seq = array("q")

    def _grow(self, size: int) -> None:
        if size > len(self.seq):
            self.seq.extend(array("q", bytes(8 * (size - len(self.seq) + len(self.seq) // 4))))

    def __setitem__(self, pfn: int, value: int) -> None:
        self._grow(pfn + 1)
        self.seq[pfn] = value

    def get(self, pfn: int, default: int = 0) -> int:
        return (self.seq[pfn] if pfn < len(self.seq) else 0) or default

    def set_run(self, pfns: np.ndarray, first: int) -> None:
        """seq[pfns[k]] = first + k for each k: consecutive adds."""
        if len(pfns):
            self._grow(int(pfns.max()) + 1)
            np.frombuffer(self.seq, np.int64)[pfns] = np.arange(first, first + len(pfns))


# --- memcg (issue 13) -----------------------------------------------------------------


@dataclass(eq=False)
class MemCgroup:
    """struct mem_cgroup of the scenario's cgroup, with its one lruvec (one node).

    Model: the scenario runs in one cgroup v1 memcg with no children, as the
    kernel backend makes it; every folio the model allocates is charged to it.
    """

    max_pages: int | None = None  # memory.max (memory.limit_in_bytes); None: PAGE_COUNTER_MAX
    swappiness: int = 60  # inherited from the root, vm_swappiness (mem_cgroup_css_alloc())
    observed: bool = False  # STATE has "memcg" (the scenario has a memcg command)
    # lruvec->anon_cost / file_cost (lru_note_cost(), mm/swap.c)
    anon_cost: int = 0
    file_cost: int = 0
    # Order of the lruvec's lists: lruvec_add_folio() puts a folio at the head, so
    # a folio's place is the sequence number of its last add (larger: nearer the head).
    lru_seq: LruSeq = field(default_factory=LruSeq)
    lru_clock: int = 0
    # memcg_stock_pcp of the scenario CPU: pages charged to the counter, not yet used
    # (consume_stock() / refill_stock(), mm/memcontrol.c).
    stock: int = 0
    # Processes the memcg OOM killer chose, in order (mem_cgroup_out_of_memory()).
    oom_kills: list[str] = field(default_factory=list)


# --- end memcg ------------------------------------------------------------------------
