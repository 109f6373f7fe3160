"""`foliosim`: dispatch to one subcommand module; no traceback ever reaches the user.

Each subcommand is a module foliosim.cli.<name> with `add_arguments(parser)`
and `main(args) -> int`.  Only the module of the chosen subcommand is
imported, so a subcommand that is missing or broken cannot stop the others.
Exit status: 0 ok, 1 an expectation failed or observations differ, 2 input
refused, 3 a model bug (InvariantError) or an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from foliosim.cli.common import UsageError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("foliosim.cli.run", "run scenarios on the model, the live kernel, or both"),
    "diff": ("foliosim.cli.diff", "compare two observation JSON files field by field"),
    "fuzz": ("foliosim.cli.fuzz", "search for scenarios on which model and kernel differ"),
    "equiv": ("foliosim.cli.equiv", "search for scenarios on which two model profiles differ"),
    "explain": ("foliosim.cli.explain", "list the model functions each scenario line goes through"),
    "cost": ("foliosim.cli.cost", "count what the kernel would do under each model variant"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints the usage block and then the error; we want one line.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _optional_class(module: str, name: str) -> type[BaseException]:
    # The error classes of modules other engineers write: absent module, nothing
    # of that class can be raised, so a never-raised placeholder stands in.
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a broken module must not break the CLI
        return _NeverRaised
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else _NeverRaised


class _NeverRaised(Exception):
    pass


def _load(name: str) -> Any:
    module, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and module.startswith(e.name):
            raise UsageError(
                f"foliosim {name}: not available in this installation ({module} is missing)"
            ) from None
        raise UsageError(f"foliosim {name}: not available: {e}") from None


def build_parser(chosen: str | None) -> _ArgumentParser:
    """The top-level parser; only `chosen` gets its full arguments (lazy import)."""
    parser = _ArgumentParser(
        prog="foliosim",
        description="An executable model of Linux anonymous-memory reclaim, "
        "checked against the live kernel.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _load(name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def _chosen(argv: Sequence[str]) -> str | None:
    for word in argv:
        if word in SUBCOMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `foliosim ARGV`; returns the exit status (console script entry point)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("FOLIOSIM_DEBUG", "") not in ("", "0")
    scenario_error = _optional_class("foliosim.scenario.errors", "ScenarioError")
    kernel_error = _optional_class("foliosim.kernel.errors", "KernelBackendError")
    invariant_error = _optional_class("foliosim.model.errors", "InvariantError")
    try:
        try:
            parser = build_parser(_chosen(argv))
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help and friends
            return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
        if getattr(args, "_main", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args._main(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`foliosim run x | head`): stop quietly.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter exit quiet
        except OSError:
            pass
        return EXIT_FAILED
    except (UsageError, scenario_error, kernel_error) as e:
        if debug:
            traceback.print_exc()
        _say(_one_line(str(e)))
        return EXIT_USAGE
    except invariant_error as e:
        if debug:
            traceback.print_exc()
        _say(f"foliosim: model invariant broken (a model bug):\n{e}")
        return EXIT_BUG
    except OSError as e:
        if debug:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        _say(f"foliosim: {where}{e.strerror or e}")
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the one place that turns bugs into one line
        if debug:
            traceback.print_exc()
        _say(
            f"foliosim: internal error: {type(e).__name__}: {_one_line(str(e))} "
            "(rerun with FOLIOSIM_DEBUG=1 for the traceback)"
        )
        return EXIT_BUG


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
