"""`foliosim explain FILE`: the model functions each scenario line went through.

Runs the scenario on the model and lists, per scenario line, every model
function entered (foliosim/model/*, watched with sys.setprofile), in
first-entry order and indented by call depth, so a difference against Linux
leads back to the code that produced it.  Kernel-named functions only:
helpers whose names start with '_' and the backend's syscall layer are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from foliosim.cli.common import DEFAULT_PROFILE, model_backend, read_scenario
from foliosim.cli.report import backend_title, failed_expects

EXIT_STATUSES = {
    0: "every expectation held",
    1: "an expectation failed",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim explain`."""
    parser.add_argument("file", metavar="FILE", help="a scenario file (.scn)")
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"model profile (default {DEFAULT_PROFILE})"
    )
    parser.add_argument(
        "--variant",
        metavar="NAME|FILE.py",
        help="with a variant's replaced functions (docs/variants.md); they are listed too",
    )
    parser.add_argument(
        "--messages", action="store_true", help="also print every trace message under its function"
    )


def main(args: argparse.Namespace) -> int:
    """Print the per-line function lists; 1 if an expectation failed, as `run` does."""
    scenario = read_scenario(args.file)
    backend = model_backend(args.profile, variant=args.variant)
    steps: list[tuple[int, str, str]] = []

    def trace(line: int, func: str, message: str) -> None:
        steps.append((line, func, message))

    calls = _CallRecorder(backend)
    sys.setprofile(calls)
    try:
        obs: dict[str, Any] = backend.run(scenario, trace=trace)
    finally:
        sys.setprofile(None)
    console = Console(highlight=False, soft_wrap=True)
    title = Text().append("foliosim explain: ", style="bold")
    title.append(backend_title(obs), style="bold cyan")
    title.append(f"  scenario {scenario.name}")
    console.print(title)

    funcs = calls.by_line
    lines = [c.line for c in scenario.commands]
    known = set(lines)
    # Steps outside any command line (set-up, teardown) still lead somewhere.
    lines.extend(sorted(set(funcs) - known))
    for line in lines:
        cmd_text = next((c.text for c in scenario.commands if c.line == line), None)
        head = Text().append(f"{line:>4} ", style="dim")
        head.append(
            cmd_text if cmd_text is not None else "(outside any scenario line)", style="bold"
        )
        console.print(head)
        if line not in funcs:
            console.print(Text("       (no model function entered)", style="dim"))
            continue
        for depth, name in funcs[line]:
            console.print(Text("       " + "  " * depth + name))
        if args.messages:
            for step_line, func, message in steps:
                if step_line == line:
                    console.print(Text(f"         {func}: {message}", style="dim"))
    return 1 if failed_expects(obs) else 0


_MODEL_DIR = str(Path(__file__).resolve().parent.parent / "model")
# The backend, the user program, STATE reading, state containers and the trace
# plumbing are not kernel steps; counters, reference-count primitives and page
# allocation are bookkeeping.
_SKIP_FILES = (
    "backend.py",
    "profile.py",  # profile.has(): which behaviour, not a kernel function
    "machine.py",
    "types.py",
    "checks.py",
    "user.py",
    "observe.py",
    "trace.py",
    "vmstat.py",
    "page_ref.py",
    "page_alloc.py",
)
# Flag tests and refcount one-liners: entered everywhere, they would bury the path.
_SKIP_NAMES = frozenset(
    {
        "folio_nr_pages",
        "folio_get",
        "folio_set",
        "folio_clear",
        "page_folio",
        "pmd_ranges",
        "folio_mapcount",
        "folio_mapped",
        "anon_vma_alloc",
        "mm_get_huge_zero_folio",
    }
)


class _CallRecorder:
    """sys.setprofile hook: scenario line -> [(depth, function)] of model functions entered."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        # A variant's file holds model functions too (its replacements).
        variant = getattr(backend, "variant", None)
        self.variant_file = str(Path(variant.path).resolve()) if variant and variant.path else ""
        self.by_line: dict[int, list[tuple[int, str]]] = {}
        self.seen: dict[int, set[tuple[int, str]]] = {}
        self.depth = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        filename = code.co_filename
        if filename != self.variant_file and (
            not filename.startswith(_MODEL_DIR) or filename.endswith(_SKIP_FILES)
        ):
            return
        if event == "return":
            self.depth = max(0, self.depth - 1)
            return
        if event != "call":
            return
        self.depth += 1
        name = code.co_name
        machine = getattr(self.backend, "machine", None)
        if (
            machine is None
            or name[0] in "_<"
            and not name.startswith("__")
            or name in _SKIP_NAMES
            or name.startswith(("folio_test_", "__init__"))
        ):
            return
        key = (self.depth - 1, name)
        line = machine.line
        if key not in self.seen.setdefault(line, set()):
            self.seen[line].add(key)
            self.by_line.setdefault(line, []).append(key)
