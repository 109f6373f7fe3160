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
    "PageList",
    "PROC_FAULT_KEYS",
    "SMAPS_KEYS",
    "VMA_KEYS",
    "VMSTAT_KEYS",
    "dumps",
    "kpageflags_names",
    "mthp_size_name",
    "page_runs",
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


class PageList(list):  # type: ignore[type-arg]
    """A mapping's STATE page list that knows its runs of equal consecutive pages.

    `runs` is a list of (first, last) index pairs covering the list in order, each
    a maximal run of equal pages, and every page of a run is one dict object: a
    backend builds it from one dict per run (the model: observe.read_pages()), so
    treat it as read-only.  A list read from JSON or made page by page is a plain
    list; page_runs() finds its runs by comparing neighbours.
    """

    runs: list[tuple[int, int]]

    @classmethod
    def from_runs(cls, runs: list[tuple[int, int, dict[str, Any]]]) -> PageList:
        """The list of `runs`, (first, last, page) in order from page 0, equal neighbours merged."""
        out = cls()
        merged: list[tuple[int, int]] = []
        for first, last, page in runs:
            if merged and out[-1] == page:
                page = out[-1]
                merged[-1] = (merged[-1][0], last)
            else:
                merged.append((first, last))
            out.extend([page] * (last - first + 1))
        out.runs = merged
        return out


def page_runs(pages: list[Any]) -> list[tuple[int, int]]:
    """The maximal runs of equal consecutive pages, (first, last): a PageList's own, else found."""
    runs = getattr(pages, "runs", None)
    if runs is not None and (runs[-1][1] + 1 if runs else 0) == len(pages):
        return runs
    out: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(pages)):
        if pages[i] != pages[i - 1]:
            out.append((first, i - 1))
            first = i
    if pages:
        out.append((first, len(pages) - 1))
    return out


def _page_lists(obs: dict[str, Any]) -> Any:
    # The STATEs of the observation (final, and each observe event's), as
    # (container, key) pairs of their mappings' non-empty PageLists.
    states = [obs.get("final")] + [
        ev.get("state")
        for ev in obs.get("events") or []
        if isinstance(ev, dict) and ev.get("op") == "observe"
    ]
    for state in states:
        if not isinstance(state, dict):
            continue
        for pstate in (state.get("procs") or {}).values():
            if not isinstance(pstate, dict):
                continue
            for mapping in (pstate.get("maps") or {}).values():
                pages = mapping.get("pages") if isinstance(mapping, dict) else None
                if isinstance(pages, PageList) and pages and page_runs(pages) is pages.runs:
                    yield mapping


def dumps(obs: dict[str, Any]) -> str:
    """The canonical text of an observation: keys sorted, page lists one item a line.

    A PageList is written run by run: each run's page is encoded once and its
    text repeated, the same text json.dumps writes page by page.
    """
    mappings = list(_page_lists(obs))
    if not mappings:
        return json.dumps(obs, sort_keys=True, indent=1) + "\n"
    saved = [m["pages"] for m in mappings]
    try:
        for n, m in enumerate(mappings):
            m["pages"] = f"\x00pages{n}"  # no observation string holds a NUL
        text = json.dumps(obs, sort_keys=True, indent=1)
    finally:
        for m, pages in zip(mappings, saved, strict=True):
            m["pages"] = pages
    marks = [json.dumps(f"\x00pages{n}") for n in range(len(saved))]
    # In the text's order (keys sorted), not the walk's.
    order = sorted(range(len(saved)), key=lambda n: text.index(marks[n]))
    out = []
    pos = 0
    for n in order:
        pages, mark = saved[n], marks[n]
        at = text.index(mark, pos)
        indent = at - text.rindex("\n", 0, at) - 1 - len('"pages": ')
        pad = "\n" + " " * (indent + 1)
        items: list[str] = []
        for first, last in pages.runs:
            item = json.dumps(pages[first], sort_keys=True, indent=1).replace("\n", pad)
            items.extend([item] * (last - first + 1))
        out += [text[pos:at], "[", pad, ("," + pad).join(items), "\n", " " * indent, "]"]
        pos = at + len(mark)
    out.append(text[pos:])
    return "".join(out) + "\n"
