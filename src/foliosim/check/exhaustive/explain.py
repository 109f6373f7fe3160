"""Say a configuration and a difference in plain words, and write a .scn that builds it."""

from __future__ import annotations

from dataclasses import dataclass

from foliosim.check.exhaustive.build import MAPPING, folio_index, token
from foliosim.check.exhaustive.engine import Outcome
from foliosim.check.exhaustive.space import DEVICE, DIRTY, PRESENT, SOFT_DIRTY, SWAP, WRITE, Config
from foliosim.model.machine import Machine
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_WRITE,
    PTE_YOUNG,
    PG_active,
    PG_anon,
    PG_dirty,
    PG_lru,
    PG_mlocked,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    is_device_exclusive_entry,
)

_FLAG_NAMES = (
    (PG_anon, "anon"),
    (PG_swapbacked, "swapbacked"),
    (PG_swapcache, "swapcache"),
    (PG_dirty, "dirty"),
    (PG_lru, "lru"),
    (PG_active, "active"),
    (PG_mlocked, "mlocked"),
    (PG_unevictable, "unevictable"),
)


def _code_words(code: int) -> str:
    if not code:
        return "none"
    if code & SWAP:
        return "swap" + (" soft-dirty" if code & SOFT_DIRTY else "")
    if code & DEVICE:
        return "device-exclusive" + (" soft-dirty" if code & SOFT_DIRTY else "")
    bits = ["dirty" if code & DIRTY else "clean", "writable" if code & WRITE else "read-only"]
    if code & SOFT_DIRTY:
        bits.append("soft-dirty")
    return "present " + ",".join(bits)


def _pages(first: int, end: int) -> str:
    return f"page {first}" if end - first == 1 else f"pages {first}-{end - 1}"


def describe(c: Config) -> str:
    """The configuration in one paragraph of plain words."""
    nr = c.nr
    where = {
        "none": "ending at a page-table boundary" if c.pt_end else "inside one page table",
        "pattern": "inside one page table",
        "pgtable": f"straddling a page-table boundary after page {c.split - 1}",
        "vma": f"cut by a VMA boundary after page {c.split - 1}",
    }[c.cut]
    kind = "droppable " if c.droppable else ""
    state = {
        "lazyfree": "lazyfree (MADV_FREE'd, not swap-backed)",
        "swapbacked": "swap-backed, not in the swap cache",
        "swapcache": "swap-backed, in the swap cache",
    }[c.state]
    if c.droppable:
        state = "not swap-backed (MAP_DROPPABLE)"
    words = [
        (
            f"an order-{c.order} {kind}folio ({nr} page{'s' if nr > 1 else ''}) {where}, "
            f"{state}{', PG_dirty' if c.dirty else ''}{', mlocked' if c.mlocked else ''}"
        )
    ]
    for p, parts in enumerate(c.ptes):
        held = "; ".join(
            f"{_pages(s, e)} {_code_words(code)}"
            for (s, e), code in zip(c.parts(), parts, strict=True)
        )
        role = "" if p == 0 else " (forked from p0)"
        words.append(f"p{p}{role}: {held}")
    if any(c.locked):
        which = ["the lower VMA", "the upper VMA"] if len(c.locked) == 2 else ["its VMA"]
        words.append(
            "p0's "
            + " and ".join(w for w, lk in zip(which, c.locked, strict=True) if lk)
            + " VM_LOCKED"
        )
    if c.refs:
        words.append("extra references: " + ", ".join(f"a GUP {r}" for r in c.refs))
    words.append(
        {"off": "no swap device", "free": "swap with free slots", "full": "swap full"}[c.swap]
    )
    words.append(
        "reclaimed by p0's madvise(MADV_PAGEOUT)"
        if c.path == "pageout"
        else "reclaimed from the LRU (shrink_inactive_list -> shrink_folio_list)"
    )
    return "; ".join(words)


# --- what a process sees after reclaim -------------------------------------------------


@dataclass(frozen=True)
class PageView:
    state: str  # "none" | "present" | "swap" | "zero page"
    dirty: bool = False
    young: bool = False
    writable: bool = False
    soft_dirty: bool = False
    exclusive: bool = False
    holds: str = "zeroes"
    mapcount: int = 0


def _holds(m: Machine, tok: int, page: int) -> str:
    if tok == 0:
        return "zeroes"
    return "its data" if tok == token(page) else f"data {tok:#x}"


def page_views(m: Machine, c: Config) -> dict[tuple[str, int], PageView]:
    """(process, page) -> what that page of the folio's range holds now."""
    out = {}
    index = folio_index(c)
    for name, mm in m.mms.items():
        if MAPPING not in mm.mappings:
            continue
        for k in range(c.nr):
            vpn = index + k
            t = mm.pte_table(vpn)
            bits = int(t.bits[vpn & 511]) if t is not None else 0
            pfn = int(t.pfn[vpn & 511]) if t is not None else 0
            if is_device_exclusive_entry(bits):
                v = PageView(
                    "device-exclusive",
                    writable=bool(bits & PTE_WRITE),
                    holds=_holds(m, int(m.mem.data[pfn]), k),
                    mapcount=int(m.mem.mapcount[pfn]),
                )
            elif bits & PTE_PRESENT and bits & PTE_SPECIAL:
                v = PageView("zero page")
            elif bits & PTE_PRESENT:
                v = PageView(
                    "present",
                    bool(bits & PTE_DIRTY),
                    bool(bits & PTE_YOUNG),
                    bool(bits & PTE_WRITE),
                    bool(bits & PTE_SOFT_DIRTY),
                    False,
                    _holds(m, int(m.mem.data[pfn]), k),
                    int(m.mem.mapcount[pfn]),
                )
            elif bits & PTE_SWAP:
                si = m.swap
                cached = int(si.cache[pfn]) if si is not None else -1
                tok = int(m.mem.data[cached]) if cached >= 0 else int(si.data[pfn])
                v = PageView(
                    "swap",
                    soft_dirty=bool(bits & PTE_SOFT_DIRTY),
                    exclusive=bool(bits & PTE_SWP_EXCLUSIVE),
                    holds=_holds(m, tok, k),
                )
            else:
                v = PageView("none")
            out[(name, k)] = v
    return out


def _view_words(v: PageView) -> str:
    if v.state in ("none", "zero page"):
        return f"{v.state} (reads zeroes)"
    if v.state == "device-exclusive":
        return f"a device-exclusive entry, holding {v.holds}"
    if v.state == "swap":
        return (
            f"a swap entry{' (exclusive)' if v.exclusive else ''}"
            f"{', soft-dirty' if v.soft_dirty else ''}, holding {v.holds}"
        )
    bits = [
        "dirty" if v.dirty else "clean",
        "young" if v.young else "old",
        "writable" if v.writable else "read-only",
    ]
    if v.soft_dirty:
        bits.append("soft-dirty")
    return f"present ({', '.join(bits)}), holding {v.holds}"


def _folio_words(m: Machine, folio: int) -> dict[str, str]:
    mem = m.mem
    if not mem.refcount[folio]:
        return {"folio": "freed"}
    flags = int(mem.flags[folio])
    names = [n for bit, n in _FLAG_NAMES if flags & bit]
    out = {
        "folio flags": ",".join(names),
        "folio refcount": str(int(mem.refcount[folio])),
        "folio order": str(int(mem.order[folio])),
    }
    if m.deferred_split.get(folio):
        out["deferred split"] = "queued"
    return out


def _global_words(m: Machine) -> dict[str, str]:
    out = {}
    for name, mm in m.mms.items():
        out[f"{name} MM_ANONPAGES"] = str(mm.counters[MM_ANONPAGES])
        out[f"{name} MM_SWAPENTS"] = str(mm.counters[MM_SWAPENTS])
    for k, v in sorted(m.vmstat.items()):
        if v:
            out[f"vmstat {k}"] = str(v)
    for order, st in sorted(m.mthp_stats.items()):
        for k, v in sorted(st.items()):
            if v:
                out[f"mTHP order-{order} {k}"] = str(v)
    if m.swap is not None:
        out["swap slots in use"] = str(m.swap.inuse_pages)
    return out


def explain(c: Config, folio: int, a_name: str, a: Outcome, b_name: str, b: Outcome) -> list[str]:
    """Plain-words lines saying how b's result differs from a's."""
    if a.fault or b.fault:
        lines = []
        for name, o in ((a_name, a), (b_name, b)):
            if o.fault:
                lines.append(f"{name} faults: {o.fault}")
            else:
                lines.append(f"{name} completes without a fault")
        return lines
    ma, mb = a.machine, b.machine
    assert ma is not None and mb is not None
    lines: list[str] = []
    if a.fp[0] != b.fp[0]:
        lines.append(f"madvise: {a_name} {a.fp[0] or 'succeeds'}; {b_name} {b.fp[0] or 'succeeds'}")
    va, vb = page_views(ma, c), page_views(mb, c)
    lines.extend(_page_lines(c, va, vb, a_name, b_name))
    for what, fa, fb in (
        ("", _folio_words(ma, folio), _folio_words(mb, folio)),
        ("", _global_words(ma), _global_words(mb)),
    ):
        for key in sorted(set(fa) | set(fb), key=lambda k: (k not in fa, k)):
            x, y = (
                fa.get(key, "0" if "vmstat" in key or "mTHP" in key else "-"),
                fb.get(key, "0" if "vmstat" in key or "mTHP" in key else "-"),
            )
            if x != y:
                lines.append(f"{what}{key}: {a_name} {x}; {b_name} {y}")
    note = _batching_note(c, va, vb, a_name, b_name)
    if note:
        lines.insert(0, note)
    if not lines:
        lines.append(
            "the states differ outside what the plain-words view shows (see the fingerprints)"
        )
    return lines


def _page_lines(c, va, vb, a_name, b_name) -> list[str]:
    lines = []
    procs = sorted({p for p, _ in va} | {p for p, _ in vb})
    for p in procs:
        k = 0
        while k < c.nr:
            x, y = va.get((p, k)), vb.get((p, k))
            if x == y:
                k += 1
                continue
            e = k + 1
            while e < c.nr and va.get((p, e)) == x and vb.get((p, e)) == y and x != y:
                e += 1
            lines.append(_page_line(p, k, e, x, y, a_name, b_name, va))
            k = e
    return lines


def _page_line(p, k, e, x, y, a_name, b_name, va) -> str:
    where = f"{_pages(k, e)} of {p}"
    if x and y and x.state == y.state == "present" and y.writable and not x.writable:
        others = [q for (q, page), v in va.items() if page == k and q != p and v.state != "none"]
        if y.mapcount > 1 or others:
            shared = f" although shared with {', '.join(others)}" if others else " although shared"
            return (
                f"{where} now writable{shared} (mapcount {y.mapcount}) in {b_name}; "
                f"{a_name} restored {'them' if e - k > 1 else 'it'} read-only"
            )
    xs = _view_words(x) if x else "not mapped"
    ys = _view_words(y) if y else "not mapped"
    return f"{where}: {a_name} {xs}; {b_name} {ys}"


def _batching_note(c, va, vb, a_name, b_name) -> str:
    # The point of batching lazyfree large folios (354dffd29575, v6.15): one
    # re-dirtied page keeps the whole folio, all PTEs restored, while a walk
    # one PTE at a time discards the clean pages it meets before the dirty one.
    if not c.order or c.state != "lazyfree" or c.droppable:
        return ""
    pa = [va.get(("p0", k)) for k in range(c.nr)]
    pb = [vb.get(("p0", k)) for k in range(c.nr)]
    if not all(v and v.state == "present" for v in pa):
        return ""
    lost = [k for k, v in enumerate(pb) if v is None or v.state != "present"]
    if not lost or len(lost) == c.nr:
        return ""
    dirty_at = [k for k in range(c.nr) if c.page_pte(0, k) & DIRTY]
    return (
        f"{a_name} keeps the whole lazyfree folio: a re-dirtied page "
        f"({_pages(dirty_at[0], dirty_at[0] + 1) if dirty_at else 'PG_dirty'}) keeps all "
        f"{c.nr} PTEs, restored {'dirty' if all(v.dirty for v in pa) else 'as they were'}; "
        f"{b_name} discards the clean {_pages(lost[0], lost[-1] + 1)} it meets first and keeps "
        "the rest: the lazyfree batching of try_to_unmap_one() (354dffd29575, v6.15) is "
        "exactly this difference"
    )


def _data(v: PageView | None) -> str:
    # What `expect ... data` says a page holds: the label written, or zero.
    if v is None:
        return ""
    return {"its data": "data", "zeroes": "zero"}.get(v.holds, "garbage")


# --- the counterexample as a scenario ---------------------------------------------------

_MTHP_KB = {2: "16K", 3: "32K", 4: "64K", 5: "128K", 6: "256K", 7: "512K", 8: "1M"}


def _size(pages: int) -> str:
    kb = pages * 4
    return f"{kb // 1024}M" if kb % 1024 == 0 else f"{kb}K"


def _range(first: int, end: int) -> str:
    return str(first) if end - first == 1 else f"{first}-{end - 1}"


def scenario(c: Config, folio_view: dict, a_name: str, found_by: str) -> str:
    """A .scn building `c` where the language can, naming what it cannot, and
    expecting what `a_name` predicts (folio_view: page_views() of a's result)."""
    nr = c.nr
    needs: list[str] = []
    lines = [
        (
            f"# exhaustive: a minimal configuration on which {found_by.split()[2]} and "
            f"{found_by.split()[3]} differ."
        ),
        (
            f"# Expect: the outcome {a_name} predicts (the expect lines); needs lines below"
            " name what the language cannot say yet."
        ),
        "# See: try_to_unmap_one(), mm/rmap.c; shrink_folio_list(), mm/vmscan.c",
        f"# found by: {found_by}",
        f"# configuration: {describe(c)}",
        "thp never",
    ]
    if c.order:
        lines.append(f"mthp {_MTHP_KB[c.order]} always")
    if c.swap != "off":
        lines.append(f"swap {_size(max(16, 4 * nr if c.swap == 'free' else 2 * nr))}")
    else:
        lines.append("swap off")
    # LRU reclaim is the memcg's (docs/pressure.md): with swap off, anon memory is
    # not scanned (get_scan_count(): SCAN_FILE), so a ballast Z keeps the limit
    # out of reach and reclaim meets only lazyfree folios.  With swap, the passes
    # after the first would swap out a folio kept swap-backed: not one reclaim.
    # Only for one process: the lines below MADV_FREE after fork, which leaves
    # the children's PTEs dirty (memcg reclaim then sees them; pageout never does).
    by_memcg = (
        c.path == "lru"
        and c.swap == "off"
        and c.state == "lazyfree"
        and not c.droppable
        and c.nprocs == 1
    )
    if by_memcg:
        lines += ["mmap Z 256", "write Z all as ballast", "madvise Z all dontfork"]
    # mremap in p0 alone would leave the children's mapping at the old address.
    move = c.cut == "pgtable" and c.nprocs == 1
    if c.cut == "pgtable" and not move:
        needs.append(
            f"mremap A {nr} move offset {512 - c.split} in every process: the folio "
            "straddling a page-table boundary at one address in all"
        )
    offset = f" offset {512 - nr}" if c.pt_end else ""
    lines.append(f"mmap A {_size(nr)}{' droppable' if c.droppable else ''}{offset}")
    lines.append("write A all as data")
    split_vma = c.cut == "vma" and c.locked[0] == c.locked[1]
    split_line = f"madvise A {_range(c.split, nr)} hugepage  # splits the VMA"
    if split_vma and c.nprocs > 1:
        lines.append(split_line)  # before fork: the children's VMAs are split too
    for p in range(1, c.nprocs):
        lines.append(f"fork p{p}")
    if c.state == "lazyfree" and not c.droppable:
        lines.append("madvise A all free")
    if split_vma and c.nprocs == 1:
        # After MADV_FREE, which splits a folio that leaves the VMA it walks.
        lines.append(split_line)
    if move:
        # After MADV_FREE, which splits a folio it finds in two page tables.
        lines.append(f"mremap A {nr} move offset {512 - c.split}  # straddles a page table")
    parts = c.parts()
    for p in range(c.nprocs):
        pre = "" if p == 0 else f"p{p}: "
        for (s, e), code in zip(parts, c.ptes[p], strict=True):
            if not code:
                lines.append(f"{pre}madvise A {_range(s, e)} dontneed")
            elif code & SWAP:
                needs.append(
                    f"p{p} {_pages(s, e)} swapped out while the folio stays in the swap cache"
                )
            elif code & DEVICE:
                needs.append(
                    f"p{p} {_pages(s, e)} device-exclusive (HMM's make_device_exclusive(); no syscall)"
                )
            elif code & PRESENT and code & DIRTY and c.state == "lazyfree" and not c.droppable:
                lines.append(f"{pre}write A {_range(s, e)} as data")
            elif code & PRESENT and not code & DIRTY and (c.state != "lazyfree" or c.droppable):
                needs.append(f"p{p} {_pages(s, e)}: a clean PTE on a swap-backed folio")
            if code & SOFT_DIRTY:
                needs.append("soft-dirty PTEs (clear_refs; the model's faults do not set it)")
    if c.state == "swapcache":
        needs.append("the folio kept in the swap cache by an earlier reclaim")
    # A GUP write or reference goes through a page p0 maps (on an absent one GUP
    # would fault a new page in).
    held = next(
        (s for (s, _e), code in zip(parts, c.ptes[0], strict=True) if code & PRESENT), 0
    )
    if c.dirty and c.state == "lazyfree":
        lines.append(f"poke A {held} as data  # PG_dirty through a GUP write")
    elif c.dirty:
        needs.append("PG_dirty on the folio without a dirty PTE")
    if any(c.locked):
        for k, (s, e) in enumerate(parts if c.cut == "vma" else [(0, nr)]):
            if c.locked[k]:
                lines.append(f"mlock A {_range(s, e)}")
    for n, r in enumerate(c.refs):
        if r == "get":
            lines.append(f"gup A {held} as R{n}")
        else:
            needs.append("a held FOLL_PIN reference (io_uring fixed buffer, RDMA)")
    if c.swap == "full":
        lines.append(f"mmap F {_size(2 * nr - (nr if c.state == 'swapcache' else 0))}")
        lines.append("write F all as filler")
        lines.append("madvise F all pageout  # fills the swap device")
    if by_memcg:
        # MADV_COLD starts with lru_add_drain(): a small folio waiting in this CPU's
        # lru_lazyfree batch moves to the file list, which reclaim scans (of an
        # empty one, shrink_lruvec() calls nothing, so no drain of its own).
        lines.append("madvise Z 0 cold  # drains the lazyfree batch")
        lines.append("memcg limit 512K  # LRU reclaim; only A's folio can go: never met")
    else:
        if c.path == "lru":
            needs.append(
                "one pass of LRU reclaim (`memcg limit` reclaims, but repeats its passes "
                "over a swap-backed or droppable folio, and these lines leave a child's "
                "PTEs dirty); MADV_PAGEOUT stands in"
            )
        lines.append("madvise A all pageout")
    for p in range(c.nprocs):
        pre = "" if p == 0 else f"p{p}: "
        k = 0
        while k < nr:
            v = folio_view.get((f"p{p}", k))
            e = k + 1
            while e < nr and folio_view.get((f"p{p}", e)) == v:
                e += 1
            if v is not None:
                state = {"zero page": "present", "device-exclusive": "present"}.get(
                    v.state, v.state
                )
                lines.append(f"{pre}expect A {_range(k, e)} {state}")
            k = e
    for p in range(c.nprocs):
        pre = "" if p == 0 else f"p{p}: "
        k = 0
        while k < nr:
            v = folio_view.get((f"p{p}", k))
            e = k + 1
            while e < nr and _data(folio_view.get((f"p{p}", e))) == _data(v):
                e += 1
            if v is not None and _data(v):
                lines.append(f"{pre}expect A {_range(k, e)} data {_data(v)}")
            k = e
    seen = set()
    head = [ln for ln in lines[:5]]
    body = lines[5:]
    needs_lines = []
    for n in needs:
        if n not in seen:
            seen.add(n)
            needs_lines.append(f"# needs: {n}")
    return "\n".join(head + needs_lines + body) + "\n"
