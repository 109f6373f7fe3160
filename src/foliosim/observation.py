"""The observation schema (contract v1) shared by every backend.

Backends build plain dicts with exactly these keys; nothing here knows how a
backend computes them.  See docs/scenario-format.md.
"""

from __future__ import annotations

import json
from typing import Any

# SMAPS_KEYS, the /proc/PID/smaps fields of STATE, and KPF_NAMES, the kpageflags
# names, are defined in the scenario layer (the parser checks `expect NAME smaps
# FIELD` and `expect NAME RANGE flags +FLAG` against them and must not import this
# module); they are re-exported here with the rest of the schema.
from foliosim.scenario.ast import KPF_NAMES, KPF_NEVER_REPORTED, MTHP_SIZES_KB, SMAPS_KEYS

__all__ = [
    "FORMAT",
    "KPF_BITS",
    "KPF_NAMES",
    "KPF_NEVER_REPORTED",
    "KPF_NOT_ON_ZERO_PAGE",
    "MTHP_SIZE_NAMES",
    "MTHP_STAT_KEYS",
    "PROC_FAULT_KEYS",
    "SMAPS_KEYS",
    "VMA_KEYS",
    "VMSTAT_KEYS",
    "dumps",
    "kpageflags_names",
    "mthp_size_name",
]

FORMAT = "foliosim.observation/1"

# /proc/vmstat counters reported in STATE["vmstat"], as deltas since the start.
VMSTAT_KEYS = (
    "pglazyfree",
    "pglazyfreed",
    "pswpin",
    "pswpout",
    "swpin_zero",
    "swpout_zero",
    "thp_deferred_split_page",
    "thp_fault_alloc",
    "thp_split_page",
    "thp_split_pmd",
    "thp_swpout",
    "thp_swpout_fallback",
)

# Each process's fault counters of /proc/PID/stat (minflt, field 10; majflt, field
# 12), as deltas since the scenario start (a forked child: since its fork, where
# copy_process() zeroes them), the harness's own faults taken off.
PROC_FAULT_KEYS = ("majflt", "minflt")

# Each VMA inside a mapping (STATE procs.P.maps.NAME.vmas, in address order):
# first and last page (mapping page indexes), the permissions column of the
# /proc/PID/smaps header ("rw-p") and the words of its VmFlags line, in the
# kernel's order.
VMA_KEYS = ("first", "flags", "last", "prot")

# Files of /sys/kernel/mm/transparent_hugepage/hugepages-<N>kB/stats/ on this
# machine's Linux 6.18.44, shmem_* left out.  anon_fault_declined is not upstream
# (see docs/kernel-notes.md); the model has no path that declines a fault.
MTHP_STAT_KEYS = (
    "anon_fault_alloc",
    "anon_fault_declined",
    "anon_fault_fallback",
    "anon_fault_fallback_charge",
    "nr_anon",
    "nr_anon_partially_mapped",
    "split",
    "split_deferred",
    "split_failed",
    "swpin",
    "swpin_fallback",
    "swpin_fallback_charge",
    "swpout",
    "swpout_fallback",
    "zswpout",
)


def mthp_size_name(size_kb: int) -> str:
    """The contract's key for an mTHP size: '16K' .. '1M', '2M'."""
    return f"{size_kb // 1024}M" if size_kb >= 1024 else f"{size_kb}K"


MTHP_SIZE_NAMES = tuple(mthp_size_name(s) for s in MTHP_SIZES_KB)

KPF_BITS = {name: bit for bit, name in KPF_NAMES.items()}

# Not reported on the shared zero page (global state every toucher changes).
KPF_NOT_ON_ZERO_PAGE = frozenset({"referenced", "active"})


def kpageflags_names(bits: int) -> list[str]:
    """Sorted contract flag names for a raw /proc/kpageflags word."""
    names = [name for bit, name in KPF_NAMES.items() if bits >> bit & 1]
    if "zero_page" in names:
        names = [n for n in names if n not in KPF_NOT_ON_ZERO_PAGE]
    return sorted(n for n in names if n not in KPF_NEVER_REPORTED)


def dumps(obs: dict[str, Any]) -> str:
    """The canonical text of an observation: keys sorted, page lists one item a line."""
    return json.dumps(obs, sort_keys=True, indent=1) + "\n"
