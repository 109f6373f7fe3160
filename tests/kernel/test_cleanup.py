"""Every machine setting a run changes is undone: on SIGTERM, and after SIGKILL by the next run."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from kernel_helpers import run_text

from foliosim.kernel import memcg
from foliosim.kernel.settings import (
    KHUGEPAGED_SLEEP,
    THP_DIR,
    RunLock,
    Settings,
    active_swaps,
    kdamond_state_files,
    mthp_enabled_files,
    state_file,
)

ROOT = Path(__file__).resolve().parents[2]

# Paused at line 7 (`observe`) with every kind of setting changed and a forked child alive.
PAUSING = textwrap.dedent("""
    import sys, time
    from foliosim.kernel.backend import KernelBackend
    from foliosim.scenario.parser import parse_text
    TEXT = "mthp 64K always\\nthp always\\nswap 64M\\nmmap A 4\\nwrite A all\\nfork p1\\nobserve x\\n"
    paused = []
    def trace(line, func, message):
        print(f"TRACE {line} {func} {message}", flush=True)
        if line == 7 and not paused:
            paused.append(1)
            print("READY", flush=True)
            time.sleep(60)
    KernelBackend().run(parse_text(TEXT, "pause.scn"), trace=trace)
    print("FINISHED", flush=True)
""")


def machine_settings() -> dict:
    # Under the run lock: other engineers' kernel runs change these while they last.
    with RunLock():
        return _settings()


def _settings() -> dict:
    return {
        "thp": (THP_DIR / "enabled").read_text(),
        "mthp": {kb: p.read_text() for kb, p in mthp_enabled_files().items()},
        "swaps": active_swaps(),
        "zram_disksize": Path("/sys/block/zram0/disksize").read_text(),
        "khugepaged_sleep": KHUGEPAGED_SLEEP.read_text(),
        "kdamonds": {k: p.read_text() for k, p in kdamond_state_files().items()},
        # memcg (issue 13): the scenario cgroups of runs (foliosim-<runner pid>)
        "memcgs": sorted(p.name for p in memcg.V1_ROOT.glob("foliosim-*")),
    }


def start_paused_run() -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    deadline = time.monotonic() + 150  # the run may first wait for the lock (up to 120 s)
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        pids += [int(p) for p in re.findall(r"pid (\d+)", line)]
        pids += [int(p) for p in re.findall(r"fork\(\) = (\d+)", line)]
        if line.strip() == "READY":
            return proc, pids
    proc.kill()
    pytest.fail(f"the paused run never got to line 7: {proc.stderr.read() if proc.stderr else ''}")


def _keepers_of(parent: int) -> list[int]:
    """The `worker keeper` processes whose parent is `parent`."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            ppid = int((d / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and argv[1:2] == [b"keeper"]:
            found.append(int(d.name))
    return found


def wait_dead(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _is_alive(p)]
        time.sleep(0.02)
    return alive


def _is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.kernel
class TestSettingsAreRestored:
    def teardown_method(self) -> None:
        with RunLock():
            Settings.restore_saved()  # never leave the machine changed, whatever failed

    def test_sigterm_mid_run_restores_mthp_thp_and_swap(self):
        before = machine_settings()
        proc, pids = start_paused_run()
        assert len(pids) == 3  # p0, the poke helper, p1
        during = _settings()  # the paused run holds the lock
        assert "/dev/zram0" in during["swaps"]
        assert "[always]" in during["mthp"][64]
        assert during["khugepaged_sleep"].strip() == "3600000"  # paused for the run
        assert all(state.strip() == "off" for state in during["kdamonds"].values())
        # One process of the run keeps an mm on khugepaged's list (Settings.set_start()).
        keepers = _keepers_of(proc.pid)
        assert len(keepers) == 1
        # Every scenario process is in the run's memory cgroup, the runner is not.
        assert during["memcgs"] == [f"foliosim-{proc.pid}"]
        procs = (memcg.V1_ROOT / during["memcgs"][0] / "cgroup.procs").read_text().split()
        assert sorted(int(p) for p in procs) == sorted(pids[:1] + pids[2:])
        pids += keepers
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGTERM
        assert machine_settings() == before
        assert not state_file().exists()
        assert wait_dead(pids) == []

    def test_sigint_mid_run_restores_and_raises_keyboard_interrupt(self):
        # Under Python's own SIGINT handling a caller (a fuzz campaign) must see
        # KeyboardInterrupt and stop, not a backend failure it would go on from.
        before = machine_settings()
        proc, pids = start_paused_run()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGINT, err
        assert err.rstrip().endswith("KeyboardInterrupt"), err
        assert machine_settings() == before
        assert not state_file().exists()
        assert wait_dead(pids) == []

    def test_sigkill_mid_run_is_undone_by_the_next_run(self):
        before = machine_settings()
        proc, pids = start_paused_run()
        proc.kill()
        proc.wait(timeout=30)
        # The workers die with the runner (PR_SET_PDEATHSIG, EOF on their sockets).
        assert wait_dead(pids) == []
        with RunLock():  # the lock died with the runner
            left, saved = _settings(), state_file().exists()
        # Its memory cgroup is left (empty) until the next run removes it.
        assert left.pop("memcgs") in ([f"foliosim-{proc.pid}"], [])
        before_memcgs = before.pop("memcgs")
        # Another engineer's run may have taken the lock first and repaired it already.
        assert ("/dev/zram0" in left["swaps"] and saved) or (left == before and not saved)
        before["memcgs"] = before_memcgs
        obs = run_text("mmap A 1\nwrite A 0\n")
        assert obs["final"]["procs"]["p0"]["maps"]["A"]["pages"][0]["state"] == "present"
        assert machine_settings() == before
        assert not state_file().exists()


NONROOT = textwrap.dedent("""
    import os, sys
    from foliosim.kernel.backend import KernelBackend
    from foliosim.kernel.errors import KernelBackendError
    from foliosim.scenario.parser import parse_text
    import foliosim.cli.main, foliosim.cli.run
    os.setgid(65534)
    os.setuid(65534)
    reason = KernelBackend.unavailable_reason()
    print("REASON", reason)
    try:
        KernelBackend().run(parse_text("mthp 64K always\\nmmap A 1\\n", "x.scn"))
        print("RAN")
    except KernelBackendError as e:
        print("REFUSED", e)
    sys.stdout.flush()
    sys.exit(foliosim.cli.main.main(["run", "--backend", "kernel", sys.argv[1]]))
""")


@pytest.mark.kernel  # as root, it drops to uid 65534
def test_non_root_run_is_refused_in_one_line_without_traceback():
    before = machine_settings()
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        scn = Path(d) / "x.scn"
        scn.write_text("mthp 64K always\nmmap A 1\nwrite A 0\n")
        scn.chmod(0o644)
        proc = subprocess.run(
            [sys.executable, "-c", NONROOT, str(scn)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        for p in Path(d).iterdir():
            p.unlink()
        os.rmdir(d)
    out = proc.stdout.splitlines()
    assert out[0].startswith("REASON needs root"), proc.stdout
    assert out[1] == "REFUSED kernel backend: " + out[0][len("REASON ") :]
    assert "RAN" not in proc.stdout
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "root" in proc.stderr
    assert machine_settings() == before
