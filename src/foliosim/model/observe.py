"""The contract's STATE read off the model, as the kernel backend reads it off /proc and /sys.

Not kernel code: the runner's side.  Per mapping, task_mmu.smaps_of_mapping() and the
pagemap bits come from task_mmu.py (fs/proc/task_mmu.c), flags and mapcounts from
proc_page.py (fs/proc/page.c); counters from the machine's vmstat and mTHP stats.
"""

from __future__ import annotations

from typing import Any

from foliosim.model import memcontrol, proc_page, task_mmu
from foliosim.model.machine import Machine
from foliosim.model.types import Mm, PG_zero
from foliosim.observation import VMSTAT_KEYS, mthp_size_name
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
            if not mp.mapped:
                continue  # its mmap failed: the harnesses have no such mapping either
            maps[name] = {
                "smaps": task_mmu.smaps_of_mapping(m, mm, mp),
                "pages": read_pages(m, mm, mp.start, mp.pages),
                "vmas": task_mmu.vmas_of_mapping(mm, mp),
            }
        # /proc/PID/stat's minflt and majflt: the task's counters (mm_account_fault()).
        procs[pname] = {"maps": maps, "minflt": mm.min_flt, "majflt": mm.maj_flt}
    # The /proc/vmstat counters of the profile's build: none it lacks is reported.
    absent = m.profile.vmstat_absent
    vmstat = {k: int(m.vmstat.get(k, 0)) for k in VMSTAT_KEYS if k not in absent}
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


def read_pages(m: Machine, mm: Mm, start: int, nr: int) -> list[dict[str, Any]]:
    """The STATE page list of [start, start + nr): pagemap, kpageflags and kpagecount."""
    bits, pfn = task_mmu.mapping_ptes(mm, start, nr)
    pmd_mapped = task_mmu.mapping_pmd_mapped(mm, start, nr) if mm.pmds else None
    present, swap, exclusive = task_mmu.pte_to_pagemap_entry(m, bits, pfn, pmd_mapped)
    heads = task_mmu.folio_heads(m, pfn)
    soft_dirty = task_mmu.vma_soft_dirty(mm, start, nr)
    out = []
    for k in range(nr):
        if present[k]:
            p = int(pfn[k])
            folio = int(heads[k])
            out.append(
                {
                    "state": "present",
                    "exclusive": bool(exclusive[k]),
                    "soft_dirty": bool(soft_dirty[k]),
                    "flags": proc_page.stable_page_flags(m, p, folio),
                    "mapcount": proc_page.get_kpage_count(m, p, folio),
                    # The zero pages (huge one included) report order 0.
                    "order": 0 if m.mem.flags[p] & PG_zero else int(m.mem.order[folio]),
                }
            )
        elif swap[k]:
            out.append({"state": "swap", "exclusive": False, "soft_dirty": bool(soft_dirty[k])})
        else:
            out.append({"state": "none", "exclusive": False, "soft_dirty": bool(soft_dirty[k])})
    return out
