"""`foliosim`: dispatch to one subcommand module; no traceback ever reaches the user.

Each subcommand is a module foliosim.cli.<name> with `add_arguments(parser)`,
`main(args) -> int` and EXIT_STATUSES (what 0 and 1 mean for it).  Only the
module of the chosen subcommand is imported, so that `foliosim diff` does not
pay for Hypothesis.  Exit status, every subcommand (its --help says the same):

    0    success: every expectation held, nothing differs (per subcommand)
    1    a result, not an error: an expectation failed, observations differ,
         a campaign found something (per subcommand); also a closed stdout
         (`foliosim run x | head`), which ends quietly
    2    input refused, one line on stderr: bad arguments or options, a
         malformed scenario (FILE:LINE:COL: reason), an unreadable file or a
         file that is not an observation, an unwritable output, an unknown
         profile, or the kernel backend refusing (not root, a feature missing,
         swap already active)
    3    a model bug (an InvariantError from --check) or an internal error
    130  interrupted (SIGINT); fuzz and equiv still print their summary
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from typing import NoReturn

from foliosim.cli.common import UsageError
from foliosim.kernel.errors import KernelBackendError
from foliosim.model.errors import InvariantError
from foliosim.scenario.errors import ScenarioError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("foliosim.cli.run", "run scenarios on the model, the live kernel, or both"),
    "diff": ("foliosim.cli.diff", "compare two observation JSON files field by field"),
    "fuzz": ("foliosim.cli.fuzz", "search for scenarios on which model and kernel differ"),
    "equiv": ("foliosim.cli.equiv", "search for scenarios on which two model profiles differ"),
    "explain": ("foliosim.cli.explain", "list the model functions each scenario line goes through"),
    "export-c": ("foliosim.cli.export_c", "write a scenario as a standalone C program"),
    "cost": ("foliosim.cli.cost", "count what the kernel would do under each model variant"),
    "plot": ("foliosim.cli.plot", "plot Rss, LazyFree and the memcg's usage and LRU lists after every line"),
    "race": ("foliosim.cli.race", "check the lazyfree path's barriers with herd7 (LKMM, x86-TSO, ARMv8)"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# What 2, 3 and 130 mean, the same for every subcommand; 0 and 1 come from the module.
COMMON_EXIT_STATUSES: dict[int, str] = {
    EXIT_USAGE: "input refused (bad arguments, a malformed scenario, an unreadable file, "
    "the kernel backend refusing): one line on stderr",
    EXIT_BUG: "a model bug (InvariantError) or an internal error",
    EXIT_INTERRUPTED: "interrupted",
}


def exit_status_epilog(statuses: dict[int, str]) -> str:
    """The 'exit status' paragraph of a subcommand's --help."""
    table = {**statuses, **COMMON_EXIT_STATUSES}
    return "exit status:\n" + "\n".join(
        textwrap.fill(table[code], 78, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code in sorted(table)
    )


class _ArgumentParser(argparse.ArgumentParser):
    # argparse prints the usage block and then the error; we want one line.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser(chosen: str | None) -> _ArgumentParser:
    """The top-level parser; only `chosen` gets its full arguments (lazy import)."""
    parser = _ArgumentParser(
        prog="foliosim",
        description="An executable model of Linux anonymous-memory reclaim, "
        "checked against the live kernel.",
        epilog=exit_status_epilog({EXIT_OK: "success", EXIT_FAILED: "see COMMAND --help"}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        module = importlib.import_module(SUBCOMMANDS[name][0])
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=exit_status_epilog(module.EXIT_STATUSES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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
    except (UsageError, ScenarioError, KernelBackendError) as e:
        if debug:
            traceback.print_exc()
        _say(_one_line(str(e)))
        return EXIT_USAGE
    except InvariantError as e:
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
