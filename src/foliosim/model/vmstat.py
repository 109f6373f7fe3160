"""Event counters: /proc/vmstat (include/linux/vmstat.h, mm/vmstat.c) and the mTHP
stats (include/linux/huge_mm.h), Linux 6.18."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foliosim.model.machine import Machine

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
    # memcg reclaim (issue 13): LRU reclaim, mm/vmscan.c
    "pgrefill",
    "pgscan_anon",
    "pgscan_file",
    "pgsteal_anon",
    "pgsteal_file",
    "pgscan_direct",
    "pgsteal_direct",
    "pgscan_kswapd",
    "pgsteal_kswapd",
)


def count_vm_events(m: Machine, item: str, delta: int) -> None:
    """Bump a /proc/vmstat event counter.
    count_vm_events(), include/linux/vmstat.h, Linux 6.18.
    """
    m.vmstat[item] += delta


def count_mthp_stat(m: Machine, order: int, item: str, delta: int = 1) -> None:
    """Bump hugepages-<size>/stats/<item> for a large order.
    count_mthp_stat() / mod_mthp_stat(), include/linux/huge_mm.h, Linux 6.18.
    """
    m.mthp_stats[order][item] += delta


def vmstat_all(m: Machine) -> dict[str, int]:
    """Every modelled /proc/vmstat event, as deltas since the start.
    What vmstat_show(), mm/vmstat.c, Linux 6.18, prints for them.
    """
    return {k: int(m.vmstat.get(k, 0)) for k in MODELLED_VMSTAT}
