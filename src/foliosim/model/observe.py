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
    for kb in MTHP_SIZES_KB:
        stats = m.mthp_stats.get(mthp_order(kb), {})
        # The stats files of the profile's build: none it lacks is reported.
        keys = m.profile.mthp_stat_keys
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
    change = np.zeros(nr, bool)
    change[:1] = True
    for a in fields.values():
        change[1:] |= a[1:] != a[:-1]
    firsts = np.flatnonzero(change).tolist()
    lasts = [f - 1 for f in firsts[1:]] + [nr - 1]
    state = fields["state"]
    runs = []
    for first, last in zip(firsts, lasts, strict=True):
        if state[first] == PAGE_PRESENT:
            p, folio = int(pfn[first]), int(heads[first])
            page = {
                "state": "present",
                "exclusive": bool(fields["exclusive"][first]),
                "soft_dirty": False,
                "flags": proc_page.stable_page_flags(m, p, folio),
                "mapcount": proc_page.get_kpage_count(m, p, folio),
                # The zero pages (huge one included) report order 0.
                "order": int(fields["order"][first]),
            }
        elif state[first] == PAGE_SWAP:
            page = {"state": "swap", "exclusive": False, "soft_dirty": False}
        else:
            page = {"state": "none", "exclusive": False, "soft_dirty": False}
        runs.append((first, last, page))
    return PageList.from_runs(runs)


PAGE_NONE, PAGE_PRESENT, PAGE_SWAP = 0, 1, 2


def page_fields(
    m: Machine, mm: Mm, start: int, nr: int
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per page of [start, start + nr): pfn, folio head, and every input of its STATE entry.

    The inputs, as arrays: state (PAGE_*); for present pages exclusive and
    what stable_page_flags() and get_kpage_count() read (the folio's flags but
    PG_lru, order, whether any page of it is mapped, head or tail, the page's
    count and reported order); zero elsewhere, so that holes and swap entries
    run together.  Two neighbours equal in every array have equal entries.
    """
    bits, pfn = task_mmu.mapping_ptes(mm, start, nr)
    pmd_mapped = task_mmu.mapping_pmd_mapped(mm, start, nr) if mm.pmds else None
    present, swap, exclusive = task_mmu.pte_to_pagemap_entry(m, bits, pfn, pmd_mapped)
    state = np.where(present, PAGE_PRESENT, np.where(swap, PAGE_SWAP, PAGE_NONE)).astype(np.int8)
    pfn = np.where(present, pfn, 0)
    heads = np.where(present, task_mmu.folio_heads(m, pfn), 0)
    flags_v = m.mem.view("flags")
    mapcount_v = m.mem.view("mapcount")
    folio_flags = np.where(present, flags_v[heads], 0)
    folio_order = np.where(present, m.mem.view("order")[heads], 0).astype(np.int64)
    zero_page = (flags_v[pfn] & PG_zero).astype(bool)
    # stable_page_flags()'s "mapped": any page of the folio has a mapcount, or
    # the folio an entire (PMD) mapcount; never for the zero folios.
    nonzero = np.concatenate(([0], np.cumsum(mapcount_v != 0)))
    ends = np.minimum(heads + (1 << folio_order), len(mapcount_v))
    entire = np.zeros(len(heads), np.int64)
    if m.entire_mapcount:
        per_pfn = np.zeros(len(mapcount_v), np.int64)
        for folio, count in m.entire_mapcount.items():
            if folio < len(per_pfn):
                per_pfn[folio] = count
        entire = per_pfn[heads]
    mapped = ((nonzero[ends] - nonzero[heads]) > 0) | (entire != 0)
    mapped &= ~(folio_flags & PG_zero).astype(bool)
    count = np.where(zero_page, 0, mapcount_v[pfn].astype(np.int64) + entire)
    return pfn, heads, {
        "state": state,
        "exclusive": exclusive & present,
        "folio_flags": folio_flags & ~np.uint32(PG_lru),
        "folio_order": folio_order,
        "mapped": mapped & present,
        "is_head": (pfn == heads) & present,
        "count": np.where(present, count, 0),
        "order": np.where(present & ~zero_page, folio_order, 0),
    }
