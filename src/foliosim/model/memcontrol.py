"""The scenario's memory cgroup: mm/memcontrol.c and mm/memcontrol-v1.c, Linux 6.18.

The kernel backend runs every scenario in one cgroup v1 memcg (docs/pressure.md);
the model has that memcg in `Machine.memcg` and its lruvec's lists in lru.py.

Model: the memcg's usage is the pages of the folios the model has allocated.
The kernel's page counter also holds kernel memory charged to the cgroup (page
tables, VMAs, anon_vmas) and the per-CPU charge stock (MEMCG_CHARGE_BATCH, 64
pages), so a limit close to usage is met at a different moment; scenarios keep
their limits well away from usage, or below what reclaim can free.
"""

from __future__ import annotations

from foliosim.model import vmscan
from foliosim.model.errors import SyscallError
from foliosim.model.lru import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    lruvec_lru_size,
)
from foliosim.model.machine import Machine
from foliosim.model.types import PG_anon, PG_swapcache, PG_tail
from foliosim.scenario.ast import MEMCG_STATE_KEYS

def mem_cgroup_usage(m: Machine) -> int:
    """Pages charged to the memcg: page_counter_read(&memcg->memory), mm/memcontrol.c.

    Model: every folio the model allocates is charged to the scenario's memcg
    (mem_cgroup_charge() after each allocation, mm/memcontrol.c); kernel memory
    and the charge stock are not modelled.
    """
    mem = m.mem
    hz = m.huge_zero_pfn
    usage = 0
    for pfn in range(1, mem.nr):
        if mem.refcount[pfn] > 0 and not mem.flags[pfn] & PG_tail and pfn != hz:
            usage += 1 << mem.order[pfn]
    return usage


def mem_cgroup_resize_max(m: Machine, max_pages: int | None) -> None:
    """mem_cgroup_resize_max(), mm/memcontrol-v1.c, Linux 6.18: memory.limit_in_bytes.

    Lowering the limit below usage reclaims in the writer's context, SWAP_CLUSTER_MAX
    at a time (try_to_free_mem_cgroup_pages(memcg, 1)), until usage fits; when a
    reclaim frees nothing the write fails with EBUSY and the limit stays as it was.
    """
    drained = False
    while True:
        if max_pages is None or mem_cgroup_usage(m) <= max_pages:  # page_counter_set_max()
            m.memcg.max_pages = max_pages
            return
        if not drained:
            drained = True  # drain_all_stock(): the model keeps no stock
            continue
        if not vmscan.try_to_free_mem_cgroup_pages(m, 1, may_swap=True):
            if m.tracing:
                m.trace("mem_cgroup_resize_max", "nothing reclaimed: EBUSY")
            raise SyscallError("EBUSY")


def memcg_reclaim_v1(m: Machine, nr_pages: int) -> None:
    """`memcg reclaim SIZE` on cgroup v1: a limit SIZE below usage, then the old limit back.

    What the kernel backend writes (v1 has no memory.reclaim): two
    mem_cgroup_resize_max() calls.  A failure of the first (EBUSY) is the line's error.
    """
    old = m.memcg.max_pages
    try:
        mem_cgroup_resize_max(m, max(mem_cgroup_usage(m) - nr_pages, 0))
    finally:
        mem_cgroup_resize_max(m, old)


def memcg1_stat(m: Machine) -> dict[str, int]:
    """memory.stat of the memcg (its own lines), in pages: memcg1_stat_format(), mm/memcontrol-v1.c.

    rss is NR_ANON_MAPPED (pages of anon folios mapped at least once); cache is
    NR_FILE_PAGES, which holds the swap cache (__filemap_add_folio() /
    swap_cache_add_folio()); swap is MEMCG_SWAP, which cgroup v1 charges when a
    folio leaves the swap cache for its slots (memcg1_swapout()) and uncharges
    when the slot is freed or swapped in (mem_cgroup_swapin_uncharge_swap()).
    """
    mem = m.mem
    rss = cache = 0
    for pfn in range(1, mem.nr):
        f = mem.flags[pfn]
        if mem.refcount[pfn] <= 0 or f & PG_tail or pfn == m.huge_zero_pfn:
            continue
        nr = 1 << mem.order[pfn]
        if f & PG_anon:
            if m.entire_mapcount.get(pfn, 0) > 0:
                rss += nr
            else:
                rss += sum(1 for p in range(pfn, pfn + nr) if mem.mapcount[p] > 0)
        if f & PG_swapcache:
            cache += nr
    swap = 0
    si = m.swap
    if si is not None:
        swap = sum(
            1 for off in range(1, si.max) if si.swap_map[off] > 0 and si.cache[off] < 0
        )
    return {
        "rss": rss,
        "cache": cache,
        "inactive_anon": lruvec_lru_size(m, LRU_INACTIVE_ANON),
        "active_anon": lruvec_lru_size(m, LRU_ACTIVE_ANON),
        "inactive_file": lruvec_lru_size(m, LRU_INACTIVE_FILE),
        "active_file": lruvec_lru_size(m, LRU_ACTIVE_FILE),
        "unevictable": lruvec_lru_size(m, LRU_UNEVICTABLE),
        "swap": swap,
    }


def memcg_state(m: Machine) -> dict[str, int | None]:
    """STATE["memcg"]: the limit and memory.stat fields in kB (None: no limit)."""
    st = {k: v * 4 for k, v in memcg1_stat(m).items()}
    st["limit"] = None if m.memcg.max_pages is None else m.memcg.max_pages * 4
    return {k: st[k] for k in MEMCG_STATE_KEYS}
