"""What /proc/kpageflags and /proc/kpagecount show: fs/proc/page.c."""

from __future__ import annotations

from foliosim.model.machine import Machine
from foliosim.model.types import (
    PG_active,
    PG_anon,
    PG_anon_exclusive,
    PG_dirty,
    PG_large_rmappable,
    PG_lru,
    PG_mlocked,
    PG_reclaim,
    PG_referenced,
    PG_reserved,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    PG_uptodate,
    PG_writeback,
    PG_zero,
)

# Folio flag -> kpageflags names it sets.  PG_swapcache is PG_owner_priv_1, so it
# shows as owner_private as well; KPF_SWAPCACHE needs PG_swapbacked too.
_SIMPLE = (
    (PG_referenced, "referenced"),
    (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"),
    (PG_active, "active"),
    (PG_writeback, "writeback"),
    (PG_reclaim, "reclaim"),
    (PG_anon, "anon"),
    (PG_swapbacked, "swapbacked"),
    (PG_unevictable, "unevictable"),
    (PG_mlocked, "mlocked"),
    (PG_reserved, "reserved"),
    (PG_zero, "zero_page"),
    (PG_swapcache, "owner_private"),
)
_cache: dict[tuple[int, int, bool, bool, bool], list[str]] = {}


def stable_page_flags(m: Machine, pfn: int, folio: int) -> list[str]:
    """stable_page_flags(), fs/proc/page.c, Linux 6.18, as contract names (sorted, no lru/idle)."""
    f = int(m.mem.flags[folio])
    order = int(m.mem.order[folio])
    mapped = (
        bool(any(m.mem.mapcount[folio : folio + (1 << order)]) or m.entire_mapcount.get(folio))
        if not f & PG_zero
        else False
    )
    ksm_anon = m.profile.has("kpf_ksm_on_anon")
    key = (f & ~PG_lru, order, mapped, pfn == folio, ksm_anon)
    names = _cache.get(key)
    if names is None:
        out = [name for bit, name in _SIMPLE if f & bit]
        if f & PG_swapcache and f & PG_swapbacked:
            out.append("swapcache")
        if mapped:
            out.append("mmap")
        if f & PG_anon and ksm_anon:
            # `if (mapping & PAGE_MAPPING_KSM)` in stable_page_flags(): PAGE_MAPPING_KSM
            # is PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE, so any anon mapping passes.
            out.append("ksm")
        # PG_anon_exclusive is PG_owner_2 of the head page (bit 34).
        if f & PG_anon and f & PG_anon_exclusive:
            out.append("anon_exclusive")
        if order:
            out.append("compound_head" if pfn == folio else "compound_tail")
            if f & (PG_large_rmappable | PG_zero):  # the huge zero folio counts as thp
                out.append("thp")
        if f & PG_zero:
            out = [n for n in out if n not in ("referenced", "active")]
        names = _cache[key] = sorted(out)
    return names


def get_kpage_count(m: Machine, pfn: int, folio: int) -> int:
    """get_kpage_count(), fs/proc/page.c, Linux 6.18: folio_precise_page_mapcount()."""
    if m.mem.flags[pfn] & PG_zero:
        return 0
    return int(m.mem.mapcount[pfn]) + m.entire_mapcount.get(folio, 0)
