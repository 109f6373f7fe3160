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
from foliosim.scenario.ast import MTHP_SIZES_KB, Madvise, Mthp, ProcessMadvise, Scenario, Thp


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


def never_enabled_thp_sizes(scenario: Scenario) -> set[str]:
    """mTHP sizes below 2M ('16K'..'1M') that stay `never` for the whole scenario.

    The contract starts every size but 2M at `never` (docs/scenario-format.md), and
    the sizes are machine-wide settings: __thp_vma_allowable_orders() (mm/huge_memory.c,
    6.18) reads the global huge_anon_orders_{always,madvise,inherit}, so while a size is
    `never` no process on the machine allocates an anonymous folio of it.
    """
    names = {observation.mthp_size_name(kb) for kb in MTHP_SIZES_KB} - {"2M"}
    for c in scenario.commands:
        if isinstance(c, Mthp) and c.mode != "never":
            names.discard(observation.mthp_size_name(c.size_kb))
    return names


def _is_foreign_folio_of_a_never_size(d: Difference, scenario: Scenario) -> bool:
    parts = d.field.split()
    return len(parts) == 3 and parts[0] == "mthp" and parts[1] in never_enabled_thp_sizes(scenario)


def sizes_only_madvised_mappings_get(scenario: Scenario) -> set[str]:
    """Sizes ('16K'..'2M') no scenario process can allocate: never machine-wide, no VM_HUGEPAGE.

    In `madvise` mode (or `inherit` under `thp madvise`) __thp_vma_allowable_orders()
    (mm/huge_memory.c, 6.18) gives a size only to a VMA with VM_HUGEPAGE, which only
    MADV_HUGEPAGE sets (hugepage_madvise()); MADV_COLLAPSE makes a 2M folio without it.
    A scenario that never asks for either cannot make a folio of such a size, but any
    other process on the machine with a MADV_HUGEPAGE region (a qemu guest's RAM, a JVM
    heap) does, and the size's stats are machine-wide.
    """
    for c in scenario.commands:
        if isinstance(c, (Madvise, ProcessMadvise)) and c.advice in ("hugepage", "collapse"):
            return set()
    names = {observation.mthp_size_name(kb) for kb in MTHP_SIZES_KB}
    return names - machine_wide_thp_sizes(scenario)


def _is_foreign_folio_of_a_madvise_size(d: Difference, scenario: Scenario) -> bool:
    parts = d.field.split()
    sizes = sizes_only_madvised_mappings_get(scenario)
    if len(parts) == 3 and parts[0] == "mthp":
        return parts[1] in sizes
    return parts[:1] == ["vmstat"] and parts[1].startswith("thp_") and "2M" in sizes


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
    KnownDifference(
        "other processes' folios of a size left never",
        "a size left `never` for the whole run makes no folio of that size anywhere on the "
        "machine, the scenario's included (__thp_vma_allowable_orders(), mm/huge_memory.c), "
        "but folios of it made before the run (while another run had it enabled) are still "
        "freed or split by their processes during it, and the size's stats are machine-wide: "
        "free_pages_prepare() (mm/page_alloc.c) and __split_unmapped_folio() "
        "(mm/huge_memory.c) decrement its nr_anon, the split paths count its split stats; "
        "the model has no other processes",
        _is_foreign_folio_of_a_never_size,
    ),
    KnownDifference(
        "other processes' folios of a size only madvised mappings get",
        "a size in `madvise` mode (or `inherit` under `thp madvise`) is given only to VMAs "
        "with VM_HUGEPAGE (__thp_vma_allowable_orders(), mm/huge_memory.c); a scenario that "
        "never says `madvise ... hugepage` or `collapse` makes no folio of it, but other "
        "processes' MADV_HUGEPAGE regions (a qemu guest's RAM, a JVM heap) do, and the "
        "size's stats and the thp_* vmstat counters are machine-wide; the model has no "
        "other processes",
        _is_foreign_folio_of_a_madvise_size,
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
