"""Reclaim one configuration under a model variant and fingerprint the whole result.

The two reclaim paths:

- "pageout": p0 calls madvise(MADV_PAGEOUT) on the folio's range, which goes
  madvise_cold_or_pageout_pte_range() -> reclaim_pages() -> shrink_folio_list()
  (mm/madvise.c, mm/vmscan.c);
- "lru": reclaim meets the folio on its LRU as shrink_inactive_list() does
  (mm/vmscan.c): lru_add_drain(), isolate it, shrink_folio_list(), put back
  what is left.  Model: until issue 13 models the LRU lists, isolation is
  folio_isolate_lru() and the put-back is folio_putback_lru().

The fingerprint holds every field of the machine a variant could change: the
memmap of every pfn handed out (flags, refcount, mapcount, order, content,
swap, anon_vma, index), every page table and PMD, the MM counters, the swap
device (counts, cache, contents, zeromap, shadows, inuse), vmstat, mTHP
stats, the per-CPU batches, the deferred split queue, pincounts and GUP
references; and the errno of the madvise call.  Two variants agree on a
configuration when the fingerprints are equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from foliosim.check.exhaustive.build import MAPPING, build
from foliosim.check.exhaustive.space import Config
from foliosim.model.checks import validate_all
from foliosim.model.errors import SyscallError
from foliosim.model.lru import lru_add_drain
from foliosim.model.machine import Machine
from foliosim.model.madvise import do_madvise
from foliosim.model.profile import PROFILES, Profile, get_profile
from foliosim.model.vmscan import folio_isolate_lru, folio_putback_lru, shrink_folio_list


class SideError(Exception):
    """A name that is neither a model variant nor a profile: one line, exit 2."""


@dataclass
class Side:
    """One side of the comparison: a variant (or a bare profile) of the model."""

    name: str
    profile: Profile
    applied: Callable[[], contextlib.AbstractContextManager[Any]]
    spec: str  # what load_side() was given, to load it again in a worker


def load_side(spec: str) -> Side:
    """The variant or profile `spec` names (foliosim.variants when it is installed)."""
    try:
        from foliosim.variants import VariantError, load_variant  # type: ignore[import-not-found]
    except ImportError:
        load_variant = None
    if load_variant is not None:
        try:
            v = load_variant(spec)
        except VariantError as e:
            if spec not in PROFILES:
                raise SideError(str(e)) from None
        else:
            return Side(v.name, get_profile(v.base), v.applied, spec)
    if spec in PROFILES:
        return Side(spec, get_profile(spec), contextlib.nullcontext, spec)
    known = ", ".join(PROFILES)
    raise SideError(f"unknown variant or profile {spec!r} (profiles: {known})")


def reclaim(m: Machine, c: Config, folio: int) -> str:
    """Reclaim the folio by the configuration's path; the madvise errno or ''."""
    if c.path == "pageout":
        mm = m.mms["p0"]
        mp = mm.mappings[MAPPING]
        try:
            do_madvise(m, mm, mp.start, mp.start + mp.pages, "pageout")
        except SyscallError as e:
            return e.errno
        return ""
    # shrink_inactive_list(): drain, isolate_lru_folios(), shrink, put back.
    lru_add_drain(m)
    if not folio_isolate_lru(m, folio):
        return "not on an LRU"
    for f in shrink_folio_list(m, [folio]):
        folio_putback_lru(m, f)
    return ""


_MEMMAP = ("flags", "refcount", "mapcount", "order", "data", "swap", "anon_vma", "index")

# The fingerprint's parts, named for the kind of difference they show.
PARTS = (
    "madvise result",
    "struct pages",
    "page tables and MM counters",
    "swap device",
    "vmstat",
    "mTHP stats",
    "batches, deferred split and references",
)


def fingerprint(m: Machine, errno: str) -> tuple:
    """Every field of the machine, in PARTS; equal iff the states are equal."""
    mem = m.mem
    n = mem.nr
    memmap = tuple(getattr(mem, f)[:n].tobytes() for f in _MEMMAP)
    mms: list = []
    for name, mm in m.mms.items():
        mms.append(name)
        mms.append(tuple(mm.counters))
        for k, t in sorted(mm.pgtables.items()):
            mms.append(k)
            mms.append(t.bits.tobytes())
            mms.append(t.pfn.tobytes())
        if mm.pmds:
            mms.append(tuple(sorted((k, tuple(v)) for k, v in mm.pmds.items())))
        mms.append(tuple((v.start, v.end, v.flags) for v in mm.vmas))
    si = m.swap
    swap = (
        None
        if si is None
        else (
            si.swap_map.tobytes(),
            tuple(sorted(si.cache.items())),
            si.data.tobytes(),
            si.zeromap.tobytes(),
            si.shadow.tobytes(),
            si.inuse_pages,
        )
    )
    vmstat = tuple(sorted((k, v) for k, v in m.vmstat.items() if v))
    mthp = tuple(sorted((o, k, v) for o, st in m.mthp_stats.items() for k, v in st.items() if v))
    rest = (
        tuple(tuple(v) for v in m.fbatches.values()),
        tuple(m.mlock_fbatch),
        tuple(sorted(m.deferred_split.items())),
        tuple(sorted(m.entire_mapcount.items())),
        tuple(sorted(m.pincount.items())),
        tuple((k, len(v), v[0] if v else -1) for k, v in m.gup_refs.items()),
    )
    return (errno, memmap, tuple(mms), swap, vmstat, mthp, rest)


@dataclass
class Outcome:
    """One side's result on one configuration: its fingerprint, or the fault it raised."""

    fp: tuple | None
    fault: str | None
    machine: Machine | None = None


def run_one(side: Side, c: Config, keep: bool = False, validate: bool = False) -> Outcome:
    """Build `c` fresh, reclaim it under the side (already applied), fingerprint it.

    validate: run every validate_* of model/checks.py on the result.  The
    fingerprint holds everything they read, so two equal fingerprints are
    equally valid: the hot loop validates only the differences it explains.
    """
    m, folio = build(c, side.profile)
    try:
        errno = reclaim(m, c, folio)
        if validate:
            validate_all(m, None)
    except Exception as e:  # noqa: BLE001 - a variant's fault is a finding, not a crash
        return Outcome(None, f"{type(e).__name__}: {e}", m if keep else None)
    return Outcome(fingerprint(m, errno), None, m if keep else None)


def kind_of_difference(a: Outcome, b: Outcome) -> tuple[str, ...]:
    """Which parts of the state differ (or that a side faulted): () if they agree."""
    if a.fault or b.fault:
        return ("a model fault",)
    return tuple(name for name, x, y in zip(PARTS, a.fp, b.fp, strict=True) if x != y)


def agree(a: Outcome, b: Outcome) -> bool:
    """The two sides reached the same state (a fault never agrees)."""
    return a.fault is None and b.fault is None and a.fp == b.fp


def run_batch(side: Side, configs: list[Config]) -> list[Outcome]:
    """Every configuration of the batch under the side, applied once around the batch."""
    with side.applied():
        return [run_one(side, c) for c in configs]
