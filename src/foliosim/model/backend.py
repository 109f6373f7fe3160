"""The model backend: runs a parsed scenario on the model and observes it.

Each command's handler makes the system call (or user access) the kernel
backend's worker makes, by calling the model's entry point for it:

    mmap / munmap       do_mmap(), do_munmap()            mmap.py     mm/mmap.c
    madvise             do_madvise()                      madvise.py  mm/madvise.c
    mlock / munlock     do_mlock(), sys_munlock()         mlock.py    mm/mlock.c
    mlockall/munlockall sys_mlockall(), sys_munlockall()  mlock.py    mm/mlock.c
    fork                kernel_clone()                    fork.py     kernel/fork.c
    exit                do_exit()                         exit.py     kernel/exit.c
    gup                 vmsplice_to_pipe()                splice.py   fs/splice.c
    release             free_pipe_info()                  pipe.py     fs/pipe.c
    poke                process_vm_rw_core()    process_vm_access.py  mm/process_vm_access.c
    swap                sys_swapon(), sys_swapoff()       swap.py     mm/swapfile.c
    thp / mthp          enabled_store(), thpsize_enabled_store()  huge_memory.py
    write / read        stores and loads: user.py (faults: do_user_addr_fault(), fault.py)
    mprotect            do_mprotect_pkey()                mprotect.py mm/mprotect.c
    mremap              do_mremap()                       mremap.py   mm/mremap.c
    expect result       the outcome recorded for the line it names
    pin                 io_sqe_buffer_register()    io_uring_rsrc.py  io_uring/rsrc.c
    release (a pin)     io_release_ubuf()           io_uring_rsrc.py  io_uring/rsrc.c
    process_madvise     sys_process_madvise()             madvise.py  mm/madvise.c

A new system call gets its entry point in the module of its kernel file and a
handler here.  STATE is read by observe.py; --check bookkeeping is checks.Shadow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from foliosim.dispatch import Event, error_event, execute, oom_kill_event, skipped_event
from foliosim.expect import expect_event
from foliosim.model import (
    capability,
    exit,
    fork,
    huge_memory,
    io_uring_rsrc,
    madvise,
    memcontrol,
    mlock,
    mmap,
    mprotect,
    pipe,
    process_vm_access,
    splice,
    swap,
    vmstat,
)
from foliosim.model.checks import Shadow, validate_all
from foliosim.model.errors import (
    AccessError,
    InvariantError,
    NotModelled,
    OomKilled,
    SyscallError,
)
from foliosim.model.machine import Machine, Trace
from foliosim.model.observe import mthp_order, read_state
from foliosim.model.profile import get_profile
from foliosim.model.types import VM_LOCKED, VM_LOCKONFAULT, Mm
from foliosim.model.user import UserProgram
from foliosim.observation import FORMAT
from foliosim.scenario.ast import (
    Command,
    Exit,
    ExpectData,
    ExpectExclusive,
    ExpectFlags,
    ExpectMapcount,
    ExpectOrder,
    ExpectResult,
    ExpectRefData,
    ExpectMemcg,
    ExpectOomKill,
    ExpectSmaps,
    ExpectState,
    ExpectVmstat,
    Fork,
    Gup,
    Madvise,
    MemcgLimit,
    MemcgReclaim,
    MemcgSwappiness,
    Mlock,
    Mlockall,
    Mmap,
    Mprotect,
    Mremap,
    Mthp,
    Munlock,
    Munlockall,
    Munmap,
    Observe,
    Pin,
    Poke,
    ProcessMadvise,
    Read,
    Release,
    Runs,
    Scenario,
    Swap,
    Thp,
    Write,
    PAGE_SIZE,
    runs_count,
    runs_pages,
    RUN_AFTER_OOM_KILL,
    scenario_uses_memcg,
)
from foliosim.scenario.errors import ScenarioError


class ModelBackend:
    """Runs scenarios on the model of Linux anonymous reclaim."""

    name = "model"

    def __init__(self, profile: str = "linux-6.18", check: bool = False) -> None:
        self.profile = get_profile(profile)
        self.check = check
        self.machine: Machine | None = None  # the last run's state, for tools

    def run(
        self, scenario: Scenario, trace: Trace | None = None, final: bool = True
    ) -> dict[str, Any]:
        """Run every command; return the observation (final=False skips the final STATE)."""
        m = self.machine = Machine(self.profile, trace)
        m.cap_effective = capability.cap_effective_of_caller()
        m.mms["p0"] = Mm("p0")
        self.user = UserProgram(m)
        self.shadow = Shadow() if self.check else None
        # REF -> (mapping, page index) of each page it holds, in its page order.
        self.ref_pages: dict[str, list[tuple[str, int]]] = {}
        # Size the memmap for every page the scenario maps once, so it rarely grows.
        m.mem.reserve(64 + sum(c.pages for c in scenario.commands if isinstance(c, Mmap)))
        m.memcg.observed = scenario_uses_memcg(scenario.commands)
        events: list[Event] = []
        self.line_errors: dict[int, str] = {}  # line -> its error, for `expect result`
        killed: dict[str, int] = {}  # memcg OOM victims -> the line of their kill
        for cmd in scenario.commands:
            m.line = cmd.line
            m.current = cmd.proc  # the command's system calls and accesses run in its task
            if cmd.proc in killed and not isinstance(cmd, RUN_AFTER_OOM_KILL):
                events.append(skipped_event(cmd, killed[cmd.proc]))
                continue
            if cmd.proc not in m.mms and cmd.proc not in killed:
                raise InvariantError(f"no process {cmd.proc!r}")
            nkills = len(m.memcg.oom_kills)
            try:
                new = execute(self, cmd)
            except NotModelled as e:
                raise ScenarioError(scenario.path, cmd.line, 1, f"model: {e}") from None
            except OomKilled as e:
                # The line's own task was the victim: its command ends at the fault.
                exit.do_exit(m, m.mms[e.victim])
                new = []
            for victim in m.memcg.oom_kills[nkills:]:
                killed[victim] = cmd.line
                new.append(oom_kill_event(cmd, victim))
                if self.shadow is not None:
                    self.shadow.exit(victim)
            for ev in new:
                if "error" in ev:
                    self.line_errors.setdefault(ev["line"], ev["error"])
            events.extend(new)
            if self.shadow is not None:
                try:
                    validate_all(m, self.shadow)
                except InvariantError as e:
                    raise InvariantError(
                        f"{scenario.name}:{cmd.line}: after '{cmd.text}': {e}"
                    ) from None
        return {
            "format": FORMAT,
            "scenario": scenario.name,
            "backend": {"name": "model", "profile": self.profile.name},
            "events": events,
            "final": read_state(m) if final else None,
        }

    # -- helpers --------------------------------------------------------------------

    @property
    def m(self) -> Machine:
        assert self.machine is not None, "a handler runs inside run()"
        return self.machine

    def _mm(self, cmd: Command) -> Mm:
        return self.m.mms[cmd.proc]

    def _per_run(
        self, cmd: Command, op: str, name: str, runs: Runs, call: Callable[[int, int, int], None]
    ) -> list[Event]:
        # One syscall per contiguous run, in order; the first failure ends the line.
        start = self._mm(cmd).mappings[name].start
        for first, last in runs:
            try:
                call(start + first, start + last + 1, first)
            except SyscallError as e:
                if self.m.tracing:
                    self.m.trace(op, f"failed: {e.errno}")
                ev = error_event(cmd, op, e.errno, name)
                if isinstance(e, AccessError):
                    ev["page"] = e.vpn - start  # where the access stopped
                return [ev]
        return []

    def _shadow_store(self, proc: str, name: str, first: int, nr: int, label: str) -> None:
        # What user space stored, for validate_no_data_loss() under --check.
        if self.shadow is not None:
            tokens = self.user.tokens(label, name, first, nr)
            self.shadow.write(proc, name, first, first + nr, tokens)

    # -- settings -------------------------------------------------------------------

    def cmd_thp(self, cmd: Thp) -> list[Event]:
        huge_memory.enabled_store(self.m, cmd.mode)
        return []

    def cmd_mthp(self, cmd: Mthp) -> list[Event]:
        if not self.m.profile.has("mthp_sysfs"):
            # Before multi-size THP (v6.8) there is no hugepages-<size>kB/enabled to write.
            return [error_event(cmd, "mthp", "ENOENT")]
        huge_memory.thpsize_enabled_store(self.m, mthp_order(cmd.size_kb), cmd.mode)
        return []

    def cmd_swap(self, cmd: Swap) -> list[Event]:
        if self.m.swap is not None:
            swap.sys_swapoff(self.m)
        if cmd.pages is not None:
            swap.sys_swapon(self.m, cmd.pages)
        return []

    # -- system calls and user accesses ---------------------------------------------

    def cmd_mmap(self, cmd: Mmap) -> list[Event]:
        mm = self._mm(cmd)
        prot = mprotect.PROT_VM_FLAGS[cmd.prot]
        try:
            mmap.do_mmap(self.m, mm, cmd.name, cmd.pages, cmd.droppable, cmd.offset, prot)
        except SyscallError as e:
            return [error_event(cmd, "mmap", e.errno, cmd.name)]
        if self.shadow is not None:
            self.shadow.mmap(mm.name, cmd.name, cmd.pages, cmd.droppable)
        return []

    def cmd_munmap(self, cmd: Munmap) -> list[Event]:
        mm = self._mm(cmd)
        if cmd.runs is not None:
            # munmap NAME RANGE: one munmap(2) a run; the mapping stays, with holes.
            start = mm.mappings[cmd.name].start
            for first, last in cmd.runs:
                mmap.do_vmi_munmap(self.m, mm, start + first, start + last + 1)
                if self.shadow is not None:
                    self.shadow.munmap_range(mm.name, cmd.name, first, last + 1)
            return []
        mmap.do_munmap(self.m, mm, cmd.name)
        if self.shadow is not None:
            self.shadow.munmap(mm.name, cmd.name)
        return []

    def cmd_write(self, cmd: Write) -> list[Event]:
        mm = self._mm(cmd)

        def store(start: int, end: int, first: int) -> None:
            try:
                self.user.user_write(mm, cmd.name, start, end, first, cmd.label)
            except AccessError as e:
                self._shadow_store(cmd.proc, cmd.name, first, e.vpn - start, cmd.label)
                raise
            self._shadow_store(cmd.proc, cmd.name, first, end - start, cmd.label)

        return self._per_run(cmd, "write", cmd.name, cmd.runs, store)

    def cmd_poke(self, cmd: Poke) -> list[Event]:
        # A store through GUP from another process: process_vm_writev(), one call
        # a page, as the kernel backend's helper makes them.
        mm = self._mm(cmd)

        def poke(start: int, end: int, first: int) -> None:
            data = self.user.tokens(cmd.label, cmd.name, first, end - start)
            for k in range(end - start):
                try:
                    process_vm_access.process_vm_rw_core(
                        self.m, mm, start + k, start + k + 1, data[k : k + 1]
                    )
                except AccessError:
                    self._shadow_store(cmd.proc, cmd.name, first, k, cmd.label)
                    raise
            self._shadow_store(cmd.proc, cmd.name, first, end - start, cmd.label)

        # The helper process makes the call: GUP's faults count on it (mm_account_fault()).
        self.m.current = None
        try:
            return self._per_run(cmd, "poke", cmd.name, cmd.runs, poke)
        finally:
            self.m.current = cmd.proc

    def cmd_read(self, cmd: Read) -> list[Event]:
        mm = self._mm(cmd)
        try:
            data = self.user.user_read(mm, cmd.name, cmd.runs)
        except AccessError as e:
            ev = error_event(cmd, "read", e.errno, cmd.name)
            ev["page"] = e.vpn - mm.mappings[cmd.name].start
            return [ev]
        return [{"line": cmd.line, "proc": cmd.proc, "op": "read", "map": cmd.name, "data": data}]

    def cmd_madvise(self, cmd: Madvise) -> list[Event]:
        mm = self._mm(cmd)

        def advise(start: int, end: int, first: int) -> None:
            if self.shadow is not None:
                # A call that fails at a later VMA has already done the earlier ones.
                self.shadow.may_drop(mm.name, cmd.name, first, first + end - start, cmd.advice)
            madvise.do_madvise(self.m, mm, start, end, cmd.advice)
            if self.shadow is not None:
                self.shadow.madvise(mm.name, cmd.name, first, first + end - start, cmd.advice)

        return self._per_run(cmd, "madvise", cmd.name, cmd.runs, advise)

    def cmd_mlock(self, cmd: Mlock) -> list[Event]:
        mm = self._mm(cmd)
        # mlock(2), or mlock2(MLOCK_ONFAULT): VM_LOCKED | VM_LOCKONFAULT.
        flags = VM_LOCKED | (VM_LOCKONFAULT if cmd.onfault else 0)
        return self._per_run(
            cmd,
            "mlock",
            cmd.name,
            cmd.runs,
            lambda s, e, _first: mlock.do_mlock(self.m, mm, s, e, flags),
        )

    def cmd_mlockall(self, cmd: Mlockall) -> list[Event]:
        flags = (
            (mlock.MCL_CURRENT if cmd.current else 0)
            | (mlock.MCL_FUTURE if cmd.future else 0)
            | (mlock.MCL_ONFAULT if cmd.onfault else 0)
        )
        mlock.sys_mlockall(self.m, self._mm(cmd), flags)
        return []

    def cmd_munlockall(self, cmd: Munlockall) -> list[Event]:
        mlock.sys_munlockall(self.m, self._mm(cmd))
        return []

    def cmd_munlock(self, cmd: Munlock) -> list[Event]:
        mm = self._mm(cmd)
        return self._per_run(
            cmd,
            "munlock",
            cmd.name,
            cmd.runs,
            lambda s, e, _first: mlock.sys_munlock(self.m, mm, s, e),
        )

    def cmd_fork(self, cmd: Fork) -> list[Event]:
        mm = self._mm(cmd)
        fork.kernel_clone(self.m, mm, cmd.child)
        if self.shadow is not None:
            self.shadow.fork(mm.name, cmd.child)
        return []

    def cmd_exit(self, cmd: Exit) -> list[Event]:
        exit.do_exit(self.m, self._mm(cmd))
        if self.shadow is not None:
            self.shadow.exit(cmd.proc)
        return []

    def cmd_gup(self, cmd: Gup) -> list[Event]:
        # vmsplice() of each run into a pipe the runner holds: GUP references.
        mm = self._mm(cmd)
        start = mm.mappings[cmd.name].start
        pages: list[int] = []
        self.m.gup_refs[cmd.ref] = pages
        self.ref_pages[cmd.ref] = []
        # The pipe is made first and grown to hold every page (F_SETPIPE_SZ of the
        # power of two both harnesses ask for, at least 64K): past pipe-max-size that
        # needs CAP_SYS_RESOURCE, and the line fails before any vmsplice().
        want = 1 << max(16, (runs_count(cmd.runs) * PAGE_SIZE - 1).bit_length())
        try:
            pipe.pipe_set_size(self.m, pipe.PIPE_DEF_BUFFERS, want)
        except SyscallError as e:
            return [error_event(cmd, "gup", e.errno, cmd.name)]
        for first, last in cmd.runs:
            try:
                pages.extend(splice.vmsplice_to_pipe(self.m, mm, start + first, start + last + 1))
            except AccessError as e:
                pages.extend(e.pages)  # what was spliced before stays in the pipe
                self.ref_pages[cmd.ref] = [(cmd.name, i) for i in runs_pages(cmd.runs)][
                    : len(pages)
                ]
                ev = error_event(cmd, "gup", e.errno, cmd.name)
                ev["page"] = e.vpn - start
                return [ev]
        self.ref_pages[cmd.ref] = [(cmd.name, i) for i in runs_pages(cmd.runs)][: len(pages)]
        return []

    def cmd_release(self, cmd: Release) -> list[Event]:
        self.ref_pages.pop(cmd.ref, None)
        bufs = self.m.pins.pop(cmd.ref, None)
        if bufs is not None:
            # IORING_UNREGISTER_BUFFERS: io_rsrc_data_free() -> io_release_ubuf().
            for imu in bufs:
                io_uring_rsrc.io_release_ubuf(self.m, imu)
            return []
        pipe.free_pipe_info(self.m, self.m.gup_refs.pop(cmd.ref))
        return []

    # -- references: long-term pins, what a reference holds, process_madvise -------

    def cmd_pin(self, cmd: Pin) -> list[Event]:
        # IORING_REGISTER_BUFFERS of each run (a ring of its own), in order; the first
        # failure ends the line, the runs before it stay pinned.
        mm = self._mm(cmd)
        start = mm.mappings[cmd.name].start
        bufs: list[io_uring_rsrc.IoMappedUbuf] = []
        self.m.pins[cmd.ref] = bufs
        self.ref_pages[cmd.ref] = []

        def register(s: int, e: int, first: int) -> None:
            bufs.append(
                io_uring_rsrc.io_sqe_buffer_register(self.m, mm, s, e, write=not cmd.readonly)
            )
            self.ref_pages[cmd.ref] += [(cmd.name, first + k) for k in range(e - s)]

        return self._per_run(cmd, "pin", cmd.name, cmd.runs, register)

    def cmd_expect_ref_data(self, cmd: ExpectRefData) -> list[Event]:
        # What the reference holds, whatever the page tables say now: a gup's pages
        # still in the pipe, a pin's registered buffer (read by IORING_OP_WRITE_FIXED).
        bufs = self.m.pins.get(cmd.ref)
        pfns = (
            [p for imu in bufs for p in imu.pages]
            if bufs is not None
            else self.m.gup_refs[cmd.ref]
        )
        data = [
            self.user.classify(int(self.m.mem.data[pfn]), name, idx)
            for pfn, (name, idx) in zip(pfns, self.ref_pages[cmd.ref], strict=True)
        ]
        return [expect_event(cmd, {}, {}, data)]

    def cmd_process_madvise(self, cmd: ProcessMadvise) -> list[Event]:
        mm = self.m.mms[cmd.target]
        start = mm.mappings[cmd.name].start
        ranges = [(start + a, start + b + 1) for a, b in cmd.runs]
        try:
            madvise.sys_process_madvise(self.m, self._mm(cmd), mm, ranges, cmd.advice)
        except SyscallError as e:
            return [error_event(cmd, "process_madvise", e.errno, cmd.name)]
        return []

    # -- observing ------------------------------------------------------------------

    def cmd_observe(self, cmd: Observe) -> list[Event]:
        state = read_state(self.m)
        return [
            {
                "line": cmd.line,
                "proc": cmd.proc,
                "op": "observe",
                "label": cmd.label,
                "state": state,
            }
        ]

    def cmd_expect_data(self, cmd: ExpectData) -> list[Event]:
        try:
            data: list[str] | None = self.user.user_read(self._mm(cmd), cmd.name, cmd.runs)
        except AccessError:
            data = None  # the load faulted: nothing to compare
        return [expect_event(cmd, {}, {}, data)]

    def cmd_expect_state(self, cmd: ExpectState) -> list[Event]:
        return [expect_event(cmd, read_state(self.m, only=cmd.proc), {})]

    def cmd_expect_smaps(self, cmd: ExpectSmaps) -> list[Event]:
        return [expect_event(cmd, read_state(self.m, only=cmd.proc), {})]

    def cmd_expect_vmstat(self, cmd: ExpectVmstat) -> list[Event]:
        return [expect_event(cmd, {}, vmstat.vmstat_all(self.m))]


    # -- page expectations: order, mapcount, exclusive, flags -------------------------

    def _expect_page(self, cmd: Command) -> list[Event]:
        return [expect_event(cmd, read_state(self.m, only=cmd.proc), {})]

    def cmd_expect_order(self, cmd: ExpectOrder) -> list[Event]:
        return self._expect_page(cmd)

    def cmd_expect_mapcount(self, cmd: ExpectMapcount) -> list[Event]:
        return self._expect_page(cmd)

    def cmd_expect_exclusive(self, cmd: ExpectExclusive) -> list[Event]:
        return self._expect_page(cmd)

    def cmd_expect_flags(self, cmd: ExpectFlags) -> list[Event]:
        return self._expect_page(cmd)
    # -- memcg (issue 13) -------------------------------------------------------------

    def _memcg(self, cmd: Command, call: Callable[[], None]) -> list[Event]:
        try:
            call()
        except SyscallError as e:
            return [error_event(cmd, "memcg", e.errno)]
        return []

    def cmd_memcg_limit(self, cmd: MemcgLimit) -> list[Event]:
        return self._memcg(cmd, lambda: memcontrol.mem_cgroup_resize_max(self.m, cmd.pages))

    def cmd_memcg_reclaim(self, cmd: MemcgReclaim) -> list[Event]:
        return self._memcg(cmd, lambda: memcontrol.memcg_reclaim_v1(self.m, cmd.pages))

    def cmd_memcg_swappiness(self, cmd: MemcgSwappiness) -> list[Event]:
        self.m.memcg.swappiness = cmd.value  # mem_cgroup_swappiness_write(), memcontrol-v1.c
        return []

    def cmd_expect_memcg(self, cmd: ExpectMemcg) -> list[Event]:
        # usage and failcnt are not modelled (kernel memory, the charge stock): got null.
        return [expect_event(cmd, memcontrol.memcg_state(self.m), {})]

    def cmd_expect_oom_kill(self, cmd: ExpectOomKill) -> list[Event]:
        return [expect_event(cmd, {}, {}, victims=self.m.memcg.oom_kills)]

    # -- protections, partial unmaps, mremap, results --------------------------------

    def cmd_mprotect(self, cmd: Mprotect) -> list[Event]:
        mm = self._mm(cmd)
        prot = mprotect.PROT_VM_FLAGS[cmd.prot]
        return self._per_run(
            cmd,
            "mprotect",
            cmd.name,
            cmd.runs,
            lambda s, e, _first: mprotect.do_mprotect_pkey(self.m, mm, s, e, prot),
        )

    def cmd_mremap(self, cmd: Mremap) -> list[Event]:
        from foliosim.model import mremap

        mm = self._mm(cmd)
        try:
            mremap.do_mremap(self.m, mm, cmd.name, cmd.pages, cmd.move, cmd.offset)
        except SyscallError as e:
            if self.m.tracing:
                self.m.trace("mremap", f"failed: {e.errno}")
            return [error_event(cmd, "mremap", e.errno, cmd.name)]
        if self.shadow is not None:
            self.shadow.mremap(mm.name, cmd.name, cmd.pages)
        return []

    def cmd_expect_result(self, cmd: ExpectResult) -> list[Event]:
        return [expect_event(cmd, {}, {}, result=self.line_errors.get(cmd.of_line, "ok"))]
