"""Machine settings a scenario changes (THP, mTHP, zram swap), saved and always restored.

Before anything is changed the original values go to a state file; they are
restored in `finally`, from signal handlers, and at the start of the next run
when a previous run was killed before it could restore them.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from foliosim.kernel import memcg
from foliosim.kernel.errors import KernelBackendError

RUN_DIR = Path(os.environ.get("FOLIOSIM_RUN_DIR", "/run/foliosim"))
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
ZRAM = "zram0"
ZRAM_DIR = Path("/sys/block") / ZRAM
ZRAM_DEV = f"/dev/{ZRAM}"
DAMON_DIR = Path("/sys/kernel/mm/damon/admin/kdamonds")
KHUGEPAGED_SLEEP = THP_DIR / "khugepaged" / "scan_sleep_millisecs"
KHUGEPAGED_PAUSED_MS = "3600000"  # an hour: no scan falls inside a run

# The contract's start: the THP defaults of this machine's kernel.
START_THP = "madvise"
START_MTHP = {2048: "inherit"}  # every other size: never

Trace = Callable[[str, str], None]


def state_file() -> Path:
    return RUN_DIR / "saved-settings.json"


def _selected(path: Path) -> str:
    text = path.read_text()
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return text.strip()


def mthp_enabled_files() -> dict[int, Path]:
    """size kB -> hugepages-<N>kB/enabled, every size this kernel has."""
    out = {}
    for d in THP_DIR.glob("hugepages-*kB"):
        # hugepages-8kB on 6.18 is shmem-only: it has no anonymous `enabled` file.
        if (d / "enabled").exists():
            out[int(d.name[len("hugepages-") : -2])] = d / "enabled"
    return dict(sorted(out.items()))


def kdamond_state_files() -> dict[str, Path]:
    """kdamond index -> its sysfs `state` file (DAMON's sysfs interface, if any)."""
    if not DAMON_DIR.is_dir():
        return {}
    return {
        d.name: d / "state"
        for d in sorted(DAMON_DIR.iterdir())
        if d.name.isdigit() and (d / "state").exists()
    }


def active_swaps() -> list[str]:
    """Device or file names of /proc/swaps."""
    with open("/proc/swaps") as f:
        return [line.split()[0] for line in f.readlines()[1:] if line.strip()]


def _write(path: Path, value: str, trace: Trace | None) -> None:
    if trace:
        trace("sysfs", f"echo {value} > {path}")
    with open(path, "w") as f:
        f.write(value)


def _run(argv: list[str], trace: Trace | None) -> None:
    if trace:
        trace("exec", " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise KernelBackendError(f"kernel backend: {' '.join(argv)}: {msg}")


class RunLock:
    """flock on RUN_DIR/lock: one kernel-backend run on the machine at a time."""

    def __init__(self, timeout: float = 900.0) -> None:
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> Self:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(RUN_DIR / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise KernelBackendError(
                        f"kernel backend: another run holds {RUN_DIR / 'lock'}"
                    ) from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Settings:
    """The THP/mTHP/swap state of the machine while a scenario runs."""

    def __init__(self, trace: Trace | None = None) -> None:
        self.trace = trace
        self.keeper: subprocess.Popen[bytes] | None = None
        self.swap_pages: int | None = None

    # -- save / restore -------------------------------------------------------------

    def save(self) -> None:
        """Record the original values in the state file (kept if one is already there)."""
        path = state_file()
        if path.exists():
            return  # an unrestored earlier save: it holds the true originals
        saved = {
            "thp": _selected(THP_DIR / "enabled"),
            "mthp": {str(kb): _selected(p) for kb, p in mthp_enabled_files().items()},
            "zram_swap_ours": False,
        }
        self._store(saved)

    def _store(self, saved: dict) -> None:
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, sort_keys=True))
        with open(tmp) as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def restore_saved(cls, trace: Trace | None = None) -> bool:
        """Undo everything a run recorded in the state file; False if there was none."""
        path = state_file()
        if not path.exists():
            return False
        saved = json.loads(path.read_text())
        s = cls(trace)
        errors: list[str] = []
        if saved.get("memcg"):
            # First: its tasks are killed and its charges reparented when it goes.
            try:
                memcg.remove(Path(saved["memcg"]), trace)
            except KernelBackendError as e:
                errors.append(str(e))
        if saved.get("zram_swap_ours") or ZRAM_DEV in active_swaps():
            try:
                s._zram_off()
            except (KernelBackendError, OSError) as e:
                errors.append(str(e))
        for kb, mode in saved.get("mthp", {}).items():
            try:
                _write(THP_DIR / f"hugepages-{kb}kB" / "enabled", mode, trace)
            except OSError as e:
                errors.append(str(e))
        try:
            _write(THP_DIR / "enabled", saved["thp"], trace)
        except OSError as e:
            errors.append(str(e))
        if "khugepaged_sleep" in saved:
            try:
                _write(KHUGEPAGED_SLEEP, saved["khugepaged_sleep"], trace)
            except OSError as e:
                errors.append(str(e))
        states = kdamond_state_files()
        for k, state in saved.get("kdamonds", {}).items():
            if state == "on" and k in states and states[k].read_text().strip() != "on":
                try:
                    _write(states[k], "on", trace)
                except OSError as e:
                    errors.append(str(e))
        if errors:
            raise KernelBackendError(f"kernel backend: restoring settings: {errors[0]}")
        path.unlink()
        return True

    def make_memcg(self) -> memcg.Memcg:
        """The scenario's memory cgroup, noted in the state file before it is made."""
        cg = memcg.Memcg(memcg.Memcg.path_for_run(), self.trace)
        saved = json.loads(state_file().read_text())
        saved["memcg"] = str(cg.path)
        self._store(saved)
        memcg.remove_stale(self.trace)  # under the run lock: none of them is live
        cg.create()
        return cg

    def mark_swap_ours(self) -> None:
        saved = json.loads(state_file().read_text())
        if not saved.get("zram_swap_ours"):
            saved["zram_swap_ours"] = True
            self._store(saved)

    # -- changes ----------------------------------------------------------------------

    def set_start(self, keeper: str | None = None) -> None:
        """The contract's start: thp madvise, mthp 2M inherit, every other size never.

        Running DAMON kdamonds are paused too: a `pageout` scheme on physical
        addresses clears PG_referenced on, and reclaims, folios of the scenario
        at moments no scenario can predict (docs/kernel-backend.md).  `keeper`, the
        worker binary, runs `worker keeper` for the run (stop_keeper() ends it).
        """
        _write(THP_DIR / "enabled", START_THP, self.trace)
        for kb, p in mthp_enabled_files().items():
            _write(p, START_MTHP.get(kb, "never"), self.trace)
        if KHUGEPAGED_SLEEP.exists():
            if keeper is not None:
                # One mm on khugepaged's list for the whole run, registered while THP
                # is `madvise` (khugepaged_enter_vma() needs hugepage_pmd_enabled()),
                # before the write below: with the list empty, khugepaged waits for
                # the first mm, not for its timer, and __khugepaged_enter() wakes it
                # at once (khugepaged_wait_work(), mm/khugepaged.c), so the scenario's
                # first MADV_HUGEPAGE would start a scan mid-run.
                self._start_keeper(keeper)
            # khugepaged may collapse a scenario's VM_HUGEPAGE range into a THP at
            # any scan; push its next scan past the end of the run.
            saved = json.loads(state_file().read_text())
            if "khugepaged_sleep" not in saved:
                saved["khugepaged_sleep"] = KHUGEPAGED_SLEEP.read_text().strip()
                self._store(saved)
            _write(KHUGEPAGED_SLEEP, KHUGEPAGED_PAUSED_MS, self.trace)
        for k, p in kdamond_state_files().items():
            if p.read_text().strip() == "on":
                # Note it in the state file first, whoever saved that file.
                saved = json.loads(state_file().read_text())
                saved.setdefault("kdamonds", {})[k] = "on"
                self._store(saved)
                _write(p, "off", self.trace)

    def _start_keeper(self, binary: str) -> None:
        self.keeper = subprocess.Popen(
            [binary, "keeper"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )
        assert self.keeper.stdout is not None
        if self.keeper.stdout.read(1) != b"k":
            self.stop_keeper()
            raise KernelBackendError("kernel backend: the khugepaged keeper could not start")
        if self.trace is not None:
            message = f"keeper (process {self.keeper.pid}): MADV_HUGEPAGE on 4M, untouched"
            self.trace("khugepaged", message)

    def stop_keeper(self) -> None:
        """End `worker keeper` (its stdin closes); its mm leaves khugepaged's list."""
        keeper, self.keeper = self.keeper, None
        if keeper is None:
            return
        assert keeper.stdin is not None and keeper.stdout is not None
        keeper.stdin.close()
        try:
            keeper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait()
        keeper.stdout.close()

    def set_thp(self, mode: str) -> None:
        _write(THP_DIR / "enabled", mode, self.trace)

    def set_mthp(self, size_kb: int, mode: str) -> None:
        _write(THP_DIR / f"hugepages-{size_kb}kB" / "enabled", mode, self.trace)

    def set_swap(self, pages: int | None) -> None:
        """`swap SIZE`: a zram device of that size is the swap; `swap off` (None): none."""
        if self.swap_pages is not None or ZRAM_DEV in active_swaps():
            self._zram_off()
            self.swap_pages = None
        if pages is None:
            return
        self.mark_swap_ours()
        _write(ZRAM_DIR / "disksize", str(pages * 4096), self.trace)
        _run(["mkswap", ZRAM_DEV], self.trace)
        _run(["swapon", ZRAM_DEV], self.trace)
        self.swap_pages = pages

    def _zram_off(self) -> None:
        if ZRAM_DEV in active_swaps():
            _run(["swapoff", ZRAM_DEV], self.trace)
        _write(ZRAM_DIR / "reset", "1", self.trace)
