"""`foliosim export-c SCENARIO`: the scenario as one standalone C program.

It performs the scenario on the live kernel with one real process per scenario
process and prints the observation JSON; with `--assert scenario` its expect
lines, with `--assert model` the model's predicted observation, become TAP
checks (kselftest style).  Exit statuses: EXIT_STATUSES and foliosim.cli.main.
See docs/export-c.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foliosim.cli.common import DEFAULT_PROFILE, UsageError, model_backend, read_scenario, read_text

EXIT_STATUSES = {
    0: "the C file was written (and compiled warning-free, with --check-compile)",
    1: "with --check-compile: it does not compile, a generator bug (the compiler's first "
    "error on stderr); the file is not written",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim export-c`."""
    parser.add_argument("file", metavar="SCENARIO", help="scenario file (.scn)")
    parser.add_argument("-o", "--output", metavar="FILE.c", help="write here (default: stdout)")
    parser.add_argument(
        "--assert",
        dest="assert_mode",
        choices=("scenario", "model"),
        help="print TAP checks: of the expect lines (scenario) or of the model's "
        "predicted observation (model)",
    )
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"model profile for --assert model (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--check-compile",
        action="store_true",
        help="also compile the file with -Wall -Wextra -Werror (a failure is a generator bug)",
    )


def main(args: argparse.Namespace) -> int:
    """Write the C file; the exit status of `foliosim export-c`."""
    from foliosim.cexport.backend import GeneratorBug, compile_c
    from foliosim.cexport.generate import export_c

    scenario = read_scenario(args.file)
    source = read_text(args.file)
    model = None
    if args.assert_mode == "model":
        model = model_backend(args.profile).run(scenario)
    text = export_c(scenario, source, args.assert_mode, model)
    if args.check_compile:
        try:
            compile_c(text, scenario.name)
        except GeneratorBug as e:
            sys.stderr.write(f"{e}\n")
            return 1
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"foliosim export-c: -o {args.output}: {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    return 0
