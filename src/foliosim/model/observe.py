"""The contract's STATE read off the model, as the kernel backend reads it off /proc and /sys.

Not kernel code: the runner's side.  Per mapping, task_mmu.smaps_of_mapping() and the
pagemap bits come from task_mmu.py (fs/proc/task_mmu.c), flags and mapcounts from
proc_page.py (fs/proc/page.c); counters from the machine's vmstat and mTHP stats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foliosim.model import memcontrol, proc_page, task_mmu
from foliosim.model.machine import Machine
from foliosim.model.types import PG_lru, Mm, PG_zero
from foliosim.observation import VMSTAT_KEYS, PageList, mthp_size_name
from foliosim.scenario.ast import MTHP_SIZES_KB


def mthp_order(size_kb: int) -> int:
    """The folio order of an mTHP size in kB: 16 -> 2 ... 2048 -> 9."""
    return (size_kb // 4).bit_length() - 1


def read_state(m: Machine, only: str | None = None) -> dict[str, Any]:
    """STATE: vmstat, mTHP stats and every mapping of every process (or of `only`)."""
    procs: dict[str, Any] = {}
    for pname, mm in m.mms.items():
        if only is not None and pname != only:
            continue
        maps = {}
        for name, mp in mm.mappings.items():
            maps[name] = {
                "smaps": task_mmu.smaps_of_mapping(m, mm, mp),
                "pages": read_pages(m, mm, mp.start, mp.pages),
                "vmas": task_mmu.vmas_of_mapping(mm, mp),
            }
        # /proc/PID/stat's minflt and majflt: the task's counters (mm_account_fault()).
        procs[pname] = {"maps": maps, "minflt": mm.min_flt, "majflt": mm.maj_flt}
    vmstat = {k: int(m.vmstat.get(k, 0)) for k in VMSTAT_KEYS}
    mthp = {}
    # The stats files of the profile's build: none it lacks is reported.
    keys = m.profile.mthp_stat_keys
    for kb in MTHP_SIZES_KB:
        stats = m.mthp_stats.get(mthp_order(kb), {})
        mthp[mthp_size_name(kb)] = {k: int(stats.get(k, 0)) for k in keys}
    state = {"vmstat": vmstat, "mthp": mthp, "procs": procs}
    if m.memcg.observed and only is None:  # memcg (issue 13)
        state["memcg"] = memcontrol.memcg_state(m)
    return state


def read_pages(m: Machine, mm: Mm, start: int, nr: int) -> PageList:
    """The STATE page list of [start, start + nr): pagemap, kpageflags and kpagecount.

    Built run by run: the pages where nothing that the entry of a page shows
    changes from its neighbour's form one run, found with numpy over the page
    tables and the memmap (page_fields()), and each run's entry is read once off
    its first page through fs/proc/page.c's functions.
    """
    pfn, heads, fields = page_fields(m, mm, start, nr)
    change = np.ones(nr, bool)
    if nr > 1:
        change[1:] = (fields[:, 1:] != fields[:, :-1]).any(axis=0)
    firsts = np.flatnonzero(change).tolist()
    lasts = [f - 1 for f in firsts[1:]] + [nr - 1]
    state, exclusive, order = fields[STATE].tolist(), fields[EXCLUSIVE], fields[ORDER]
    runs = []
    for first, last in zip(firsts, lasts, strict=True):
        if state[first] == PAGE_PRESENT:
            p, folio = int(pfn[first]), int(heads[first])
            page = {
                "state": "present",
                "exclusive": bool(exclusive[first]),
                "soft_dirty": False,
                "flags": proc_page.stable_page_flags(m, p, folio),
                "mapcount": proc_page.get_kpage_count(m, p, folio),
                # The zero pages (huge one included) report order 0.
                "order": int(order[first]),
            }
        elif state[first] == PAGE_SWAP:
            page = {"state": "swap", "exclusive": False, "soft_dirty": False}
        else:
            page = {"state": "none", "exclusive": False, "soft_dirty": False}
        runs.append((first, last, page))
    return PageList.from_runs(runs)


PAGE_NONE, PAGE_PRESENT, PAGE_SWAP = 0, 1, 2
# The rows of page_fields()'s array.
STATE, EXCLUSIVE, FOLIO_FLAGS, FOLIO_ORDER, MAPPED, IS_HEAD, COUNT, ORDER = range(8)


def page_fields(
    m: Machine, mm: Mm, start: int, nr: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per page of [start, start + nr): pfn, folio head, and every input of its STATE entry.

    The inputs are the rows of one int64 array: state (PAGE_*); for present
    pages exclusive and what stable_page_flags() and get_kpage_count() read
    (the folio's flags but PG_lru, its order, whether any page of it is mapped,
    head or tail, the page's count and reported order); zero elsewhere, so that
    holes and swap entries run together.  Two neighbours equal in every row
    have equal entries.
    """
    bits, pfn = task_mmu.mapping_ptes(mm, start, nr)
    pmd_mapped = task_mmu.mapping_pmd_mapped(mm, start, nr) if mm.pmds else None
    present, swap, exclusive = task_mmu.pte_to_pagemap_entry(m, bits, pfn, pmd_mapped)
    pfn *= present
    heads = task_mmu.folio_heads(m, pfn) * present
    flags_v = m.mem.view("flags")
    mapcount_v = m.mem.view("mapcount")
    out = np.zeros((8, nr), np.int64)
    out[STATE] = present * PAGE_PRESENT + (swap & ~present) * PAGE_SWAP
    out[EXCLUSIVE] = exclusive
    folio_flags = flags_v[heads].astype(np.int64) * present
    out[FOLIO_FLAGS] = folio_flags & ~PG_lru
    folio_order = m.mem.view("order")[heads] * present
    out[FOLIO_ORDER] = folio_order
    # stable_page_flags()'s "mapped": any page of the folio has a mapcount, or
    # the folio an entire (PMD) mapcount; never for the zero folios.
    mapped = mapcount_v[heads] != 0
    large = np.flatnonzero(folio_order)
    if len(large):
        lo = int(heads[large].min())
        ends = heads[large] + (1 << folio_order[large].astype(np.int64))
        hi = min(int(ends.max()), len(mapcount_v))
        nonzero = np.concatenate(([0], np.cumsum(mapcount_v[lo:hi] != 0)))
        mapped[large] = nonzero[np.minimum(ends, hi) - lo] > nonzero[heads[large] - lo]
    entire = 0
    if m.entire_mapcount:
        per_pfn = np.zeros(len(mapcount_v), np.int64)
        for folio, count in m.entire_mapcount.items():
            if folio < len(per_pfn):
                per_pfn[folio] = count
        entire = per_pfn[heads]
        mapped |= entire != 0
    zero_folio = (folio_flags & PG_zero) != 0
    out[MAPPED] = mapped & present & ~zero_folio
    out[IS_HEAD] = (pfn == heads) & present
    zero_page = ((flags_v[pfn] & PG_zero) != 0) | ~present
    out[COUNT] = np.where(zero_page, 0, mapcount_v[pfn] + entire)
    out[ORDER] = np.where(zero_page, 0, folio_order)
    return pfn, heads, out
