"""The scenario's memory cgroup on the live kernel (cgroup v1's memory controller).

Every kernel-backend run makes one cgroup, `foliosim-<runner pid>`, directly
under the memory hierarchy's root, before the first command; the workers join
it once their own memory is faulted (so only the scenario's pages are charged
to it), the runner and the poke helper stay outside, and it is removed at the
end.  Its path goes to the saved-settings file before it is made, so the next
run removes it after a SIGKILL (kernel/settings.py).

memory.stat is exact only after a flush: mem_cgroup_flush_stats() (called by
memcg1_stat_format(), mm/memcontrol-v1.c, 6.18) flushes only once more than
MEMCG_CHARGE_BATCH * nr_cpus updates are pending (memcg_vmstats_needs_flush(),
mm/memcontrol.c); otherwise the periodic flusher catches up within 2 s.  Before
every read a "pump" worker in the cgroup makes PUMP_FAULTS zero-page read faults
(each counts one PGFAULT memcg event, memcg_rstat_updated()), which makes the
pending count pass the threshold, so the read itself flushes every CPU's
deltas.  Zero-page faults charge nothing and touch no LRU batch.  See
docs/pressure.md.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from foliosim.kernel.errors import KernelBackendError

V1_ROOT = Path(os.environ.get("FOLIOSIM_MEMCG_ROOT", "/sys/fs/cgroup/memory"))
PAGE_SIZE = 4096
PUMP_FAULTS = 256  # PUMP_PAGES of worker.c: more than 3 * MEMCG_CHARGE_BATCH (64)
# PAGE_COUNTER_MAX * PAGE_SIZE as memory.limit_in_bytes shows "no limit" on x86-64.
V1_NO_LIMIT = 9223372036854771712

# memory.stat keys reported (v1 names), as kB in STATE["memcg"].
STAT_KEYS = (
    "rss",
    "cache",
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "swap",
)

Trace = Callable[[str, str], None]


def unavailable_reason() -> str | None:
    """Why no memory cgroup can be made here (one line); None if v1's controller is mounted."""
    if not (V1_ROOT / "memory.limit_in_bytes").exists():
        return f"no cgroup v1 memory controller at {V1_ROOT} (cgroup v2 is not supported yet)"
    return None


def _tasks(path: Path) -> list[int]:
    try:
        return [int(w) for w in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def remove(path: Path, trace: Trace | None = None) -> None:
    """Remove a scenario cgroup: its tasks (only our workers ever join) are killed first."""
    if not path.is_dir():
        return
    deadline = time.monotonic() + 10.0
    while True:
        pids = _tasks(path)
        for pid in pids:
            # Workers of a run killed before its cleanup (PR_SET_PDEATHSIG kills them
            # too, but may not have yet); nothing else is ever moved into the cgroup.
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            if trace:
                trace("rmdir", str(path))
            path.rmdir()
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise KernelBackendError(f"kernel backend: removing {path}: {e}") from None
            time.sleep(0.01)


def remove_stale(trace: Trace | None = None) -> None:
    """Remove every scenario cgroup left behind: called under the run lock, so none is live.

    The saved-settings file names the cgroup of a killed run, but a run of an
    older foliosim (before memcg) repairs that file without knowing the key.
    """
    for path in sorted(V1_ROOT.glob("foliosim-*")):
        remove(path, trace)


class Memcg:
    """One scenario's memory cgroup (v1)."""

    def __init__(self, path: Path, trace: Trace | None = None) -> None:
        self.path = path
        self.trace = trace

    @staticmethod
    def path_for_run() -> Path:
        return V1_ROOT / f"foliosim-{os.getpid()}"

    def create(self) -> None:
        if self.trace:
            self.trace("mkdir", str(self.path))
        self.path.mkdir()

    def file(self, name: str) -> Path:
        return self.path / name

    def join(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def leave(self, pid: int) -> None:
        """Move a worker to the hierarchy's root: what it faults now is charged there.

        v1 charges a fault to the memcg of the mm's owner at that moment
        (get_mem_cgroup_from_mm(), mm/memcontrol.c) and, without
        move_charge_at_immigrate, never moves a charge when its task moves
        (mem_cgroup_can_attach(), mm/memcontrol-v1.c).
        """
        if self.trace:
            self.trace("cgroupfs", f"echo {pid} > {V1_ROOT / 'cgroup.procs'}")
        with open(V1_ROOT / "cgroup.procs", "w") as f:
            f.write(str(pid))

    def _write(self, name: str, value: str) -> None:
        if self.trace:
            self.trace("cgroupfs", f"echo {value} > {self.path / name}")
        with open(self.path / name, "w") as f:
            f.write(value)

    def read_int(self, name: str) -> int:
        return int((self.path / name).read_text())

    def limit_kb(self) -> int | None:
        """memory.limit_in_bytes in kB; None for no limit (`max`)."""
        v = self.read_int("memory.limit_in_bytes")
        return None if v >= V1_NO_LIMIT else v // 1024

    def read_stat(self) -> dict[str, int]:
        """memory.stat (the cgroup's own, not total_*), bytes per key."""
        out = {}
        for line in (self.path / "memory.stat").read_text().splitlines():
            k, _, v = line.partition(" ")
            out[k] = int(v)
        if self.trace:
            self.trace("read", str(self.path / "memory.stat"))
        return out

    def state(self) -> dict[str, int | None]:
        """STATE["memcg"]: limit (kB, None for max) and the memory.stat keys in kB.

        Only call after a flush (the pump worker's OP_MEMCG_FLUSH).  usage and
        failcnt are left out of STATE: both count kernel memory and the per-CPU
        charge stock (docs/pressure.md); `expect memcg usage|failcnt` reads them.
        """
        st = self.read_stat()
        out: dict[str, int | None] = {k: st[k] // 1024 for k in STAT_KEYS if k in st}
        out["limit"] = self.limit_kb()
        return out

    def all_fields(self) -> dict[str, int | None]:
        """What `expect memcg FIELD` may ask: STATE's fields, usage and failcnt."""
        out = self.state()
        out["usage"] = self.read_int("memory.usage_in_bytes") // 1024
        out["failcnt"] = self.read_int("memory.failcnt")
        return out
