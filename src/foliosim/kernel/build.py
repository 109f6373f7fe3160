"""Compile the C worker (worker.c) once per source version into a cache directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from foliosim.kernel.errors import KernelBackendError

SOURCE = Path(__file__).with_name("worker.c")


def cache_dir() -> Path:
    """Where compiled workers live: $FOLIOSIM_CACHE, else $XDG_CACHE_HOME/foliosim."""
    env = os.environ.get("FOLIOSIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "foliosim"


def worker_binary() -> Path:
    """Path of the compiled worker, compiling it first if this source was never built."""
    src = SOURCE.read_bytes()
    digest = hashlib.sha256(src).hexdigest()[:16]
    out = cache_dir() / f"worker-{digest}"
    if out.exists():
        return out
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise KernelBackendError("kernel backend: no C compiler (gcc or cc) to build the worker")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent first runs never see half a binary.
    fd, tmp = tempfile.mkstemp(prefix="worker-", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["unknown error"])[0]
            raise KernelBackendError(f"kernel backend: building {SOURCE.name} failed: {first}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
