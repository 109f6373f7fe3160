"""Build model states for the unit tests through the model's own kernel functions.

A `Sim` is one Machine with process p0: mappings come from do_mmap(), folios
from handle_mm_fault(), LRU states from the mm/swap.c and mm/mlock.c entry
points, swap from SwapInfo (swapon of a zram device).  The only direct stores
are what user space or the MMU does (a page's content and the PTE's
young/dirty bits on a store), as the model backend's user_write() does them.
"""

from __future__ import annotations

from foliosim.model import checks, fork, gup, lru, madvise, mlock, mmap
from foliosim.model.machine import Machine
from foliosim.model.memory import handle_mm_fault
from foliosim.model.page_flags import page_folio
from foliosim.model.profile import get_profile
from foliosim.model.swap import SwapInfo
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_WRITE,
    PTE_YOUNG,
    VM_LOCKED,
    Mm,
    PageTable,
    Vma,
)

ORDER_OF_KB = {16: 2, 32: 3, 64: 4}


class Sim:
    """One modelled machine with one process, p0."""

    def __init__(self, swap_pages: int | None = None, mthp_kb: int | None = None) -> None:
        self.m = Machine(get_profile("linux-6.18"))
        self.mm = self.m.mms["p0"] = Mm("p0")
        self.tokens = 0
        self.pinned: list[int] = []  # pages pinned by pin(), until unpin()
        if swap_pages is not None:
            self.m.swap = SwapInfo(swap_pages)  # swapon of a zram device
        if mthp_kb is not None:
            # echo always > /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled
            self.m.mthp_enabled[ORDER_OF_KB[mthp_kb]] = "always"
            self.m.thp_orders_cache.clear()

    # -- system calls and user accesses ------------------------------------------------
    def mmap(self, name: str, pages: int, droppable: bool = False) -> Vma:
        """mmap(MAP_PRIVATE | MAP_ANONYMOUS) of `pages` pages; the VMA created."""
        mp = mmap.do_mmap(self.m, self.mm, name, pages, droppable, 0)
        return self.mm.find_vma(mp.start)

    def vma(self, name: str) -> Vma:
        return self.mm.find_vma(self.mm.mappings[name].start)

    def write(self, name: str, *idx: int, zero: bool = False) -> None:
        """A store to each page: a write fault where the PTE forbids it, then the store."""
        mp = self.mm.mappings[name]
        for k in idx:
            vpn = mp.start + k
            t = self.mm.pte_table(vpn)
            if t is None or not t.bits[vpn & 511] & PTE_WRITE:
                handle_mm_fault(self.m, self.mm.find_vma(vpn), vpn, write=True)
                t = self.mm.pte_table(vpn)
            t.bits[vpn & 511] |= PTE_DIRTY | PTE_YOUNG  # what the MMU sets on a store
            self.tokens += 1
            self.m.mem.data[t.pfn[vpn & 511]] = 0 if zero else self.tokens

    def read(self, name: str, *idx: int) -> None:
        """A load from each page: a read fault where nothing is mapped."""
        mp = self.mm.mappings[name]
        for k in idx:
            vpn = mp.start + k
            t = self.mm.pte_table(vpn)
            if t is None or not t.bits[vpn & 511] & PTE_PRESENT:
                handle_mm_fault(self.m, self.mm.find_vma(vpn), vpn, write=False)
                t = self.mm.pte_table(vpn)
            t.bits[vpn & 511] |= PTE_YOUNG

    def madvise(self, name: str, first: int, last: int, advice: str) -> None:
        """madvise(2) of pages first..last of the mapping (SyscallError on failure)."""
        start = self.mm.mappings[name].start
        madvise.do_madvise(self.m, self.mm, start + first, start + last + 1, advice)

    def mlock(self, name: str) -> None:
        """mlock(2) of the whole mapping: mlock_fixup() -> mlock_vma_pages_range()."""
        vma = self.vma(name)
        lru.lru_add_drain_all(self.m)
        mlock.mlock_vma_pages_range(self.m, vma, vma.start, vma.end, vma.flags | VM_LOCKED)

    def fork(self, child: str = "p1") -> Mm:
        fork.dup_mmap(self.m, self.mm, child)
        return self.m.mms[child]

    def pin(self, name: str, k: int) -> list[int]:
        """pin_user_pages_remote(FOLL_WRITE) of one page (as process_vm_writev does)."""
        vpn = self.mm.mappings[name].start + k
        pages = gup.pin_user_pages_remote(self.m, self.mm, vpn, vpn + 1)
        self.pinned += pages
        return pages

    def unpin(self) -> None:
        """unpin_user_pages_dirty_lock() of every page pin() pinned."""
        gup.unpin_user_pages_dirty_lock(self.m, self.pinned)
        self.pinned = []

    def drain(self) -> None:
        lru.lru_add_drain(self.m)

    # -- looking at the state -------------------------------------------------------------
    def table(self, name: str, k: int = 0) -> tuple[PageTable, int]:
        vpn = self.mm.mappings[name].start + k
        return self.mm.pte_table(vpn), vpn & 511

    def pte(self, name: str, k: int) -> tuple[int, int]:
        """(bits, pfn or swap offset) of the PTE mapping page k."""
        t, i = self.table(name, k)
        return (int(t.bits[i]), int(t.pfn[i])) if t is not None else (0, 0)

    def folio(self, name: str, k: int) -> int:
        """The folio mapped at page k (its head pfn)."""
        bits, pfn = self.pte(name, k)
        assert bits & PTE_PRESENT, f"page {k} of {name} is not present"
        return page_folio(self.m, pfn)

    def flags(self, folio: int) -> int:
        return int(self.m.mem.flags[folio])

    def refcount(self, folio: int) -> int:
        return int(self.m.mem.refcount[folio])

    def vmstat(self, item: str) -> int:
        return int(self.m.vmstat.get(item, 0))

    def validate(self) -> None:
        """The model's own invariants over the whole state (mapcounts, refcounts, LRU, swap).

        validate_folio_refcount() knows FOLL_GET references only: unpin first.
        """
        checks.validate_all(self.m, None)
