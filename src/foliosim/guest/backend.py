"""`--backend c --kernel K`: the exported C programs, run inside a qemu guest of kernel K.

Counterpart of foliosim.cexport.backend.CBackend (which runs the same programs on this
machine's kernel): the programs are built static, put in an initramfs with a small
/init (init.c) and zram's modules, and the guest runs several scenarios per boot, in
sequence, printing each observation between markers on its serial console.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from foliosim.cexport.backend import EXIT_SKIPPED, GeneratorBug
from foliosim.cexport.generate import CProgram
from foliosim.guest import initramfs, qemu
from foliosim.guest.kernels import GuestError, GuestKernel, resolve
from foliosim.kernel.errors import KernelBackendError
from foliosim.scenario.ast import Scenario

# Scenarios per boot: each program is a ~1 MB static binary held in the guest's RAM.
PER_BOOT = 16
# Time limit of one boot: TCG boots Debian's kernels to /init in about 6 s here
# (load 6-8); a scenario under TCG takes 1-5 s.  Generous, for loaded machines.
BOOT_SECONDS = 90.0
SCENARIO_SECONDS = 45.0

_MARK = re.compile(r"^@@foliosim-(\S+)(?: (.*))?$")


class GuestBackend(CProgram):
    """Runs scenarios as exported C programs in a qemu guest of another kernel.

    run() of a scenario that run_many() already ran returns its observation; run_many()
    boots once per PER_BOOT scenarios.
    """

    name = "c"

    def __init__(self, kernel: GuestKernel, verbose: bool = False) -> None:
        super().__init__()
        self.kernel = kernel
        self.verbose = verbose
        self.release: str | None = kernel.release
        self.results: dict[int, dict[str, Any] | KernelBackendError] = {}
        self.boots: list[qemu.Console] = []
        self.ran: dict[int, Scenario] = {}  # id -> the scenario (alive while its result is kept)

    def run(self, scenario: Scenario, trace: Any = None) -> dict[str, Any]:
        """The observation of `scenario` in the guest (booting for it unless already run)."""
        if id(scenario) not in self.results or self.ran[id(scenario)] is not scenario:
            self.run_many([scenario])
        # Each result is returned once: a later scenario object may get the same id().
        result = self.results.pop(id(scenario))
        del self.ran[id(scenario)]
        if isinstance(result, KernelBackendError):
            raise result
        return result

    def run_many(self, scenarios: list[Scenario]) -> None:
        """Run `scenarios` in as few boots as PER_BOOT allows; results kept for run()."""
        todo = [s for s in scenarios if self.ran.get(id(s)) is not s]
        for s in todo:
            self.ran[id(s)] = s
        for i in range(0, len(todo), PER_BOOT):
            self._boot(todo[i : i + PER_BOOT])

    def _boot(self, batch: list[Scenario]) -> None:
        programs = []
        for sc in batch:
            source = self.program(sc)
            programs.append((_safe(sc.name), initramfs.compile_static(source, _safe(sc.name))))
        modules = self.kernel.modules_for()
        image = initramfs.build_initramfs(programs, modules)
        timeout = BOOT_SECONDS + SCENARIO_SECONDS * len(batch)
        console = qemu.boot(self.kernel, image, timeout)
        self.boots.append(console)
        runs = parse_console(console.text)
        if runs.release:
            self.release = runs.release
        if not runs.booted:
            raise self._error(
                console,
                f"guest {self.kernel.name}: no boot in {timeout:.0f} s"
                if console.timed_out
                else f"guest {self.kernel.name}: the kernel did not reach /init",
            )
        for i, sc in enumerate(batch):
            key = f"{i:04d}-{_safe(sc.name)}"
            if key not in runs.status:
                why = (
                    f"no result within the boot's {timeout:.0f} s"
                    if console.timed_out
                    else "the guest stopped before it ran"
                )
                self.results[id(sc)] = self._error(
                    console, f"c backend in guest {self.kernel.name}: {sc.name}: {why}"
                )
                continue
            status = runs.status[key]
            if status not in (0, 1):
                err = [ln for ln in runs.stderr.get(key, "").splitlines() if ln.strip()]
                what = err[-1] if err else f"exit status {status}"
                if status == EXIT_SKIPPED:
                    what = f"refused: {what}"
                self.results[id(sc)] = self._error(
                    console, f"c backend in guest {self.kernel.name} ({self.release}): {what}"
                )
                continue
            try:
                self.results[id(sc)] = json.loads(runs.stdout[key])
            except json.JSONDecodeError as e:
                self.results[id(sc)] = GeneratorBug(
                    f"c backend in guest {self.kernel.name}: {sc.name}: "
                    f"the program's JSON does not parse: {e}"
                )

    def _error(self, console: qemu.Console, line: str) -> GuestError:
        if self.verbose:
            line += "\n--- guest console, last lines ---\n" + console.last_lines()
        return GuestError(line)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem)[:40] or "scenario"


class ConsoleRuns:
    """What parse_console() read: the guest's release, and each program's output and status."""

    def __init__(self) -> None:
        self.booted = False
        self.done = False
        self.release: str | None = None
        self.modules: dict[str, int] = {}
        self.lru_gen_error = 0
        self.stdout: dict[str, str] = {}
        self.stderr: dict[str, str] = {}
        self.status: dict[str, int] = {}


def parse_console(text: str) -> ConsoleRuns:
    """The runs between init.c's markers in a guest's console `text`."""
    runs = ConsoleRuns()
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        m = _MARK.match(line)
        if not m:
            if current is not None:
                current.append(line)
            continue
        what, rest = m.group(1), m.group(2) or ""
        if what == "guest":
            runs.booted = True
            runs.release = rest.removeprefix("release ").strip() or None
        elif what == "module":
            name, _, err = rest.rpartition(" ")
            runs.modules[name] = int(err)
        elif what == "lru_gen":
            runs.lru_gen_error = int(rest or 0)
        elif what == "begin":
            current = []
            runs.stdout[rest] = ""
        elif what == "stderr":
            runs.stdout[rest] = "\n".join(current or [])
            current = []
        elif what == "end":
            name, _, status = rest.rpartition(" ")
            runs.stderr[name] = "\n".join(current or [])
            runs.status[name] = int(status)
            current = None
        elif what == "done":
            runs.done = True
    return runs


def guest_backend(spec: str, verbose: bool = False) -> GuestBackend:
    """The guest backend for `--kernel SPEC`, refused up front (one line) if it cannot run."""
    from foliosim.cli.common import UsageError

    reason = qemu.qemu_unavailable_reason()
    if reason:
        raise UsageError(f"foliosim: --kernel {spec}: {reason}")
    try:
        kernel = resolve(spec)
    except GuestError as e:
        raise UsageError(f"foliosim: {e}") from None
    return GuestBackend(kernel, verbose)
