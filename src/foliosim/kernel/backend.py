"""Run a parsed scenario on this machine's live Linux and observe it from outside.

Each scenario process is a small C worker (worker.c) pinned to the last CPU;
the runner (this module) stays on the other CPUs and reads /proc and /sys, so
observing never touches a page nor a per-CPU folio batch of the scenario's CPU.
See docs/kernel-backend.md.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import shutil
import signal
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from foliosim.dispatch import Trace, error_event, execute, oom_kill_event, skipped_event
from foliosim.expect import expect_event
from foliosim.kernel import memcg, procfs
from foliosim.kernel.build import worker_binary
from foliosim.kernel.errors import KernelBackendError
from foliosim.kernel import uring
from foliosim.kernel.settings import ZRAM_DEV, ZRAM_DIR, RunLock, Settings, active_swaps
from foliosim.kernel.worker import (
    OP_DRAIN_ALL,
    OP_DRAIN_LRU_ADD,
    OP_GUP_BEGIN,
    OP_GUP_SPLICE,
    OP_MADVISE,
    OP_MEMCG_FLUSH,
    OP_MEMCG_WRITE,
    OP_MLOCK,
    OP_MLOCK2,
    OP_MLOCKALL,
    OP_MMAP,
    OP_MPROTECT,
    OP_MREMAP,
    OP_MUNLOCK,
    OP_MUNLOCKALL,
    OP_MUNMAP,
    OP_PIN,
    OP_POKE,
    OP_PROCESS_MADVISE,
    OP_WRITE,
    NAME_LEN,
    Worker,
    WorkerError,
)
from foliosim.observation import FORMAT, KPF_BITS, VMSTAT_KEYS, kpageflags_names, mthp_size_name
from foliosim.scenario.ast import (
    MTHP_SIZES_KB,
    PAGE_SIZE,
    Command,
    Exit,
    ExpectData,
    ExpectExclusive,
    ExpectFlags,
    ExpectMapcount,
    ExpectOrder,
    ExpectMemcg,
    ExpectOomKill,
    ExpectResult,
    ExpectRefData,
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
    runs_count,
    runs_pages,
    RUN_AFTER_OOM_KILL,
    scenario_uses_memcg,
)

# include/uapi/asm-generic/mman-common.h
MADV = {
    "free": 8,
    "dontneed": 4,
    "pageout": 21,
    "cold": 20,
    "willneed": 3,
    "hugepage": 14,
    "nohugepage": 15,
    "populate_read": 22,
    "populate_write": 23,
    "dontfork": 10,
    "dofork": 11,
    "wipeonfork": 18,
    "keeponfork": 19,
    "collapse": 25,
}
MAP_DROPPABLE = 0x08
MAP_ANONYMOUS = 0x20
PROT_READ_WRITE = 0x3
# The scenario's protections: PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE.
PROT = {"none": 0x0, "read": 0x1, "readwrite": 0x3}

SLOT_ALIGN = 2 << 20
# Far from the heap, the libraries and the stack of a 47-bit address space.
SLOT_BASE = 0x200000000000
# Where every scenario slot lies, whatever the scenario (the worker's own memory is
# elsewhere: the binary, heap and libraries at 0x55.../0x7f..., the stack at the top).
SLOT_SPAN = 0x100000000000
# include/uapi/asm-generic/mman-common.h
MLOCK_ONFAULT = 0x01
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


@dataclass
class Mapping:
    name: str
    addr: int
    pages: int
    mapped: bool  # False: its mmap failed, so it is absent from STATE

    @property
    def end(self) -> int:
        return self.addr + self.pages * PAGE_SIZE


@dataclass
class PinnedRun:
    """One pinned run: its ring (whose fixed buffer 0 it is) and where its pages came from."""

    ring: uring.Ring
    addr: int
    mapname: str
    first: int  # page index of addr in the mapping
    pages: int


@dataclass
class Proc:
    name: str
    worker: Worker
    maps: dict[str, Mapping] = field(default_factory=dict)


class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _cpus() -> tuple[int, set[int]] | None:
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        return None
    cpu = max(allowed)
    return cpu, allowed - {cpu}


PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(
        libc.prctl(
            option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        )
    )


def _droppable_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    p = libc.mmap(None, PAGE_SIZE, PROT_READ_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0)
    if p is None or p == ctypes.c_void_p(-1).value:
        return False
    libc.munmap(p, PAGE_SIZE)
    return True


class KernelBackend:
    """Runs scenarios on the live kernel; the observation matches the model's schema.

    Counterpart of the model backend; the kernel is Linux as booted (uname -r).
    """

    name = "kernel"

    def __init__(self) -> None:
        self._trace: Trace | None = None
        self._line = 0

    # -- availability -------------------------------------------------------------------

    @staticmethod
    def unavailable_reason() -> str | None:
        """One line saying why this machine cannot run scenarios live; None if it can."""
        reason = procfs.live_kernel_unavailable_reason()
        if reason:
            return reason
        if _cpus() is None:
            return "needs at least 2 CPUs (scenario CPU and runner CPU)"
        if shutil.which("gcc") is None and shutil.which("cc") is None:
            return "no C compiler (gcc or cc) to build the worker"
        return None

    def refusal(self, scenario: Scenario) -> str | None:
        """Why this scenario cannot run here (one line), checked before changing anything."""
        reason = self.unavailable_reason()
        if reason:
            return f"kernel backend: {reason}"
        cmds = scenario.commands
        if any(isinstance(c, Mmap) and c.droppable for c in cmds) and not _droppable_supported():
            line = next(c.line for c in cmds if isinstance(c, Mmap) and c.droppable)
            return (
                f"{scenario.path}:{line}:1: kernel backend: this kernel has no "
                "MAP_DROPPABLE (Linux 6.11+)"
            )
        ro = next((c for c in cmds if isinstance(c, Pin) and c.readonly), None)
        if ro is not None:
            return (
                f"{scenario.path}:{ro.line}:1: kernel backend: no R/O long-term pin on this "
                "machine: io_uring pins FOLL_WRITE | FOLL_LONGTERM (io_pin_pages(), "
                "io_uring/memmap.c) and the kernel has no gup_test (CONFIG_GUP_TEST)"
            )
        pin = next((c for c in cmds if isinstance(c, Pin)), None)
        if pin is not None and _io_uring_disabled():
            return (
                f"{scenario.path}:{pin.line}:1: kernel backend: pin needs io_uring "
                "(kernel.io_uring_disabled is set)"
            )
        if scenario_uses_memcg(cmds) and memcg.unavailable_reason():
            line = next(c.line for c in cmds if scenario_uses_memcg((c,)))
            return f"{scenario.path}:{line}:1: kernel backend: {memcg.unavailable_reason()}"
        needs_swap = any(isinstance(c, Swap) and c.pages is not None for c in cmds)
        has_swap = ZRAM_DIR.is_dir() and all(shutil.which(t) for t in ("mkswap", "swapon"))
        if needs_swap and not has_swap:
            line = next(c.line for c in cmds if isinstance(c, Swap))
            return (
                f"{scenario.path}:{line}:1: kernel backend: swap needs /sys/block/zram0, "
                "mkswap and swapon"
            )
        return None

    # -- running ------------------------------------------------------------------------

    def run(self, scenario: Scenario, trace: Trace | None = None) -> dict[str, Any]:
        """Run `scenario` on the live kernel and return the contract's observation object."""
        reason = self.refusal(scenario)
        if reason:
            raise KernelBackendError(reason)
        self._trace = trace
        with RunLock():
            if Settings.restore_saved(self._sys_trace):
                self._t("restore", "restored settings left by an interrupted run")
            foreign = active_swaps()
            if foreign:
                raise KernelBackendError(
                    f"kernel backend: swap is active on this machine ({foreign[0]}); the "
                    "contract starts with no swap, so swapoff it first"
                )
            if ZRAM_DIR.is_dir() and (ZRAM_DIR / "disksize").read_text().strip() != "0":
                raise KernelBackendError(
                    f"kernel backend: {ZRAM_DEV} is in use (disksize set); reset it first"
                )
            try:
                return self._run_locked(scenario)
            except OSError as e:
                # Environment failures (a /proc file vanished, a worker died) end the run.
                raise KernelBackendError(f"kernel backend: {e}") from None

    def _run_locked(self, scenario: Scenario) -> dict[str, Any]:
        cpus = _cpus()
        assert cpus is not None
        cpu, runner_cpus = cpus
        binary = worker_binary()
        old_affinity = os.sched_getaffinity(0)
        old_thp_disable = _prctl(PR_GET_THP_DISABLE)
        handlers: dict[int, Any] = {}
        cleaning = [False]
        pending: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            if cleaning[0]:
                pending.append(signum)
                return
            raise _Interrupted(signum)

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                # An ignored signal stays ignored (a background job's SIGINT).
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    handlers[sig] = signal.signal(sig, on_signal)
        self.procs: dict[str, Proc] = {}
        self.refs: dict[str, int] = {}
        self.pins: dict[str, list[PinnedRun]] = {}
        # REF of a gup -> (mapping, page index) of each page it took, in pipe order.
        self.ref_pages: dict[str, list[tuple[str, int]]] = {}
        self.helper: Worker | None = None
        self.pump: Worker | None = None
        self.memcg: memcg.Memcg | None = None
        self.uses_memcg = scenario_uses_memcg(scenario.commands)
        self.settings = Settings(self._sys_trace)
        interrupted: int | None = None
        try:
            self.settings.save()
            self.settings.set_start(keeper=str(binary))
            os.sched_setaffinity(0, runner_cpus)
            # The runner's own faults must not show in the machine-wide mTHP counters
            # when a scenario sets a size to always; the workers (exec'd) are not affected.
            _prctl(PR_SET_THP_DISABLE, 1)
            if memcg.unavailable_reason() is None:
                self.memcg = self.settings.make_memcg()
            p0 = Worker.spawn(binary, "worker", cpu)
            self.procs["p0"] = Proc("p0", p0)
            if self.memcg is not None:
                # After its own memory is faulted, before any of the scenario's: only
                # the scenario's pages (and the kernel memory it makes) are charged.
                self.memcg.join(p0.pid)
            if self.uses_memcg:
                self._spawn_pump(binary, cpu)
            self.helper = Worker.spawn(binary, "helper", cpu)
            self._t("spawn", f"p0 pid {p0.pid}, poke helper pid {self.helper.pid}, cpu {cpu}")
            # lru_add_drain() at the start of MADV_COLD empties every batch of this CPU.
            p0.call(OP_DRAIN_ALL)
            self._t("madvise", "p0 madvise(scratch, 4096, MADV_COLD) = 0 (drain batches)")
            self.base_vmstat = procfs.read_vmstat()
            self.mthp_sizes = tuple(kb for kb in MTHP_SIZES_KB)
            self.base_mthp = procfs.read_mthp_stats(self.mthp_sizes)
            self.next_slot = SLOT_BASE
            events: list[dict[str, Any]] = []
            self.line_errors: dict[int, str] = {}  # line -> its error, for `expect result`
            self.killed: dict[str, int] = {}  # memcg OOM victims -> the line of their kill
            self.oom_victims: list[str] = []
            self.oom_kills_seen = 0
            for cmd in scenario.commands:
                self._line = cmd.line
                if cmd.proc in self.killed and not isinstance(cmd, RUN_AFTER_OOM_KILL):
                    events.append(skipped_event(cmd, self.killed[cmd.proc]))
                    continue
                if cmd.proc not in self.procs and cmd.proc not in self.killed:
                    raise KernelBackendError(
                        f"{cmd.line}:1: kernel backend: no live process {cmd.proc!r}"
                    )
                try:
                    new = execute(self, cmd)
                except (KernelBackendError, OSError):
                    # A worker the memcg OOM killer chose dies inside its own call.
                    if not self._oom_killed_in_call(cmd):
                        raise
                    new = []
                if self.memcg is not None and self.uses_memcg:
                    new = new + self._reap_oom_victims(cmd)
                for ev in new:
                    if "error" in ev:
                        self.line_errors.setdefault(ev["line"], ev["error"])
                events.extend(new)
            self._line = 0
            final = self._state()
            noise = self._reclaim_noise()
        except _Interrupted as e:
            interrupted = e.signum
            if e.signum == signal.SIGINT and handlers.get(e.signum) is signal.default_int_handler:
                # Python's own SIGINT handling was in force: the caller (a fuzz campaign,
                # a test run) expects KeyboardInterrupt, not a backend failure to go on from.
                raise KeyboardInterrupt from None
            raise KernelBackendError(
                f"kernel backend: interrupted by {signal.Signals(e.signum).name}; settings restored"
            ) from None
        finally:
            cleaning[0] = True
            self._cleanup()
            os.sched_setaffinity(0, old_affinity)
            _prctl(PR_SET_THP_DISABLE, old_thp_disable)
            for sig, h in handlers.items():
                signal.signal(sig, h)
            cleaning[0] = False
            sig = interrupted or (pending[0] if pending else None)
            if sig is not None and handlers.get(sig) in (signal.SIG_DFL, None):
                # Die of the signal as the caller expected, now that everything is undone.
                signal.raise_signal(sig)
        return {
            "format": FORMAT,
            "scenario": scenario.name,
            "backend": {"name": "kernel", "release": platform.release(), **noise},
            "events": events,
            "final": final,
        }

    def _cleanup(self) -> None:
        for proc in self.procs.values():
            proc.worker.kill()
        if self.helper is not None:
            self.helper.kill()
        if self.pump is not None:
            self.pump.kill()
        for fd in self.refs.values():
            os.close(fd)
        for runs in self.pins.values():
            for run in runs:
                # Unpin before closing: io_uring frees a closed ring's buffers later, from
                # a workqueue (io_ring_exit_work(), io_uring/io_uring.c), which would free a
                # pinned folio during the next scenario.
                try:
                    run.ring.unregister_buffers()
                except OSError:
                    pass
                run.ring.close()
        self.procs, self.refs, self.pins, self.helper, self.pump = {}, {}, {}, None, None
        self.settings.stop_keeper()
        Settings.restore_saved(self._sys_trace)

    # -- tracing ------------------------------------------------------------------------

    def _t(self, func: str, message: str) -> None:
        if self._trace is not None:
            self._trace(self._line, func, message)

    def _sys_trace(self, func: str, message: str) -> None:
        self._t(func, message)

    # -- commands -----------------------------------------------------------------------

    # One handler per scenario command (foliosim.dispatch.execute() picks it), each the
    # system calls the worker makes for it.

    def _worker(self, cmd: Command) -> Worker:
        return self.procs[cmd.proc].worker

    def cmd_thp(self, cmd: Thp) -> list[dict[str, Any]]:
        return self._setting(cmd, "thp", lambda: self.settings.set_thp(cmd.mode))

    def cmd_mthp(self, cmd: Mthp) -> list[dict[str, Any]]:
        return self._setting(cmd, "mthp", lambda: self.settings.set_mthp(cmd.size_kb, cmd.mode))

    def cmd_swap(self, cmd: Swap) -> list[dict[str, Any]]:
        self.settings.set_swap(cmd.pages)
        return []

    def cmd_mmap(self, cmd: Mmap) -> list[dict[str, Any]]:
        return self._mmap(self.procs[cmd.proc], cmd)

    def cmd_munmap(self, cmd: Munmap) -> list[dict[str, Any]]:
        proc = self.procs[cmd.proc]
        m = proc.maps[cmd.name]
        if cmd.runs is not None:
            return self._munmap_runs(proc, m, cmd)
        err = self._call(
            proc.worker,
            "munmap",
            f"munmap({m.addr:#x}, {m.pages * PAGE_SIZE})",
            OP_MUNMAP,
            addr=m.addr,
            length=m.pages * PAGE_SIZE,
        )
        if err:
            return [error_event(cmd, "munmap", err, cmd.name)]
        del proc.maps[cmd.name]
        return []

    def cmd_write(self, cmd: Write) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        return self._per_run(
            cmd,
            "write",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w,
                "write",
                f"store {cmd.label!r} to {n} pages at {a:#x}",
                OP_WRITE,
                addr=a,
                length=n,
                index0=first,
                label=cmd.label,
                mapname=m.name,
            ),
            access=True,
        )

    def cmd_read(self, cmd: Read) -> list[dict[str, Any]]:
        data, err = self._read(self.procs[cmd.proc], cmd.name, cmd.runs)
        if err:
            ev = error_event(cmd, "read", err, cmd.name)
            ev["page"] = self._stop_page
            return [ev]
        return [{"line": cmd.line, "proc": cmd.proc, "op": "read", "map": cmd.name, "data": data}]

    def cmd_madvise(self, cmd: Madvise) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        adv = MADV[cmd.advice]
        return self._per_run(
            cmd,
            "madvise",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w,
                "madvise",
                f"madvise({a:#x}, {n * PAGE_SIZE}, {cmd.advice.upper()})",
                OP_MADVISE,
                arg=adv,
                addr=a,
                length=n * PAGE_SIZE,
            ),
        )

    def cmd_mlock(self, cmd: Mlock) -> list[dict[str, Any]]:
        if cmd.onfault:
            return self._mlock2_onfault(cmd)
        return self._lock(cmd, OP_MLOCK, "mlock")

    # -- mlock2(MLOCK_ONFAULT), mlockall, munlockall ------------------------------------

    def _mlock2_onfault(self, cmd: Mlock) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        return self._per_run(
            cmd,
            "mlock",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w,
                "mlock2",
                f"mlock2({a:#x}, {n * PAGE_SIZE}, MLOCK_ONFAULT)",
                OP_MLOCK2,
                arg=MLOCK_ONFAULT,
                addr=a,
                length=n * PAGE_SIZE,
            ),
        )

    def cmd_mlockall(self, cmd: Mlockall) -> list[dict[str, Any]]:
        flags = (
            (MCL_CURRENT if cmd.current else 0)
            | (MCL_FUTURE if cmd.future else 0)
            | (MCL_ONFAULT if cmd.onfault else 0)
        )
        names = "|".join(
            n for n, on in (("MCL_CURRENT", cmd.current), ("MCL_FUTURE", cmd.future),
                            ("MCL_ONFAULT", cmd.onfault)) if on
        )
        # With MCL_CURRENT the worker unlocks its own VMAs again, all outside the
        # scenario's slots (worker.c, mlockall_restore()).
        err = self._call(
            self._worker(cmd),
            "mlockall",
            f"mlockall({names})",
            OP_MLOCKALL,
            arg=flags,
            addr=SLOT_BASE,
            length=SLOT_SPAN,
        )
        return [error_event(cmd, "mlockall", err)] if err else []

    def cmd_munlockall(self, cmd: Munlockall) -> list[dict[str, Any]]:
        err = self._call(self._worker(cmd), "munlockall", "munlockall()", OP_MUNLOCKALL)
        return [error_event(cmd, "munlockall", err)] if err else []

    def cmd_munlock(self, cmd: Munlock) -> list[dict[str, Any]]:
        return self._lock(cmd, OP_MUNLOCK, "munlock")

    def _lock(self, cmd: Mlock | Munlock, op: int, nm: str) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        return self._per_run(
            cmd,
            nm,
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w, nm, f"{nm}({a:#x}, {n * PAGE_SIZE})", op, addr=a, length=n * PAGE_SIZE
            ),
        )

    def cmd_fork(self, cmd: Fork) -> list[dict[str, Any]]:
        return self._fork(self.procs[cmd.proc], cmd)

    def cmd_exit(self, cmd: Exit) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        w.exit()
        self._t("exit", f"{cmd.proc} exit(0), pid {w.pid} gone")
        del self.procs[cmd.proc]
        return []

    def cmd_gup(self, cmd: Gup) -> list[dict[str, Any]]:
        return self._gup(self.procs[cmd.proc], cmd)

    def cmd_release(self, cmd: Release) -> list[dict[str, Any]]:
        self._release(cmd.ref)
        return []

    def cmd_poke(self, cmd: Poke) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        helper = self.helper
        assert helper is not None
        return self._per_run(
            cmd,
            "poke",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                helper,
                "process_vm_writev",
                f"helper process_vm_writev(pid {w.pid}, {a:#x}, {n} pages of {cmd.label!r})",
                OP_POKE,
                pid=w.pid,
                addr=a,
                length=n,
                index0=first,
                label=cmd.label,
                mapname=m.name,
            ),
            access=True,
        )

    def cmd_observe(self, cmd: Observe) -> list[dict[str, Any]]:
        return [
            {
                "line": cmd.line,
                "proc": cmd.proc,
                "op": "observe",
                "label": cmd.label,
                "state": self._state(),
            }
        ]

    def cmd_expect_data(self, cmd: ExpectData) -> list[dict[str, Any]]:
        data, err = self._read(self.procs[cmd.proc], cmd.name, cmd.runs)
        return [expect_event(cmd, {}, {}, None if err else data)]

    def cmd_expect_state(self, cmd: ExpectState) -> list[dict[str, Any]]:
        return [expect_event(cmd, self._state(only=cmd.proc), {})]

    def cmd_expect_smaps(self, cmd: ExpectSmaps) -> list[dict[str, Any]]:
        return [expect_event(cmd, self._state(only=cmd.proc), {})]

    def cmd_expect_vmstat(self, cmd: ExpectVmstat) -> list[dict[str, Any]]:
        return [expect_event(cmd, {}, self._vmstat_all())]

    # -- page expectations: order, mapcount, exclusive, flags -------------------------

    def _expect_page(self, cmd: Command) -> list[dict[str, Any]]:
        return [expect_event(cmd, self._state(only=cmd.proc), {})]

    def cmd_expect_order(self, cmd: ExpectOrder) -> list[dict[str, Any]]:
        return self._expect_page(cmd)

    def cmd_expect_mapcount(self, cmd: ExpectMapcount) -> list[dict[str, Any]]:
        return self._expect_page(cmd)

    def cmd_expect_exclusive(self, cmd: ExpectExclusive) -> list[dict[str, Any]]:
        return self._expect_page(cmd)

    def cmd_expect_flags(self, cmd: ExpectFlags) -> list[dict[str, Any]]:
        return self._expect_page(cmd)

    def _setting(self, cmd: Command, op: str, change: Callable[[], None]) -> list[dict[str, Any]]:
        try:
            change()
        except OSError as e:
            return [error_event(cmd, op, _errno_name(e.errno))]
        return []

    def _call(self, w: Worker, func: str, what: str, op: int, **kw: Any) -> str | None:
        try:
            w.call(op, **kw)
        except WorkerError as e:
            self._t(func, f"{what} = -1 {e.errno_name}")
            self._stop_page = e.page  # where a write, poke or splice stopped
            return e.errno_name
        self._t(func, f"{what} = 0")
        return None

    def _per_run(
        self,
        cmd: Command,
        op: str,
        m: Mapping,
        runs: Runs,
        call: Callable[[int, int, int], str | None],
        access: bool = False,
    ) -> list[dict[str, Any]]:
        # One syscall per contiguous run, in order; the first failure ends the line.
        # access: a user access or GUP, whose error event says at which page it stopped.
        for first, last in runs:
            err = call(m.addr + first * PAGE_SIZE, first, last - first + 1)
            if err:
                ev = error_event(cmd, op, err, m.name)
                if access:
                    ev["page"] = first + self._stop_page
                return [ev]
        return []

    def _mmap(self, proc: Proc, cmd: Mmap) -> list[dict[str, Any]]:
        slot = self.next_slot
        span = (cmd.offset + cmd.pages) * PAGE_SIZE
        slot_len = -(-span // SLOT_ALIGN) * SLOT_ALIGN
        self.next_slot = slot + slot_len + SLOT_ALIGN  # then at least 2M unmapped
        addr = slot + cmd.offset * PAGE_SIZE
        flags = "MAP_DROPPABLE|MAP_ANONYMOUS" if cmd.droppable else "MAP_PRIVATE|MAP_ANONYMOUS"
        err = self._call(
            proc.worker,
            "mmap",
            f"mmap({addr:#x}, {cmd.pages * PAGE_SIZE}, prot {cmd.prot}, {flags}|MAP_FIXED_NOREPLACE)",
            OP_MMAP,
            arg=int(cmd.droppable),
            addr=addr,
            length=cmd.pages * PAGE_SIZE,
            index0=PROT[cmd.prot],
        )
        proc.maps[cmd.name] = Mapping(cmd.name, addr, cmd.pages, mapped=err is None)
        return [error_event(cmd, "mmap", err, cmd.name)] if err else []

    def _read(self, proc: Proc, name: str, runs: Runs) -> tuple[list[str], str | None]:
        m = proc.maps[name]
        data: list[str] = []
        for first, last in runs:
            a = m.addr + first * PAGE_SIZE
            try:
                data += proc.worker.read(a, last - first + 1, first, name)
            except WorkerError as e:
                self._t("read", f"load {last - first + 1} pages at {a:#x} = {e.errno_name}")
                self._stop_page = first + e.page
                return data, e.errno_name
            self._t("read", f"load {last - first + 1} pages at {a:#x}")
        return data, None

    def _fork(self, proc: Proc, cmd: Fork) -> list[dict[str, Any]]:
        # The harness's own pages that both processes copy after fork (break_cow()) and
        # the child's ballast faults below are charged to the root memcg, not to the
        # scenario's: the parent forks outside the cgroup, both join it again after.
        # (A pinned page that fork copies at once, copy_present_page(), is charged
        # there too.)
        if self.memcg is not None:
            self.memcg.leave(proc.worker.pid)
        try:
            child = proc.worker.fork()
        except WorkerError as e:
            if self.memcg is not None:
                self.memcg.join(proc.worker.pid)
            self._t("fork", f"{cmd.proc} fork() = -1 {e.errno_name}")
            return [error_event(cmd, "fork", e.errno_name)]
        self.procs[cmd.child] = Proc(cmd.child, child, dict(proc.maps))
        # The contract: lru_add is empty after fork, and no other batch is drained.  Both
        # processes broke COW on their own memory by stores (worker.c, break_cow()), which
        # only fill lru_add; now fault ballast pages until it moves (PG_lru shows).
        try:
            n = child.call(OP_DRAIN_LRU_ADD)
        except WorkerError as e:
            raise KernelBackendError(
                f"{cmd.line}:1: kernel backend: could not drain lru_add after fork: {e.errno_name}"
            ) from None
        if self.memcg is not None:
            self.memcg.join(proc.worker.pid)
            self.memcg.join(child.pid)
        self._t(
            "fork",
            f"{cmd.proc} fork() = {child.pid} ({cmd.child}); lru_add drained "
            f"after {n} ballast faults",
        )
        return []

    def _gup(self, proc: Proc, cmd: Gup) -> list[dict[str, Any]]:
        m = proc.maps[cmd.name]
        w = proc.worker
        npages = runs_count(cmd.runs)
        size = 1 << max(16, (npages * PAGE_SIZE - 1).bit_length())
        err = self._call(w, "pipe", f"pipe2() + F_SETPIPE_SZ {size}", OP_GUP_BEGIN, length=size)
        if err:
            self.ref_pages[cmd.ref] = []  # the reference holds no page (expect: got [])
            return [error_event(cmd, "gup", err, cmd.name)]
        events = self._per_run(
            cmd,
            "gup",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w,
                "vmsplice",
                f"vmsplice(pipe, {a:#x}, {n * PAGE_SIZE})",
                OP_GUP_SPLICE,
                addr=a,
                length=n * PAGE_SIZE,
            ),
            access=True,
        )
        self.refs[cmd.ref] = w.gup_end()
        self._t("gup", f"pipe read end of {cmd.ref} held by the runner (SCM_RIGHTS)")
        # The pages the pipe holds, in order (each spliced page is one 4096-byte buffer):
        # all of the runs, or those before a failed vmsplice.
        held = fcntl.ioctl(self.refs[cmd.ref], termios.FIONREAD, b"\0\0\0\0")
        n = int.from_bytes(held, "little") // PAGE_SIZE
        self.ref_pages[cmd.ref] = [(cmd.name, i) for i in runs_pages(cmd.runs)[:n]]
        return events

    def _release(self, ref: str) -> None:
        self.ref_pages.pop(ref, None)
        runs = self.pins.pop(ref, None)
        if runs is not None:
            for run in runs:
                run.ring.unregister_buffers()
                run.ring.close()
            self._t("release", f"io_uring_register(IORING_UNREGISTER_BUFFERS) x{len(runs)} ({ref})")
            return
        fd = self.refs.pop(ref, None)
        if fd is None:
            return
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        drained = 0
        try:
            while chunk := os.read(fd, 1 << 20):
                drained += len(chunk)
        except BlockingIOError:
            pass
        os.close(fd)
        self._t("release", f"drained {drained // PAGE_SIZE} pages of {ref}, closed")

    # -- references: long-term pins, what a reference holds, process_madvise ----------

    def cmd_pin(self, cmd: Pin) -> list[dict[str, Any]]:
        # One ring per run, made here and registered by the worker (worker.c do_pin(),
        # which takes the ring's fd with pidfd_getfd());
        # the first failure ends the line, the runs before it stay pinned.
        proc = self.procs[cmd.proc]
        m = proc.maps[cmd.name]
        runs: list[PinnedRun] = []
        self.pins[cmd.ref] = runs

        def register(a: int, first: int, n: int) -> str | None:
            ring = uring.Ring()
            try:
                err = self._call(
                    proc.worker,
                    "io_uring_register",
                    f"io_uring_register(pidfd_getfd(runner ring {ring.fd}), "
                    f"IORING_REGISTER_BUFFERS, {{{a:#x}, {n * PAGE_SIZE}}})",
                    OP_PIN,
                    arg=ring.fd,
                    pid=os.getpid(),
                    addr=a,
                    length=n * PAGE_SIZE,
                )
            except BaseException:
                ring.close()
                raise
            if err:
                ring.close()
                return err
            runs.append(PinnedRun(ring, a, m.name, first, n))
            return None

        return self._per_run(cmd, "pin", m, cmd.runs, register)

    def cmd_expect_ref_data(self, cmd: ExpectRefData) -> list[dict[str, Any]]:
        return [expect_event(cmd, {}, {}, self._ref_data(cmd.ref))]

    def _ref_data(self, ref: str) -> list[str]:
        pages: list[str] = []
        rd, wr = os.pipe()
        try:
            runs = self.pins.get(ref)
            if runs is not None:
                # The pinned pages themselves: IORING_OP_WRITE_FIXED of each into a pipe.
                for run in runs:
                    for k in range(run.pages):
                        run.ring.write_fixed(wr, run.addr + k * PAGE_SIZE, PAGE_SIZE)
                        (buf,) = uring.read_pipe_pages(rd, PAGE_SIZE)
                        pages.append(uring.classify_page(buf, run.mapname, run.first + k))
                self._t("read", f"{ref}: IORING_OP_WRITE_FIXED of {len(pages)} pages to a pipe")
                return pages
            # A gup's pages still in its pipe: tee(2) them out (the pipe keeps its
            # buffers; the copies' references go when they are read).
            src = self.refs.get(ref)
            if src is None:  # its pipe could not be made: F_SETPIPE_SZ failed
                return pages
            fcntl.fcntl(wr, uring.F_SETPIPE_SZ, fcntl.fcntl(src, uring.F_GETPIPE_SZ))
            want = self.ref_pages[ref]
            n = uring.tee(src, wr, len(want) * PAGE_SIZE)
            bufs = uring.read_pipe_pages(rd, n)
            pages = [uring.classify_page(b, nm, i) for b, (nm, i) in zip(bufs, want)]
            self._t("read", f"{ref}: tee() of {len(pages)} pages from its pipe")
            return pages
        finally:
            os.close(rd)
            os.close(wr)

    def cmd_process_madvise(self, cmd: ProcessMadvise) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        target = self.procs[cmd.target]
        m = target.maps[cmd.name]
        iov = b"".join(
            struct.pack("<QQ", m.addr + a * PAGE_SIZE, (b - a + 1) * PAGE_SIZE) for a, b in cmd.runs
        )
        what = ", ".join(
            f"{{{m.addr + a * PAGE_SIZE:#x}, {(b - a + 1) * PAGE_SIZE}}}" for a, b in cmd.runs
        )
        err = self._call_fd(
            w,
            "process_madvise",
            f"process_madvise(pidfd {cmd.target}, [{what}], {cmd.advice.upper()})",
            OP_PROCESS_MADVISE,
            target.worker.pidfd,
            extra=iov,
            arg=MADV.get(cmd.advice, -1),
            length=len(cmd.runs),
        )
        return [error_event(cmd, "process_madvise", err, cmd.name)] if err else []

    def _call_fd(
        self, w: Worker, func: str, what: str, op: int, fd: int, extra: bytes = b"", **kw: Any
    ) -> str | None:
        try:
            w.call_with_fd(op, fd, extra, **kw)
        except WorkerError as e:
            self._t(func, f"{what} = -1 {e.errno_name}")
            return e.errno_name
        self._t(func, f"{what} = 0")
        return None

    # -- observing ----------------------------------------------------------------------

    def _vmstat_all(self) -> dict[str, int]:
        now = procfs.read_vmstat()
        self._t("read", "/proc/vmstat")
        return {k: v - self.base_vmstat.get(k, 0) for k, v in now.items()}

    def _state(self, only: str | None = None) -> dict[str, Any]:
        vm = self._vmstat_all()
        mthp_now = procfs.read_mthp_stats(self.mthp_sizes)
        self._t("read", "hugepages-*kB/stats/*")
        mthp = {
            mthp_size_name(kb): {k: v - self.base_mthp[kb].get(k, 0) for k, v in vals.items()}
            for kb, vals in mthp_now.items()
        }
        pfns = procfs.PfnReader()
        try:
            procs = {
                name: {"maps": self._proc_maps(p, pfns), **self._proc_faults(p)}
                for name, p in self.procs.items()
                if only is None or name == only
            }
        finally:
            pfns.close()
        state = {"vmstat": {k: vm[k] for k in VMSTAT_KEYS if k in vm}, "mthp": mthp, "procs": procs}
        if self.uses_memcg and only is None:
            state["memcg"] = self._memcg_fields(only_state=True)
        return state

    # -- memcg (issue 13) ------------------------------------------------------------

    def _reclaim_noise(self) -> dict[str, Any]:
        # Reclaim of the scenario's cgroup counts no global pgscan_kswapd/direct
        # (shrink_inactive_list(), mm/vmscan.c: `if (!cgroup_reclaim(sc))`), so a move
        # of either is other reclaim on the machine, whose scans the reclaim
        # counters of `expect vmstat` then include: said in the observation's backend.
        if not self.uses_memcg:
            return {}
        vm = self._vmstat_all()
        moved = {k: vm.get(k, 0) for k in ("pgscan_kswapd", "pgscan_direct") if vm.get(k, 0)}
        if moved:
            self._t("memcg", f"machine-wide reclaim during the run: {moved}")
        return {"reclaim_noise": moved} if moved else {}

    def _spawn_pump(self, binary: Any, cpu: int) -> None:
        # A worker that only ever makes zero-page faults in the cgroup, so that a
        # memory.stat read flushes (kernel/memcg.py).  Its own memory is charged
        # outside the cgroup.  It joins the cgroup only for its faults: a task in the
        # cgroup is a memcg OOM candidate (oom_badness() counts its RSS), and
        # oom_score_adj -1000 needs CAP_SYS_RESOURCE, which this machine's root lacks.
        assert self.memcg is not None
        self.pump = Worker.spawn(binary, "worker", cpu)
        self._t("spawn", f"memcg stat pump pid {self.pump.pid}, outside {self.memcg.path}")

    def _memcg_fields(self, only_state: bool = False) -> dict[str, Any]:
        assert self.memcg is not None and self.pump is not None
        self.memcg.join(self.pump.pid)
        try:
            self.pump.call(OP_MEMCG_FLUSH)
        finally:
            memcg.Memcg(memcg.V1_ROOT, self._sys_trace).join(self.pump.pid)
        self._t("memcg", f"{memcg.PUMP_FAULTS} zero-page faults in the cgroup (stat flush)")
        return self.memcg.state() if only_state else self.memcg.all_fields()

    def _oom_kills(self) -> int:
        # memory.oom_control's oom_kill: the cgroup's MEMCG_OOM_KILL events
        # (memcg1_oom_control_read(), mm/memcontrol-v1.c).
        assert self.memcg is not None
        for line in self.memcg.file("memory.oom_control").read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        raise KernelBackendError("kernel backend: memory.oom_control has no oom_kill line")

    def _oom_killed_in_call(self, cmd: Command) -> bool:
        proc = self.procs.get(cmd.proc)
        if self.memcg is None or not self.uses_memcg or proc is None:
            return False
        if proc.worker.alive():
            try:
                proc.worker.wait_gone(timeout=5.0)
            except KernelBackendError:
                return False
        return self._oom_kills() > self.oom_kills_seen

    def _reap_oom_victims(self, cmd: Command) -> list[dict[str, Any]]:
        # Each kill of the cgroup's OOM killer (mem_cgroup_out_of_memory() ->
        # oom_kill_process(), mm/oom_kill.c) sends SIGKILL to one of the workers, which
        # exits at once (they wait in recv()); wait until that many have gone.
        n = self._oom_kills() - self.oom_kills_seen
        if n <= 0:
            return []
        deadline = time.monotonic() + 10.0
        while True:
            dead = [name for name, p in self.procs.items() if not p.worker.alive()]
            if len(dead) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if len(dead) != n:
            raise KernelBackendError(
                f"{cmd.line}:1: kernel backend: the cgroup counts {n} OOM kill(s) at this "
                f"line, but {len(dead)} worker(s) died: {dead}"
            )
        self.oom_kills_seen += n
        events = []
        for name in dead:
            self._t("oom_kill", f"memcg OOM killer killed {name} (pid {self.procs[name].worker.pid})")
            self.procs.pop(name).worker.kill()
            self.killed[name] = cmd.line
            self.oom_victims.append(name)
            events.append(oom_kill_event(cmd, name))
        return events

    def _memcg_write(self, cmd: Command, name: str, value: str) -> str | None:
        assert self.memcg is not None
        path = str(self.memcg.file(name))
        if len(path.encode()) >= NAME_LEN:  # the request's path field (worker.c, NAME_MAX_)
            raise KernelBackendError(f"kernel backend: cgroup path too long for the worker: {path}")
        return self._call(
            self._worker(cmd),
            "write",
            f"echo {value} > {path}",
            OP_MEMCG_WRITE,
            label=value,
            mapname=path,
        )

    def cmd_memcg_limit(self, cmd: MemcgLimit) -> list[dict[str, Any]]:
        # Written by the scenario's process: the reclaim of mem_cgroup_resize_max()
        # runs in its context, on the scenario's CPU.
        value = "-1" if cmd.pages is None else str(cmd.pages * PAGE_SIZE)
        err = self._memcg_write(cmd, "memory.limit_in_bytes", value)
        return [error_event(cmd, "memcg", err)] if err else []

    def cmd_memcg_reclaim(self, cmd: MemcgReclaim) -> list[dict[str, Any]]:
        # v1 has no memory.reclaim: a limit SIZE below usage, then the old limit back.
        assert self.memcg is not None
        old = self.memcg.read_int("memory.limit_in_bytes")
        usage = self.memcg.read_int("memory.usage_in_bytes")
        target = max(usage - cmd.pages * PAGE_SIZE, 0)
        err = self._memcg_write(cmd, "memory.limit_in_bytes", str(target))
        back = "-1" if old >= memcg.V1_NO_LIMIT else str(old)
        self._memcg_write(cmd, "memory.limit_in_bytes", back)
        after = self.memcg.read_int("memory.usage_in_bytes")
        self._t("memcg", f"usage {usage // 1024} kB -> {after // 1024} kB")
        return [error_event(cmd, "memcg", err)] if err else []

    def cmd_memcg_swappiness(self, cmd: MemcgSwappiness) -> list[dict[str, Any]]:
        err = self._memcg_write(cmd, "memory.swappiness", str(cmd.value))
        return [error_event(cmd, "memcg", err)] if err else []

    def cmd_expect_memcg(self, cmd: ExpectMemcg) -> list[dict[str, Any]]:
        return [expect_event(cmd, self._memcg_fields(), {})]

    def cmd_expect_oom_kill(self, cmd: ExpectOomKill) -> list[dict[str, Any]]:
        return [expect_event(cmd, {}, {}, victims=self.oom_victims)]

    # -- end memcg -------------------------------------------------------------------

    def _proc_maps(self, proc: Proc, pfns: procfs.PfnReader) -> dict[str, Any]:
        pid = proc.worker.pid
        live = [m for m in proc.maps.values() if m.mapped]
        if not live:
            return {}
        full = procfs.read_smaps_vmas(pid)
        vmas = [(v.start, v.end, v.fields) for v in full]
        self._t("read", f"/proc/{pid}/smaps")
        out = {}
        for m in live:
            entries = procfs.read_pagemap(pid, m.addr, m.pages)
            self._t("read", f"/proc/{pid}/pagemap {m.addr:#x} {m.pages} pages")
            out[m.name] = {
                "smaps": procfs.smaps_for_range(vmas, m.addr, m.end),
                "pages": [_page(e, pfns) for e in entries],
                "vmas": procfs.vmas_for_range(full, m.addr, m.end),
            }
        return out

    def _proc_faults(self, proc: Proc) -> dict[str, int]:
        # /proc/PID/stat counts the worker's own faults too (its start, lru_add drains,
        # COW breaking after fork): the worker keeps them apart (worker.c), and they
        # are taken off, so only the scenario's faults remain.
        minflt, majflt = procfs.read_stat_faults(proc.worker.pid)
        hmin, hmaj = proc.worker.harness_faults()
        self._t("read", f"/proc/{proc.worker.pid}/stat minflt {minflt} majflt {majflt}, "
                f"harness {hmin} {hmaj}")
        return {"minflt": minflt - hmin, "majflt": majflt - hmaj}
    # -- protections, partial unmaps, mremap, results ---------------------------------

    def cmd_mprotect(self, cmd: Mprotect) -> list[dict[str, Any]]:
        w = self._worker(cmd)
        m = self.procs[cmd.proc].maps[cmd.name]
        prot = PROT[cmd.prot]
        return self._per_run(
            cmd,
            "mprotect",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                w,
                "mprotect",
                f"mprotect({a:#x}, {n * PAGE_SIZE}, {cmd.prot})",
                OP_MPROTECT,
                arg=prot,
                addr=a,
                length=n * PAGE_SIZE,
            ),
        )

    def _munmap_runs(self, proc: Proc, m: Mapping, cmd: Munmap) -> list[dict[str, Any]]:
        # munmap NAME RANGE: one munmap(2) a run; the mapping stays, with holes.
        assert cmd.runs is not None
        return self._per_run(
            cmd,
            "munmap",
            m,
            cmd.runs,
            lambda a, first, n: self._call(
                proc.worker,
                "munmap",
                f"munmap({a:#x}, {n * PAGE_SIZE})",
                OP_MUNMAP,
                addr=a,
                length=n * PAGE_SIZE,
            ),
        )

    def cmd_mremap(self, cmd: Mremap) -> list[dict[str, Any]]:
        proc = self.procs[cmd.proc]
        m = proc.maps[cmd.name]
        new_addr = 0
        if cmd.move:
            # A fresh 2M slot, as _mmap() places mappings: MREMAP_MAYMOVE | MREMAP_FIXED there.
            slot = self.next_slot
            span = (cmd.offset + cmd.pages) * PAGE_SIZE
            self.next_slot = slot + -(-span // SLOT_ALIGN) * SLOT_ALIGN + SLOT_ALIGN
            new_addr = slot + cmd.offset * PAGE_SIZE
        how = f"MREMAP_MAYMOVE|MREMAP_FIXED, {new_addr:#x}" if cmd.move else "0"
        err = self._call(
            proc.worker,
            "mremap",
            f"mremap({m.addr:#x}, {m.pages * PAGE_SIZE}, {cmd.pages * PAGE_SIZE}, {how})",
            OP_MREMAP,
            addr=m.addr,
            length=m.pages * PAGE_SIZE,
            index0=cmd.pages * PAGE_SIZE,
            pid=new_addr,
        )
        if err:
            return [error_event(cmd, "mremap", err, cmd.name)]
        proc.maps[cmd.name] = Mapping(cmd.name, new_addr or m.addr, cmd.pages, m.mapped)
        return []

    def cmd_expect_result(self, cmd: ExpectResult) -> list[dict[str, Any]]:
        return [expect_event(cmd, {}, {}, result=self.line_errors.get(cmd.of_line, "ok"))]


def _page(entry: int, pfns: procfs.PfnReader) -> dict[str, Any]:
    page: dict[str, Any] = {
        "state": "present"
        if entry & procfs.PM_PRESENT
        else "swap"
        if entry & procfs.PM_SWAP
        else "none",
        "exclusive": bool(entry & procfs.PM_EXCLUSIVE),
        "soft_dirty": bool(entry & procfs.PM_SOFT_DIRTY),
    }
    if entry & procfs.PM_PRESENT:
        pfn = entry & procfs.PM_PFN_MASK
        bits = pfns.flags(pfn)
        page["flags"] = kpageflags_names(bits)
        page["mapcount"] = pfns.count(pfn)
        # The contract: order 0 for the zero page, the huge zero page included (its flags
        # still say compound_head/compound_tail and thp).
        zero = bits >> KPF_BITS["zero_page"] & 1
        page["order"] = 0 if zero else pfns.order(pfn)
    return page


def _io_uring_disabled() -> bool:
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip() != "0"
    except OSError:
        return False


def _errno_name(err: int | None) -> str:
    return errno.errorcode.get(err or 0, f"E{err}")
