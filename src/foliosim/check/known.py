"""Known differences: what the model cannot see of the live kernel, each with why.

A campaign that compares the model with the live kernel (or the two kernel
harnesses, worker and exported C program, with each other) counts a difference
one of these explains as "explained", never silently dropped.  Between two
model profiles (`foliosim equiv`) nothing is known: every difference counts.
Each entry is also in the table of docs/fuzzing.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from foliosim import observation
from foliosim.check.diff import Difference
from foliosim.scenario.ast import Mthp, Scenario, Thp


@dataclass(frozen=True)
class KnownDifference:
    """A difference the model cannot avoid, with why: counted as explained, never hidden."""

    name: str
    reason: str
    applies: Callable[[Difference, Scenario], bool]


def machine_wide_thp_sizes(scenario: Scenario) -> set[str]:
    """mTHP sizes ('16K'..'2M') that the scenario ever enables for every process."""
    top = "madvise"
    per: dict[str, str] = {"2M": "inherit"}
    wide: set[str] = set()
    for c in scenario.commands:
        if isinstance(c, Thp):
            top = c.mode
        elif isinstance(c, Mthp):
            per[observation.mthp_size_name(c.size_kb)] = c.mode
        else:
            continue
        wide |= {
            size
            for size, mode in per.items()
            if mode == "always" or (mode == "inherit" and top == "always")
        }
    return wide


def _is_machine_wide_thp_counter(d: Difference, scenario: Scenario) -> bool:
    parts = d.field.split()
    wide = machine_wide_thp_sizes(scenario)
    if len(parts) == 3 and parts[0] == "mthp":
        return parts[1] in wide
    return parts[:1] == ["vmstat"] and parts[1].startswith("thp_") and "2M" in wide


# Model against the live kernel of this machine.
KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        "machine-wide mTHP counters",
        "with a size set to `always` (or `inherit` under `thp always`) every process on the "
        "machine faults and frees folios of that size, and the per-size stats and thp_* "
        "vmstat counters are machine-wide: other processes' activity is counted too, so "
        "those counters cannot be compared (pages, flags and smaps still are)",
        _is_machine_wide_thp_counter,
    ),
)


def explain_difference(
    d: Difference, scenario: Scenario, known: Sequence[KnownDifference]
) -> KnownDifference | None:
    """The entry of `known` that explains `d`, or None."""
    for k in known:
        if k.applies(d, scenario):
            return k
    return None
