"""The model backend: runs a parsed scenario on the model and observes it.

This is the model's syscall layer: each scenario command becomes the system
call (or user access) the kernel backend makes, entering the model's kernel
functions the way Linux's entry points do.
"""

from __future__ import annotations

from typing import Any

from foliosim.expect import expect_event
from foliosim.model.errors import InvariantError, SyscallError
from foliosim.model.fork import dup_mmap
from foliosim.model.gup import pin_user_pages_remote, unpin_user_pages_dirty_lock
from foliosim.model.machine import Machine, Trace
from foliosim.model.madvise import do_madvise
from foliosim.model.memory import handle_mm_fault
from foliosim.model.mlock import mlock_vma_pages_range, vma_is_mlockable
from foliosim.model.mmap import (
    do_mmap,
    do_munmap,
    exit_mmap,
    vma_split_range,
    vmas_in_range,
)
from foliosim.model.pipe import free_pipe_info
from foliosim.model.proc_page import get_kpage_count, stable_page_flags
from foliosim.model.profile import get_profile
from foliosim.model.splice import vmsplice_to_pipe
from foliosim.model.swap import SwapInfo, try_to_unuse
from foliosim.model.task_mmu import (
    folio_heads,
    mapping_pmd_mapped,
    mapping_ptes,
    pte_to_pagemap_entry,
    smaps_of_mapping,
)
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_WRITE,
    PTE_YOUNG,
    VM_LOCKED,
    Mm,
    PG_zero,
)
from foliosim.model.vmstat import vmstat_all
from foliosim.observation import FORMAT, VMSTAT_KEYS, mthp_size_name
from foliosim.scenario.ast import (
    MTHP_SIZES_KB,
    Command,
    Exit,
    ExpectData,
    ExpectSmaps,
    ExpectState,
    ExpectVmstat,
    Fork,
    Gup,
    Madvise,
    Mlock,
    Mmap,
    Mthp,
    Munlock,
    Munmap,
    Observe,
    Poke,
    Read,
    Release,
    Runs,
    Scenario,
    Swap,
    Thp,
    Write,
)

LABEL_SHIFT = 40
MAP_SHIFT = 24


def _order_of(size_kb: int) -> int:
    return (size_kb // 4).bit_length() - 1


class ModelBackend:
    """Runs scenarios on the model of Linux anonymous reclaim."""

    name = "model"

    def __init__(self, profile: str = "linux-6.18", check: bool = False) -> None:
        self.profile = get_profile(profile)
        self.check = check
        self.machine: Machine | None = None  # the last run's state, for tools

    def supports(self, feature: str) -> bool:
        return True

    def run(
        self, scenario: Scenario, trace: Trace | None = None, final: bool = True
    ) -> dict[str, Any]:
        """Run every command; return the observation (final=False skips the final STATE)."""
        run = _Run(self.profile, trace, self.check)
        # Size the memmap for every page the scenario maps once, so it rarely grows.
        run.m.mem.reserve(64 + sum(c.pages for c in scenario.commands if isinstance(c, Mmap)))
        self.machine = run.m
        events: list[dict[str, Any]] = []
        for cmd in scenario.commands:
            run.m.line = cmd.line
            events.extend(run.execute(cmd))
            if self.check:
                from foliosim.model.checks import validate_all

                try:
                    validate_all(run.m, run.shadow)
                except InvariantError as e:
                    raise InvariantError(
                        f"{scenario.name}:{cmd.line}: after '{cmd.text}': {e}"
                    ) from None
        return {
            "format": FORMAT,
            "scenario": scenario.name,
            "backend": {"name": "model", "profile": self.profile.name},
            "events": events,
            "final": run.state() if final else None,
        }


class _Run:
    """One scenario run: the machine plus the user-space side (tokens, refs)."""

    def __init__(self, profile: Any, trace: Trace | None, check: bool) -> None:
        self.m = Machine(profile, trace)
        self.m.mms["p0"] = Mm("p0")
        self.labels: dict[str, int] = {}
        self.label_names: list[str] = []
        self.map_ids: dict[str, int] = {}
        self.map_names: list[str] = []
        from foliosim.model.checks import Shadow

        self.shadow = Shadow() if check else None

    # -- content tokens -------------------------------------------------------------
    def token(self, label: str, name: str, index: int) -> int:
        lid = self.labels.get(label)
        if lid is None:
            lid = self.labels[label] = len(self.label_names) + 1
            self.label_names.append(label)
        mid = self.map_ids.get(name)
        if mid is None:
            mid = self.map_ids[name] = len(self.map_names)
            self.map_names.append(name)
        return (lid << LABEL_SHIFT) | (mid << MAP_SHIFT) | index

    def classify(self, tok: int, name: str, index: int) -> str:
        if tok == 0:
            return "zero"
        lid = tok >> LABEL_SHIFT
        mid = (tok >> MAP_SHIFT) & ((1 << (LABEL_SHIFT - MAP_SHIFT)) - 1)
        idx = tok & ((1 << MAP_SHIFT) - 1)
        if self.map_ids.get(name) == mid and idx == index:
            return self.label_names[lid - 1]
        return "garbage"

    # -- commands -------------------------------------------------------------------
    def execute(self, cmd: Command) -> list[dict[str, Any]]:
        m = self.m
        mm = m.mms.get(cmd.proc)
        if mm is None:
            raise InvariantError(f"no process {cmd.proc!r}")
        if isinstance(cmd, Thp):
            m.thp_enabled = cmd.mode
            m.thp_orders_cache.clear()
        elif isinstance(cmd, Mthp):
            m.mthp_enabled[_order_of(cmd.size_kb)] = cmd.mode
            m.thp_orders_cache.clear()
        elif isinstance(cmd, Swap):
            if m.swap is not None:
                try_to_unuse(m)
                m.swap = None
            if cmd.pages is not None:
                m.swap = SwapInfo(cmd.pages)
        elif isinstance(cmd, Mmap):
            do_mmap(m, mm, cmd.name, cmd.pages, cmd.droppable, cmd.offset)
            if self.shadow is not None:
                self.shadow.mmap(mm.name, cmd.name, cmd.pages, cmd.droppable)
        elif isinstance(cmd, Munmap):
            do_munmap(m, mm, cmd.name)
            if self.shadow is not None:
                self.shadow.munmap(mm.name, cmd.name)
        elif isinstance(cmd, (Write, Poke)):
            # A store from this process, or one through GUP from another (poke).
            store = self.user_write if isinstance(cmd, Write) else self.poke
            return self.per_run(
                cmd,
                "write" if isinstance(cmd, Write) else "poke",
                mm,
                cmd.name,
                cmd.runs,
                lambda s, e, first: store(mm, cmd.name, s, e, first, cmd.label),
            )
        elif isinstance(cmd, Read):
            return [
                {
                    "line": cmd.line,
                    "proc": cmd.proc,
                    "op": "read",
                    "map": cmd.name,
                    "data": self.user_read(mm, cmd.name, cmd.runs),
                }
            ]
        elif isinstance(cmd, Madvise):
            return self.per_run(
                cmd,
                "madvise",
                mm,
                cmd.name,
                cmd.runs,
                lambda s, e, first: self.madvise(mm, cmd.name, s, e, cmd.advice),
            )
        elif isinstance(cmd, Mlock):
            return self.per_run(
                cmd,
                "mlock",
                mm,
                cmd.name,
                cmd.runs,
                lambda s, e, first: self.do_mlock(mm, s, e, True),
            )
        elif isinstance(cmd, Munlock):
            return self.per_run(
                cmd,
                "munlock",
                mm,
                cmd.name,
                cmd.runs,
                lambda s, e, first: self.do_mlock(mm, s, e, False),
            )
        elif isinstance(cmd, Fork):
            dup_mmap(m, mm, cmd.child)
            if self.shadow is not None:
                self.shadow.fork(mm.name, cmd.child)
        elif isinstance(cmd, Exit):
            exit_mmap(m, mm)
            del m.mms[cmd.proc]
            if self.shadow is not None:
                self.shadow.exit(mm.name)
        elif isinstance(cmd, Gup):
            mp = mm.mappings[cmd.name]
            pages: list[int] = []
            m.gup_refs[cmd.ref] = pages
            for first, last in cmd.runs:
                pages.extend(vmsplice_to_pipe(m, mm, mp.start + first, mp.start + last + 1))
        elif isinstance(cmd, Release):
            free_pipe_info(m, m.gup_refs.pop(cmd.ref))
        elif isinstance(cmd, Observe):
            return [
                {
                    "line": cmd.line,
                    "proc": cmd.proc,
                    "op": "observe",
                    "label": cmd.label,
                    "state": self.state(),
                }
            ]
        elif isinstance(cmd, ExpectData):
            data = self.user_read(mm, cmd.name, cmd.runs)
            return [expect_event(cmd, {}, {}, data)]
        elif isinstance(cmd, (ExpectState, ExpectSmaps)):
            return [expect_event(cmd, self.state(only=cmd.proc), {})]
        elif isinstance(cmd, ExpectVmstat):
            return [expect_event(cmd, {}, vmstat_all(m))]
        else:
            raise InvariantError(f"unknown command {cmd!r}")
        return []

    def per_run(
        self, cmd: Command, op: str, mm: Mm, name: str, runs: Runs, call: Any
    ) -> list[dict[str, Any]]:
        """One syscall per contiguous run, in order; the first failure ends the line."""
        start = mm.mappings[name].start
        for first, last in runs:
            try:
                call(start + first, start + last + 1, first)
            except SyscallError as e:
                if self.m.tracing:
                    self.m.trace(op, f"failed: {e.errno}")
                return [
                    {"line": cmd.line, "proc": cmd.proc, "op": op, "map": name, "error": e.errno}
                ]
        return []

    def user_write(self, mm: Mm, name: str, start: int, end: int, first: int, label: str) -> None:
        """Stores from user space: a fault where the PTE does not allow it, then the store."""
        m = self.m
        data = m.mem.data
        base = self.token(label, name, first) - start  # + vpn: the page's token
        t = None
        for vpn in range(start, end):
            if t is None or not vpn & 511:
                t = mm.pte_table(vpn)
            i = vpn & 511
            if t is None or not t.bits[i] & PTE_WRITE:
                pmd = mm.pmds.get(vpn >> 9) if t is None else None
                if pmd is None or not pmd[0] & PTE_WRITE:
                    handle_mm_fault(m, mm.find_vma(vpn), vpn, write=True)
                t = mm.pte_table(vpn)
                if t is None:
                    # A store through a huge PMD.
                    pmd = mm.pmds[vpn >> 9]
                    pmd[0] |= PTE_DIRTY | PTE_YOUNG
                    data[pmd[1] + i] = base + vpn
                    continue
            t.bits[i] |= PTE_DIRTY | PTE_YOUNG  # the MMU sets them on the store
            data[t.pfn[i]] = base + vpn
        self._shadow_store(mm, name, first, end - start, label)

    def user_read(self, mm: Mm, name: str, runs: Runs) -> list[str]:
        """Loads from user space: a read fault where nothing is mapped."""
        m = self.m
        start = mm.mappings[name].start
        out = []
        for first, last in runs:
            for idx in range(first, last + 1):
                vpn = start + idx
                t = mm.pte_table(vpn)
                i = vpn & 511
                if t is None or not int(t.bits[i]) & PTE_PRESENT:
                    if t is not None or (vpn >> 9) not in mm.pmds:
                        handle_mm_fault(m, mm.find_vma(vpn), vpn, write=False)
                    t = mm.pte_table(vpn)
                    if t is None:
                        # A load through a huge PMD.
                        pmd = mm.pmds[vpn >> 9]
                        pmd[0] |= PTE_YOUNG
                        out.append(self.classify(int(m.mem.data[pmd[1] + i]), name, idx))
                        continue
                t.bits[i] |= PTE_YOUNG
                out.append(self.classify(int(m.mem.data[int(t.pfn[i])]), name, idx))
        return out

    def madvise(self, mm: Mm, name: str, start: int, end: int, advice: str) -> None:
        first = start - mm.mappings[name].start
        if self.shadow is not None:
            # A call that fails at a later VMA has already done the earlier ones.
            self.shadow.may_drop(mm.name, name, first, first + end - start, advice)
        do_madvise(self.m, mm, start, end, advice)
        if self.shadow is not None:
            self.shadow.madvise(mm.name, name, first, first + end - start, advice)

    def do_mlock(self, mm: Mm, start: int, end: int, lock: bool) -> None:
        """do_mlock() / sys_munlock() -> mlock_fixup(), mm/mlock.c, Linux 6.18."""
        from foliosim.model.gup import populate_vma_page_range

        m = self.m
        # No lru_add_drain_all() here: do_mlock() (mm/mlock.c, 6.18) has none;
        # mlock_vma_pages_range() drains this CPU's batches around its walk.
        for vma in vmas_in_range(mm, start, end):
            if lock and not vma_is_mlockable(vma):
                continue  # VM_DROPPABLE: VM_LOCKED is never set
            newflags = (vma.flags | VM_LOCKED) if lock else (vma.flags & ~VM_LOCKED)
            if newflags == vma.flags:
                continue
            s, e = max(start, vma.start), min(end, vma.end)
            mlock_vma_pages_range(m, vma_split_range(m, vma, s, e), s, e, newflags)
        if lock:
            # __mm_populate(): populate_vma_page_range() on each VMA of the range.
            for vma in vmas_in_range(mm, start, end):
                populate_vma_page_range(m, vma, max(start, vma.start), min(end, vma.end))

    def poke(self, mm: Mm, name: str, start: int, end: int, first: int, label: str) -> None:
        """process_vm_writev() from another process: pin, copy, unpin dirty."""
        m = self.m
        pages = pin_user_pages_remote(m, mm, start, end)
        for k, pfn in enumerate(pages):
            m.mem.data[pfn] = self.token(label, name, first + k)
        unpin_user_pages_dirty_lock(m, pages)
        self._shadow_store(mm, name, first, end - start, label)

    def _shadow_store(self, mm: Mm, name: str, first: int, nr: int, label: str) -> None:
        # What user space stored, for validate_no_data_loss() under --check.
        if self.shadow is not None:
            tokens = [self.token(label, name, first + k) for k in range(nr)]
            self.shadow.write(mm.name, name, first, first + nr, tokens)

    # -- observation ----------------------------------------------------------------
    def state(self, only: str | None = None) -> dict[str, Any]:
        m = self.m
        procs: dict[str, Any] = {}
        for pname, mm in m.mms.items():
            if only is not None and pname != only:
                continue
            maps = {}
            for name, mp in mm.mappings.items():
                maps[name] = {
                    "smaps": smaps_of_mapping(m, mm, mp),
                    "pages": self.pages(mm, mp.start, mp.pages),
                }
            procs[pname] = {"maps": maps}
        vmstat = {k: int(m.vmstat.get(k, 0)) for k in VMSTAT_KEYS}
        mthp = {}
        for kb in MTHP_SIZES_KB:
            stats = m.mthp_stats.get(_order_of(kb), {})
            # The stats files of the profile's build: none it lacks is reported.
            keys = m.profile.mthp_stat_keys
            mthp[mthp_size_name(kb)] = {k: int(stats.get(k, 0)) for k in keys}
        return {"vmstat": vmstat, "mthp": mthp, "procs": procs}

    def pages(self, mm: Mm, start: int, nr: int) -> list[dict[str, Any]]:
        m = self.m
        bits, pfn = mapping_ptes(mm, start, nr)
        pmd_mapped = mapping_pmd_mapped(mm, start, nr) if mm.pmds else None
        present, swap, exclusive = pte_to_pagemap_entry(m, bits, pfn, pmd_mapped)
        heads = folio_heads(m, pfn)
        out = []
        none_page = {"state": "none", "exclusive": False, "soft_dirty": False}
        for k in range(nr):
            if present[k]:
                p = int(pfn[k])
                folio = int(heads[k])
                out.append(
                    {
                        "state": "present",
                        "exclusive": bool(exclusive[k]),
                        "soft_dirty": False,
                        "flags": stable_page_flags(m, p, folio),
                        "mapcount": get_kpage_count(m, p, folio),
                        # The zero pages (huge one included) report order 0.
                        "order": 0 if m.mem.flags[p] & PG_zero else int(m.mem.order[folio]),
                    }
                )
            elif swap[k]:
                out.append({"state": "swap", "exclusive": False, "soft_dirty": False})
            else:
                out.append(dict(none_page))
        return out
