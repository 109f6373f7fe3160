"""Boot a guest kernel under qemu (TCG, 2 CPUs) and return what its console printed.

KVM is not used: on this machine a KVM guest dies in its decompressor, so
guests run under TCG (`-accel tcg -cpu max`).  The qemu process is killed on
every way out of boot(): done, time limit, an exception, a signal to us.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from foliosim.guest.kernels import GuestError, GuestKernel

QEMU = "qemu-system-x86_64"
# The scenario's pinning assumes two CPUs (one for the scenario, one observing).
SMP = 2
MEMORY_MB = 1024
APPEND = "console=ttyS0 loglevel=1 panic=-1 transparent_hugepage=madvise mitigations=off"


@dataclass
class Console:
    """The guest's console text and how the boot ended."""

    text: str
    seconds: float
    timed_out: bool
    returncode: int | None
    pid: int = 0  # qemu's, gone (killed and reaped) by the time boot() returns

    def last_lines(self, n: int = 20) -> str:
        return "\n".join(self.text.splitlines()[-n:])


def qemu_unavailable_reason() -> str | None:
    """Why guests cannot boot here (one line), or None."""
    if shutil.which(QEMU) is None:
        return f"no {QEMU} (apt-get install qemu-system-x86)"
    return None


def boot(kernel: GuestKernel, initramfs: bytes, timeout: float) -> Console:
    """Boot `kernel` with `initramfs`; its console once it powers off or `timeout` passes."""
    reason = qemu_unavailable_reason()
    if reason:
        raise GuestError(f"guest: {reason}")
    with tempfile.TemporaryDirectory(prefix="foliosim-guest-") as tmp:
        initrd = Path(tmp) / "initrd.cpio"
        initrd.write_bytes(initramfs)
        log = Path(tmp) / "console.log"
        argv = [
            QEMU,
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", str(SMP),
            "-m", str(MEMORY_MB),
            "-kernel", str(kernel.vmlinuz),
            "-initrd", str(initrd),
            "-append", APPEND,
            "-display", "none",
            "-monitor", "none",
            "-serial", f"file:{log}",
            "-no-reboot",
            "-nodefaults",
        ]  # fmt: skip
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

        def on_signal(signum: int, frame: object) -> None:
            _kill(proc)
            signal.signal(signum, old[signum])
            os.kill(os.getpid(), signum)

        try:
            for s in old:
                signal.signal(s, on_signal)
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                err = b""
        finally:
            _kill(proc)
            for s, h in old.items():
                signal.signal(s, h)
        text = log.read_text(errors="replace") if log.exists() else ""
        if proc.returncode not in (0, None) and not timed_out and "@@foliosim-guest" not in text:
            last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise GuestError(f"guest: qemu failed (exit {proc.returncode}): {last}")
        return Console(text, time.monotonic() - start, timed_out, proc.returncode, proc.pid)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
