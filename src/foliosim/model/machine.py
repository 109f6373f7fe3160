"""The whole modelled kernel's state: one CPU, its per-CPU batches, memory, swap, counters.

State only: the kernel functions that change it live in the modules of their kernel files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from foliosim.model.profile import Profile
from foliosim.model.types import AnonVma, MemCgroup, Memmap, Mm

Trace = Callable[[int, str, str], None]

# Per-CPU folio batches of mm/swap.c (struct cpu_fbatches) and mm/mlock.c.
BATCHES = ("lru_add", "lru_deactivate", "lru_lazyfree", "lru_activate")
FOLIO_BATCH_SIZE = 31  # include/linux/folio_batch.h (PAGEVEC_SIZE before it)


class Machine:
    """Everything one scenario run changes: the model's `struct pglist_data` and friends."""

    def __init__(self, profile: Profile, trace: Trace | None = None) -> None:
        self.profile = profile
        # cred->cap_effective of every scenario process (model/capability.py); the
        # model backend sets the foliosim process's own.
        self.cap_effective = (1 << 41) - 1
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
        self.gup_refs: dict[str, list[int]] = {}  # REF -> pfns referenced (FOLL_GET)
        # REF -> its io_uring registered buffers (io_uring_rsrc.IoMappedUbuf), one a run.
        self.pins: dict[str, list[Any]] = {}
        # Large-folio state kept beside the memmap (struct folio fields of large
        # folios only): _entire_mapcount (PMD mappings) and the deferred split
        # queue with each queued folio's partially_mapped flag.
        self.entire_mapcount: dict[int, int] = {}
        self.pincount: dict[int, int] = {}  # _pincount of large folios (FOLL_PIN)
        self.deferred_split: dict[int, bool] = {}
        self.huge_zero_pfn = -1  # the huge zero folio, allocated on first use
        self._anon_vma_ids = 0
        self.anon_vmas: dict[int, AnonVma] = {}
        # The task whose system call or access runs now (`current`): mm_account_fault()
        # charges its faults.  None: a task outside the scenario (the poke helper).
        self.current: str | None = None
        self.memcg = MemCgroup()  # memcg (issue 13): the scenario's memory cgroup and lruvec
        self.line = 0  # scenario line being executed, for traces and reports
        self._trace = trace
        self.tracing = trace is not None

    def trace(self, func: str, message: str) -> None:
        """Report entering kernel function `func` to the `--trace` sink, if any."""
        if self._trace is not None:
            self._trace(self.line, func, message)
