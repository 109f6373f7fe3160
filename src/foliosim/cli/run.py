"""`foliosim run FILE...`: run scenarios and report what each backend observed.

Every file is parsed before anything runs, and every refusal (bad scenario,
unreadable file, unavailable backend, impossible option) is reported before
the first scenario starts.  Exit statuses: EXIT_STATUSES and foliosim.cli.main.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from foliosim import observation
from foliosim.check.diff import diff_observations, format_difference
from foliosim.cli.common import (
    DEFAULT_PROFILE,
    UsageError,
    choose_profile,
    kernel_backend,
    model_backend,
    read_scenario,
)
from foliosim.cli.report import failed_expects, print_report
from foliosim.scenario.ast import Scenario
from foliosim.scenario.errors import ScenarioError

# `c`: the scenario exported as a C program (foliosim.cexport), a second kernel harness.
BACKEND_CHOICES = ("model", "kernel", "both", "c", "model,c", "kernel,c", "model,kernel,c")

EXIT_STATUSES = {
    0: "every expectation held (and with --backend both, model and kernel agree)",
    1: "an expectation failed, or model and kernel differ",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim run`."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario files (.scn)")
    parser.add_argument(
        "--backend",
        "--backends",
        dest="backend",
        choices=BACKEND_CHOICES,
        default="model",
        help="where to run: the model (default), the live kernel, both and compare, "
        "or a list of model, kernel and c (the exported C program) to compare",
    )
    parser.add_argument(
        "--profile",
        help="model profile (default: with --backend both the profile of the running "
        f"kernel's build, else {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME|FILE.py",
        help="run the model with a variant's replaced functions (docs/variants.md)",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        help="write the observation JSON to OUT ('-' for stdout; a directory "
        "receiving <stem>.json with several files, "
        "<stem>.<backend>.json with --backend both)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="print each step of the backend as it happens"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check model invariants after every step (model backend)",
    )
    parser.add_argument("--raw", action="store_true", help="print sizes unscaled, in kB")
    parser.add_argument(
        "--kernel",
        metavar="6.1|6.12|DEB|VMLINUZ",
        help="run the c backend in a qemu guest of this kernel (Debian's 6.1 or 6.12, a "
        "linux-image-* package, a .deb or a vmlinuz; docs/guests.md); --backend both is "
        "then model and c, the model with that kernel's profile",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="with --kernel: a guest that fails prints its console's last lines",
    )


def _json_targets(
    args: argparse.Namespace, scenarios: list[Scenario], backends: list[str]
) -> dict[tuple[int, str], str]:
    # (scenario index, backend name) -> output path ('-' = stdout), decided and
    # checked before anything runs.
    out = args.json
    if out is None:
        return {}
    several = len(scenarios) > 1 or len(backends) > 1
    if out == "-":
        if several:
            raise UsageError(
                "foliosim run: --json - takes one scenario on one backend; "
                "give a directory to receive several observations"
            )
        return {(0, backends[0]): "-"}
    if not several:
        if Path(out).is_dir():
            return {(0, backends[0]): str(Path(out) / f"{Path(scenarios[0].path).stem}.json")}
        return {(0, backends[0]): out}
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise UsageError(
            f"foliosim run: --json {out}: not a directory (several observations "
            "go to <stem>.json files in a directory)"
        )
    targets: dict[tuple[int, str], str] = {}
    seen: dict[str, str] = {}
    for i, sc in enumerate(scenarios):
        stem = Path(sc.path).stem
        if stem in seen:
            raise UsageError(
                f"foliosim run: --json {out}: {seen[stem]} and {sc.path} would "
                f"both write {stem}.json"
            )
        seen[stem] = sc.path
        for name in backends:
            fname = f"{stem}.{name}.json" if len(backends) > 1 else f"{stem}.json"
            targets[(i, name)] = str(directory / fname)
    return targets


def _write_json(target: str, obs: dict[str, Any]) -> None:
    text = observation.dumps(obs)
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"foliosim run: --json {target}: {e.strerror or e}") from None


class _Tracer:
    """Prints trace lines per scenario line, folding what differs only in one number.

    Within one scenario line, the steps of each function with the same message
    shape are printed together, runs of consecutive numbers as a range:
    `lru_lazyfree: folio p0 A 0-30 now lazyfree`, so a 64-page scenario reads
    like a kernel log rather than a page-by-page dump.
    """

    _NUM = re.compile(r"(\d+)")

    def __init__(self, console: Console, prefix: str = "") -> None:
        self.console = console
        self.prefix = prefix
        self.line: int | None = None
        self.groups: dict[tuple[str, str], list[list[str]]] = {}

    def __call__(self, line: int, func: str, message: str) -> None:
        if line != self.line:
            self.flush()
            self.line = line
        key = (func, self._NUM.sub("#", message))
        self.groups.setdefault(key, []).append(self._NUM.split(message))

    def flush(self) -> None:
        for (func, _), messages in self.groups.items():
            for text in _fold(messages):
                self.console.print(
                    Text(f"{self.prefix}{self.line:>4} {func}: {text}"),
                    highlight=False,
                    soft_wrap=True,
                )
        self.console.file.flush()
        self.groups = {}


def _fold(messages: list[list[str]]) -> list[str]:
    """Join messages (split around their numbers) whose numbers step by one in one place."""
    out: list[str] = []
    i = 0
    while i < len(messages):
        first = messages[i]
        j, k = i, None
        while j + 1 < len(messages):
            cur, nxt = messages[j], messages[j + 1]
            diff = [n for n in range(1, len(cur), 2) if cur[n] != nxt[n]]
            if (
                len(diff) != 1
                or (k is not None and diff[0] != k)
                or int(nxt[diff[0]]) != int(cur[diff[0]]) + 1
            ):
                break
            k = diff[0]
            j += 1
        words = list(first)
        if k is not None:
            words[k] = f"{first[k]}-{messages[j][k]}"
        out.append("".join(words))
        i = j + 1
    return out


def _tracer(console: Console, prefix: str = "") -> _Tracer:
    return _Tracer(console, prefix)


def main(args: argparse.Namespace) -> int:
    """Run every scenario of `args.files`; the exit status of `foliosim run`."""
    guest = getattr(args, "kernel", None)
    if guest is not None and args.backend == "both":
        names = ["model", "c"]
    else:
        names = ["model", "kernel"] if args.backend == "both" else args.backend.split(",")
    if guest is not None and "kernel" in names:
        raise UsageError(
            f"foliosim run: --kernel {guest}: the worker harness runs on this machine's kernel "
            "only; a guest runs the exported C programs (--backend c, or model,c)"
        )
    if guest is not None and args.trace:
        raise UsageError(
            f"foliosim run: --kernel {guest}: --trace is not available in a guest (the "
            "programs' stderr comes back after the boot; see --verbose)"
        )
    if guest is not None and "c" not in names:
        raise UsageError(
            f"foliosim run: --kernel {guest}: a guest runs the c backend (--backend c, model,c "
            "or both)"
        )
    if args.check and "model" not in names:
        raise UsageError(
            "foliosim run: --check checks model invariants; it needs --backend model or both"
        )

    scenarios: list[Scenario] = []
    refused: list[str] = []
    for path in args.files:
        try:
            scenarios.append(read_scenario(path))
        except (ScenarioError, UsageError) as e:
            refused.append(str(e))
    if refused:
        for line in refused:
            sys.stderr.write(line + "\n")
        return 2

    targets = _json_targets(args, scenarios, names)
    backends: dict[str, Any] = {}
    note = None
    if guest is not None:
        from foliosim.guest.backend import guest_backend

        backends["c"] = guest_backend(guest, args.verbose)
    if "model" in names:
        if args.variant is not None:
            # A variant names its own base profile (BASE in the file).
            backends["model"] = model_backend(
                args.profile or DEFAULT_PROFILE, args.check, args.variant
            )
        else:
            # Either kernel harness (the worker or the exported C program) runs this kernel.
            on_kernel = "kernel" in names or "c" in names
            release = backends["c"].release if guest is not None else None
            profile, note = choose_profile(args.profile, on_kernel, "foliosim run", release)
            backends["model"] = model_backend(profile, args.check)
    if "kernel" in names:
        backends["kernel"] = kernel_backend()
    if "c" in names and guest is None:
        from foliosim.cexport.backend import c_backend

        backends["c"] = c_backend()

    # The JSON owns stdout when it goes there; the report moves to stderr.
    report_file = sys.stderr if "-" in targets.values() else sys.stdout
    console = Console(file=report_file, highlight=False, soft_wrap=True)
    # With two backends, each trace line says whose step it is.
    traces = {
        name: _tracer(console, f"{name} " if len(names) > 1 else "") if args.trace else None
        for name in names
    }

    if note is not None:
        console.print(note)
        console.print()
    if guest is not None:
        # Several scenarios per boot: the guest runs them all first, in sequence.
        backends["c"].run_many(scenarios)
    status = 0
    for i, scenario in enumerate(scenarios):
        if i:
            console.print()
        observed: dict[str, dict[str, Any]] = {}
        for n, name in enumerate(names):
            if n:
                console.print()
            tracer = traces[name]
            obs = backends[name].run(scenario, trace=tracer)
            if tracer is not None:
                tracer.flush()
            observed[name] = obs
            if (i, name) in targets:
                _write_json(targets[(i, name)], obs)
            print_report(console, obs, scenario, raw=args.raw)
            if failed_expects(obs):
                status = 1
        for x, a in enumerate(names):
            for b in names[x + 1 :]:
                status |= _compare(console, observed, scenario, a, b)
    return status


def _compare(
    console: Console, observed: dict[str, dict[str, Any]], scenario: Scenario, a: str, b: str
) -> int:
    """Print how backends a and b differ on `scenario`; 1 if they do."""
    diffs = diff_observations(observed[a], observed[b], scenario)
    console.print()
    if not diffs:
        console.print(Text(f"{a} and {b} agree ({scenario.name})", style="bold green"))
        return 0
    console.print(
        Text(
            f"{len(diffs)} difference{'s' if len(diffs) > 1 else ''}, {a} vs {b} ({scenario.name})",
            style="bold red",
        )
    )
    for d in diffs:
        console.print(Text("  " + format_difference(d, a, b)), highlight=False)
    return 1
