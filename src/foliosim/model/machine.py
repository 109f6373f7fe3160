"""The whole modelled kernel: one CPU, its per-CPU batches, memory, swap, counters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from foliosim.model.profile import Profile
from foliosim.model.types import (
    AnonVma,
    Memmap,
    Mm,
    PG_anon,
    PG_head,
    PG_large_rmappable,
    PG_tail,
    PG_uptodate,
    PG_zero,
)

Trace = Callable[[int, str, str], None]

# Per-CPU folio batches of mm/swap.c (struct cpu_fbatches) and mm/mlock.c.
BATCHES = ("lru_add", "lru_deactivate", "lru_lazyfree", "lru_activate")
FOLIO_BATCH_SIZE = 31  # include/linux/folio_batch.h (PAGEVEC_SIZE before it)

# The /proc/vmstat events the model counts; `expect vmstat` of any other is unknown.
MODELLED_VMSTAT = (
    "pgactivate",
    "pgdeactivate",
    "pgfault",
    "pgmajfault",
    "pglazyfree",
    "pglazyfreed",
    "pgreuse",
    "pswpin",
    "pswpout",
    "swap_ra",
    "swpin_zero",
    "swpout_zero",
    "thp_deferred_split_page",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_split_page",
    "thp_split_pmd",
    "thp_swpout",
    "thp_swpout_fallback",
    "unevictable_pgs_culled",
    "unevictable_pgs_mlocked",
    "unevictable_pgs_munlocked",
    "unevictable_pgs_rescued",
    "unevictable_pgs_stranded",
)


class Machine:
    """Everything one scenario run changes: the model's `struct pglist_data` and friends."""

    def __init__(self, profile: Profile, trace: Trace | None = None) -> None:
        self.profile = profile
        self.mem = Memmap()
        self.swap = None  # foliosim.model.swap.SwapInfo while a device is on
        self.fbatches: dict[str, list[int]] = {name: [] for name in BATCHES}
        self.mlock_fbatch: list[tuple[int, bool]] = []  # (folio, is munlock)
        self.vmstat: dict[str, int] = defaultdict(int)
        self.mthp_stats: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # /sys/kernel/mm/transparent_hugepage: top-level and per-order `enabled`.
        self.thp_enabled = "madvise"
        self.mthp_enabled: dict[int, str] = {o: "never" for o in range(2, 10)}
        self.mthp_enabled[9] = "inherit"
        # thp_vma_allowable_orders() per VM_HUGEPAGE/VM_NOHUGEPAGE; cleared on a policy change.
        self.thp_orders_cache: dict[int, tuple[int, ...]] = {}
        self.mms: dict[str, Mm] = {}
        self.gup_refs: dict[str, list[int]] = {}
        # Large-folio state kept beside the memmap (struct folio fields of large
        # folios only): _entire_mapcount (PMD mappings) and the deferred split
        # queue with each queued folio's partially_mapped flag.
        self.entire_mapcount: dict[int, int] = {}
        self.pincount: dict[int, int] = {}  # _pincount of large folios (FOLL_PIN)
        self.deferred_split: dict[int, bool] = {}
        self.huge_zero_pfn = (
            -1
        )  # the huge zero folio, allocated on first use  # REF -> pfns referenced (FOLL_GET)
        self._anon_vma_ids = 0
        self.anon_vmas: dict[int, AnonVma] = {}
        self.line = 0  # scenario line being executed, for traces and reports
        self._trace = trace
        self.tracing = trace is not None

    def trace(self, func: str, message: str) -> None:
        if self._trace is not None:
            self._trace(self.line, func, message)

    def count_vm_events(self, item: str, delta: int) -> None:
        """count_vm_events(): bump a /proc/vmstat event counter."""
        self.vmstat[item] += delta

    def vmstat_all(self) -> dict[str, int]:
        """Every modelled /proc/vmstat event, as deltas since the start."""
        return {k: int(self.vmstat.get(k, 0)) for k in MODELLED_VMSTAT}

    def count_mthp_stat(self, order: int, item: str, delta: int = 1) -> None:
        """count_mthp_stat(): bump hugepages-<size>/stats/<item> for a large order."""
        self.mthp_stats[order][item] += delta

    def anon_vma_alloc(self) -> AnonVma:
        """anon_vma_alloc(): a new, empty anon_vma."""
        self._anon_vma_ids += 1
        av = self.anon_vmas[self._anon_vma_ids] = AnonVma(self._anon_vma_ids)
        return av

    def folio_alloc(self, order: int) -> int:
        """A new zeroed anon folio of `order` with one reference (vma_alloc_zeroed_movable_folio)."""
        mem = self.mem
        folio = mem.alloc(1 << order)
        mem.refcount[folio] = 1
        mem.order[folio] = order
        if order:
            # prep_compound_page() + folio_set_large_rmappable().
            mem.flags[folio] = PG_uptodate | PG_head | PG_large_rmappable
            for page in range(folio + 1, folio + (1 << order)):
                mem.flags[page] = PG_tail
        else:
            mem.flags[folio] = PG_uptodate
        return folio

    def mm_get_huge_zero_folio(self) -> int:
        """The huge zero folio (mm_get_huge_zero_folio), allocated once."""
        if self.huge_zero_pfn < 0:
            mem = self.mem
            hz = self.huge_zero_pfn = mem.alloc(512)
            mem.order[hz] = 9
            mem.flags[hz] = PG_zero | PG_head
            for page in range(hz + 1, hz + 512):
                mem.flags[page] = PG_zero | PG_tail
        return self.huge_zero_pfn

    def folio_name(self, folio: int) -> str:
        """How traces name a folio: its scenario home, e.g. 'p0 A 3'."""
        # Model: the linear index plus the mapping that owns that address in any mm.
        index = int(self.mem.index[folio])
        for mm in self.mms.values():
            for mp in mm.mappings.values():
                if mp.start <= index < mp.start + mp.pages:
                    return f"{mm.name} {mp.name} {index - mp.start}"
        return f"pfn {folio}"

    def vpn_name(self, mm: Mm, vpn: int) -> str:
        """How traces name a user page: 'p0 A 3'."""
        for mp in mm.mappings.values():
            if mp.start <= vpn < mp.start + mp.pages:
                return f"{mm.name} {mp.name} {vpn - mp.start}"
        return f"{mm.name} {vpn << 12:#x}"

    def is_anon(self, folio: int) -> bool:
        return bool(self.mem.flags[folio] & PG_anon)
