"""`foliosim equiv A B`: is a model variant a "no functional change"?

Runs random valid scenarios (the fuzzer's generator) on the model under two
profiles and compares the observations field by field.  A difference is
shrunk to a minimal scenario and saved with both observations, replayable with
`foliosim run --profile`.  Every difference counts: the known differences of
`foliosim fuzz` are what the model cannot see of the live kernel, and do not
apply between two models.  Exit statuses: EXIT_STATUSES and foliosim.cli.main.
"""

from __future__ import annotations

import argparse
import random

from rich.console import Console

from foliosim.check.exhaustive import command as exhaustive
from foliosim.check.exhaustive.engine import SideError
from foliosim.check.fuzz import DEFAULT_SHRINK_BUDGET, Campaign
from foliosim.cli.common import UsageError, model_backend
from foliosim.cli.fuzz import print_summary

EXIT_STATUSES = {
    0: "the two profiles agreed on every scenario tried",
    1: "they differ on some scenario, or one broke an invariant",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim equiv`."""
    parser.add_argument("profile_a", metavar="PROFILE_A", help="e.g. linux-6.18")
    parser.add_argument("profile_b", metavar="PROFILE_B", help="the variant to compare with it")
    parser.add_argument("--seed", type=int, default=None, help="campaign seed (default random)")
    parser.add_argument(
        "--count", type=int, default=500, metavar="N", help="scenarios to try (default 500)"
    )
    parser.add_argument(
        "--out", default="equiv-out", metavar="DIR", help="where differences go (default equiv-out)"
    )
    parser.add_argument("--mthp", action="store_true", help="also draw large-folio settings")
    parser.add_argument(
        "--shrink-budget",
        type=int,
        default=DEFAULT_SHRINK_BUDGET,
        metavar="RUNS",
        help="runs allowed to shrink each difference",
    )
    exhaustive.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Compare the two profiles on `--count` scenarios; the exit status."""
    if args.exhaustive:
        if args.profile_a == args.profile_b:
            raise UsageError("foliosim equiv: the two variants are the same")
        try:
            return exhaustive.main(args)
        except (exhaustive.BoundsError, SideError) as e:
            raise UsageError(f"foliosim equiv: {e}") from None
    if args.count < 1:
        raise UsageError(f"foliosim equiv: --count {args.count}: must be at least 1")
    if args.profile_a == args.profile_b:
        raise UsageError("foliosim equiv: the two profiles are the same")
    # Both checked: a variant that breaks an invariant is found too.
    backends = [(p, model_backend(p, check=True)) for p in (args.profile_a, args.profile_b)]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    found_by = (
        f"foliosim equiv {args.profile_a} {args.profile_b} --seed {seed} "
        f"--count {args.count}" + (" --mthp" if args.mthp else "")
    )
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"foliosim equiv: seed {seed}, model {args.profile_a} vs model "
        f"{args.profile_b}, {args.count} scenarios, differences to {args.out}/"
    )
    # Between two models every difference counts: the known differences are what
    # the model cannot see of the live kernel, and no model has such blind spots.
    stats = Campaign(
        backends,
        seed=seed,
        count=args.count,
        out_dir=args.out,
        mthp=args.mthp,
        found_by=found_by,
        shrink_budget=args.shrink_budget,
        known=(),
    ).run()
    print_summary(out, stats, [n for n, _ in backends])
    out.print(
        "equivalent on every scenario tried"
        if not stats.unexplained
        else "NOT equivalent: see the saved scenarios"
    )
    return 1 if stats.unexplained else 0
