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

import numpy as np

from foliosim.model import vmscan
from foliosim.model.errors import NotModelled, OomKilled, SyscallError
from foliosim.model.lru import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    lruvec_lru_size,
)
from foliosim.model.machine import Machine
from foliosim.model.types import MM_ANONPAGES, MM_SWAPENTS, PG_anon, PG_swapcache, PG_tail, Mm
from foliosim.scenario.ast import MEMCG_STATE_KEYS

MEMCG_CHARGE_BATCH = 64  # include/linux/memcontrol.h
MAX_RECLAIM_RETRIES = 16  # mm/internal.h
PAGE_ALLOC_COSTLY_ORDER = 3  # include/linux/mmzone.h

def mem_cgroup_usage(m: Machine) -> int:
    """Pages charged to the memcg: page_counter_read(&memcg->memory), mm/memcontrol.c.

    Model: every folio the model allocates is charged to the scenario's memcg
    (mem_cgroup_charge() after each allocation, mm/memcontrol.c); kernel memory
    and the charge stock are not modelled.
    """
    mem = m.mem
    ref = mem.view("refcount")[1:]
    live = (ref > 0) & ((mem.view("flags")[1:] & PG_tail) == 0)
    if m.huge_zero_pfn > 0:
        live[m.huge_zero_pfn - 1] = False
    pages = np.left_shift(np.int64(1), mem.view("order")[1:][live].astype(np.int64))
    # The stock: charged to the counter by the last batch, not yet used.
    return int(pages.sum()) + m.memcg.stock


def mem_cgroup_resize_max(m: Machine, max_pages: int | None) -> None:
    """mem_cgroup_resize_max(), mm/memcontrol-v1.c, Linux 6.18: memory.limit_in_bytes.

    Lowering the limit below usage reclaims in the writer's context, SWAP_CLUSTER_MAX
    at a time (try_to_free_mem_cgroup_pages(memcg, 1)), until usage fits; when a
    reclaim frees nothing the write fails with EBUSY and the limit stays as it was.
    """
    drained = False
    # The writer's open memory.limit_in_bytes: its struct file comes from filp_cachep,
    # SLAB_ACCOUNT (fs/file_table.c), charged to the writer's cgroup a page at a time
    # through the objcg stock (obj_cgroup_charge(), mm/memcontrol.c), and freed only
    # after the write: a limit of 0 is never met.
    kmem = 1 if m.current is not None else 0
    while True:
        if max_pages is None or mem_cgroup_usage(m) + kmem <= max_pages:  # page_counter_set_max()
            m.memcg.max_pages = max_pages
            return
        if not drained:
            drained = True
            drain_all_stock(m)
            continue
        if not vmscan.try_to_free_mem_cgroup_pages(m, 1, may_swap=True):
            if m.tracing:
                m.trace("mem_cgroup_resize_max", "nothing reclaimed: EBUSY")
            raise SyscallError("EBUSY")


# --- the charge path: try_charge_memcg() and the memcg OOM killer ------------------


def consume_stock(m: Machine, nr_pages: int) -> bool:
    """consume_stock(), mm/memcontrol.c, Linux 6.18: take nr_pages from this CPU's stock.

    Model: one CPU, and the scenario's memcg keeps its slot of the stock (the kernel
    drains a random one of NR_MEMCG_STOCK (7) slots when an eighth memcg charges on
    the CPU).
    """
    cg = m.memcg
    if nr_pages > MEMCG_CHARGE_BATCH or cg.stock < nr_pages:
        return False
    cg.stock -= nr_pages
    return True


def refill_stock(m: Machine, nr_pages: int) -> None:
    """refill_stock(), mm/memcontrol.c, Linux 6.18: the rest of a batch goes to the stock;
    past MEMCG_CHARGE_BATCH the whole stock is uncharged (drain_stock())."""
    cg = m.memcg
    if nr_pages > MEMCG_CHARGE_BATCH:
        return  # memcg_uncharge(): never charged in the model's count
    cg.stock += nr_pages
    if cg.stock > MEMCG_CHARGE_BATCH:
        cg.stock = 0


def drain_all_stock(m: Machine) -> None:
    """drain_all_stock(), mm/memcontrol.c, Linux 6.18: every CPU's stock of the memcg uncharged."""
    m.memcg.stock = 0


def mem_cgroup_margin(m: Machine) -> int:
    """mem_cgroup_margin(), mm/memcontrol.c, Linux 6.18: pages left under memory.max.

    Model: v1's memsw counter (memory.memsw.limit_in_bytes) is never limited here.
    """
    cg = m.memcg
    if cg.max_pages is None:
        return 1 << 62
    return max(cg.max_pages - mem_cgroup_usage(m), 0)


def page_counter_try_charge(m: Machine, nr_pages: int) -> bool:
    """page_counter_try_charge(), mm/page_counter.c, Linux 6.18: charge unless over memory.max."""
    return mem_cgroup_margin(m) >= nr_pages


def try_charge_memcg(m: Machine, nr_pages: int) -> None:
    """try_charge_memcg(), mm/memcontrol.c, Linux 6.18: charge a new folio of nr_pages.

    The stock first, then a MEMCG_CHARGE_BATCH charge (the rest to the stock), then
    nr_pages alone; over the limit the charging task reclaims
    (try_to_free_mem_cgroup_pages()), drains the stock once, retries while reclaim
    frees anything and MAX_RECLAIM_RETRIES more times, then the memcg OOM killer.
    The gfp is GFP_HIGHUSER_MOVABLE of an anon fault or swap-in (may block, no
    __GFP_NORETRY or __GFP_RETRY_MAYFAIL).  Model: the counter holds no kernel memory
    (page tables, VMAs) of the cgroup, which the kernel also charges here.
    """
    batch = max(MEMCG_CHARGE_BATCH, nr_pages)
    nr_retries = MAX_RECLAIM_RETRIES
    passed_oom = False
    drained = False
    while True:  # retry:
        if consume_stock(m, nr_pages):
            return
        if page_counter_try_charge(m, batch):
            if batch > nr_pages:
                refill_stock(m, batch - nr_pages)  # done_restock:
            return
        if batch > nr_pages:
            batch = nr_pages
            continue
        if nr_pages > 1:
            # alloc_anon_folio() / the THP fault charge with vma_thp_gfp_mask() and fall
            # back to smaller orders (MTHP_STAT_ANON_FAULT_FALLBACK_CHARGE).
            raise NotModelled(
                "a large folio's charge over the memcg limit (the fault's fallback to a "
                "smaller order) is not modelled yet (issue 13)"
            )
        if passed_oom and m.current is not None and m.current in m.memcg.oom_kills:
            break  # task_is_dying(): nomem
        if m.tracing:
            m.trace("try_charge_memcg", f"over the limit by {nr_pages}: reclaim")
        nr_reclaimed = vmscan.try_to_free_mem_cgroup_pages(m, nr_pages, may_swap=True)
        if mem_cgroup_margin(m) >= nr_pages:
            continue
        if not drained:
            drain_all_stock(m)
            drained = True
            continue
        if nr_reclaimed and nr_pages <= 1 << PAGE_ALLOC_COSTLY_ORDER:
            continue
        if nr_retries:
            nr_retries -= 1
            continue
        if mem_cgroup_oom(m, nr_pages):
            passed_oom = True
            nr_retries = MAX_RECLAIM_RETRIES
            continue
        break
    # nomem: -ENOMEM, VM_FAULT_OOM, pagefault_out_of_memory() for a task no one killed.
    raise NotModelled("a memcg charge that fails with no OOM victim is not modelled (issue 13)")


def oom_badness(m: Machine, mm: Mm) -> int:
    """oom_badness(), mm/oom_kill.c, Linux 6.18: rss + swap entries + page-table pages.

    Model: oom_score_adj 0 for every scenario process (so totalpages does not
    matter), no file pages, and of the page tables only the PTE pages.
    """
    return mm.counters[MM_ANONPAGES] + mm.counters[MM_SWAPENTS] + len(mm.pgtables)


def select_bad_process(m: Machine) -> str | None:
    """select_bad_process() -> mem_cgroup_scan_tasks(oom_evaluate_task), mm/oom_kill.c, 6.18.

    The memcg's tasks in css_set order (a forked task is added at the tail,
    cgroup_post_fork()); a task with as many points as the chosen one replaces it
    (`points < oc->chosen_points` is the only skip).
    """
    chosen: str | None = None
    chosen_points = -(1 << 62)
    for name, mm in m.mms.items():
        points = oom_badness(m, mm)
        if points < chosen_points:
            continue
        chosen, chosen_points = name, points
    return chosen


def mem_cgroup_oom(m: Machine, nr_pages: int) -> bool:
    """mem_cgroup_oom() -> mem_cgroup_out_of_memory() -> out_of_memory(), 6.18: kill a task.

    True when a victim was killed (or the margin came back); the victim's memory is
    gone at once (the oom_reaper and its exit, which the charging task's retries wait for).
    """
    if nr_pages > 1 << PAGE_ALLOC_COSTLY_ORDER:
        return False
    if mem_cgroup_margin(m) >= nr_pages:
        return True
    victim = select_bad_process(m)
    if victim is None:
        return False
    if m.tracing:
        m.trace("oom_kill_process", f"memcg OOM: kill {victim}")
    m.memcg.oom_kills.append(victim)
    m.vmstat["oom_kill"] = m.vmstat.get("oom_kill", 0) + 1
    if victim == m.current:
        raise OomKilled(victim)  # SIGKILL to current: its fault fails, then it dies
    from foliosim.model import exit as kexit  # exit.py imports the allocator's users

    kexit.do_exit(m, m.mms[victim])
    return True


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
