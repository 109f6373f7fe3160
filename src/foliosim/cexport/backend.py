"""`--backend c`: export the scenario as C, compile it once per content, run it, read its JSON.

The second live-kernel harness: independent of the worker-based one (kernel/),
it shares only the scenario contract and the observation schema with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from foliosim.cexport.generate import CProgram
from foliosim.kernel import procfs
from foliosim.kernel.errors import KernelBackendError
from foliosim.scenario.ast import Scenario

CFLAGS = ("-Wall", "-Wextra", "-Werror")
# The file's own build line (its head comment, export-c --check, the library tests) is -O2.
# --backend c builds with -O0: half the compile time, and the program is straight-line
# syscalls and page copies, whose speed does not matter.  Its memory behaviour does not
# change with the level: every own page is populated up front either way (prelude.c).
EXPORT_OPT = "-O2"
BACKEND_OPT = "-O0"
# The program's own exit statuses (prelude.c): 0 and 1 are runs, 3 an error, 4 a skip.
EXIT_SKIPPED = 4


class GeneratorBug(KernelBackendError):
    """A generated C file did not compile: a bug of the exporter, not of the scenario."""


def cache_dir() -> Path:
    """Where compiled exports live: $FOLIOSIM_CACHE/c, else ~/.cache/foliosim/c."""
    env = os.environ.get("FOLIOSIM_CACHE")
    if env:
        return Path(env) / "c"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "foliosim" / "c"


def compiler() -> str | None:
    """The C compiler to use (gcc, else cc), or None."""
    return shutil.which("gcc") or shutil.which("cc")


def compile_c(
    source: str, name: str = "scenario", extra: tuple[str, ...] = (), opt: str = EXPORT_OPT
) -> Path:
    """The binary of C `source`, compiled with `opt` -Wall -Wextra -Werror unless cached.

    The cache key is the hash of the source and the flags, so a changed
    exporter or scenario is a new binary.  A compile failure raises
    GeneratorBug with the compiler's first error.
    """
    cc = compiler()
    if cc is None:
        raise KernelBackendError("c backend: no C compiler (gcc or cc)")
    flags = (opt, *CFLAGS, *extra)
    digest = hashlib.sha256((source + "\0" + " ".join(flags)).encode()).hexdigest()[:20]
    out = cache_dir() / f"{Path(name).stem[:40]}-{digest}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / (Path(name).stem + ".c")
        src.write_text(source)
        proc = subprocess.run(
            [cc, *flags, "-o", str(Path(tmp) / "a.out"), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
            first = (errors or proc.stderr.strip().splitlines() or ["unknown error"])[0]
            raise GeneratorBug(
                f"export-c: generator bug: the C file of {name} does not compile: {first}"
            )
        # Rename into place: a concurrent first run never sees half a binary.
        os.replace(Path(tmp) / "a.out", out)
    return out


class CBackend(CProgram):
    """Runs scenarios as exported C programs on the live kernel; the same JSON as the others.

    Counterpart of the kernel backend (a second harness); the kernel is Linux as booted.
    Its cmd_<keyword> handlers (CProgram's) emit each line's code; run() compiles and
    runs the program and returns the observation it prints.
    """

    name = "c"

    @staticmethod
    def unavailable_reason() -> str | None:
        """One line saying why this machine cannot run exported scenarios; None if it can."""
        reason = procfs.live_kernel_unavailable_reason()
        if reason:
            return reason
        if len(os.sched_getaffinity(0)) < 2:
            return "needs at least 2 CPUs (scenario CPU and orchestrator CPU)"
        if compiler() is None:
            return "no C compiler (gcc or cc) to build the exported scenario"
        return None

    def run(self, scenario: Scenario, trace: Any = None) -> dict[str, Any]:
        """Export, compile (cached), run; the program's observation object."""
        reason = self.unavailable_reason()
        if reason:
            raise KernelBackendError(f"c backend: {reason}")
        binary = compile_c(self.program(scenario), scenario.name, opt=BACKEND_OPT)
        argv = [str(binary), *(["--trace"] if trace is not None else [])]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        for line in proc.stderr.splitlines():
            parts = line.split("\t", 3)
            if trace is not None and len(parts) == 4 and parts[0] == "trace":
                trace(int(parts[1]), parts[2], parts[3])
        if proc.returncode not in (0, 1):
            lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("trace\t")]
            what = lines[-1] if lines else f"exit status {proc.returncode}"
            raise KernelBackendError(f"c backend: {what}")
        try:
            obs: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise GeneratorBug(
                f"export-c: generator bug: {scenario.name}: the program's JSON does not parse: {e}"
            ) from None
        return obs


def c_backend() -> CBackend:
    """The C backend, refused up front (one line, as usage) if it cannot run here."""
    from foliosim.cli.common import UsageError

    reason = CBackend.unavailable_reason()
    if reason:
        raise UsageError(f"foliosim: the c backend cannot run here: {reason}")
    return CBackend()
