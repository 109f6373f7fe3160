"""Judging one scenario text: parse it, run it on every backend, compare, explain.

An Outcome says how the text fared (same, explained, differs, crash or
invalid) and carries a *signature*: the kinds of its failure with names,
lines and pages left out, so that a campaign can tell a new failure from one
it has already saved, and a shrinker can keep only candidates that still fail
in (part of) the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from foliosim.check.diff import MISSING, Difference, diff_observations, format_difference
from foliosim.check.known import KnownDifference, explain_difference
from foliosim.scenario.ast import DATA_GARBAGE, DATA_ZERO, Scenario
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_text

SAME, EXPLAINED, DIFFERS, CRASH, INVALID = "same", "explained", "differs", "crash", "invalid"


@dataclass
class Outcome:
    """How one scenario text fared: `kind` is one of same explained differs crash invalid."""

    kind: str
    scenario: Scenario | None
    observations: dict[str, dict[str, Any]] = field(default_factory=dict)
    unexplained: list[Difference] = field(default_factory=list)
    explained: list[tuple[Difference, KnownDifference]] = field(default_factory=list)
    error: str = ""  # crash: "model raised InvariantError: ..."; invalid: the parser's error
    signature: frozenset[str] = frozenset()
    # With three backends: the pair whose differences `unexplained` and `explained` are.
    pair: tuple[str, str] | None = None

    @property
    def is_failure(self) -> bool:
        """Whether this outcome is worth a finding (an unexplained difference or an error)."""
        return self.kind in (DIFFERS, CRASH, INVALID)

    def side_names(self) -> tuple[str, str]:
        """The names of the two backends compared ('a', 'b' with one backend)."""
        if self.pair is not None:
            return self.pair
        names = list(self.observations)
        return (names[0], names[1]) if len(names) == 2 else ("a", "b")

    def headline(self) -> str:
        """One line: the first unexplained difference, or the error."""
        if self.kind == DIFFERS and self.unexplained:
            a, b = self.side_names()
            more = len(self.unexplained) - 1
            tail = f" (+{more} more)" if more else ""
            return format_difference(self.unexplained[0], a, b) + tail
        return one_line(self.error)


def one_line(text: str) -> str:
    """`text` with its lines joined by '; '."""
    return "; ".join(p.strip() for p in str(text).splitlines() if p.strip())


def _value_kind(v: Any) -> str:
    # What a value is, without the label itself (default labels change with lines).
    if v is MISSING:
        return "missing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        keep = (DATA_ZERO, DATA_GARBAGE, "present", "swap", "none")
        return v if v in keep or v.isupper() else "label"  # errno names are upper case
    return str(v)


def difference_signature(d: Difference) -> frozenset[str]:
    """The kinds of a difference, names, lines and pages left out: {'flag dirty on b only'}.

    A flags difference gives one kind per flag that only one side reports, so
    that the same missing flag is recognised whatever other flags come with it.
    """
    if d.field == "flags" and isinstance(d.a, list) and isinstance(d.b, list):
        return frozenset(
            {f"flag {f} on a only" for f in set(d.a) - set(d.b)}
            | {f"flag {f} on b only" for f in set(d.b) - set(d.a)}
        )
    return frozenset({_field_signature(d)})


def _field_signature(d: Difference) -> str:
    if d.field in (
        "state",
        "exclusive",
        "soft_dirty",
        "order",
        "error",
        "data",
        "got",
        "page",
        "mapping",
        "process",
        "event",
    ):
        return f"{d.field} {_value_kind(d.a)}/{_value_kind(d.b)}"
    if d.field == "error item":
        return f"error {_value_kind(d.a)}/{_value_kind(d.b)}"
    # Counters and sizes (vmstat, mthp, smaps, mapcount): the field says enough.
    return d.field


def error_signature(where: str, e: BaseException) -> str:
    """The kind of an exception `where` raised: its type and message, places and numbers left out."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    # Where it happened ("fuzz.scn:7:", "line 7:") is not what happened.
    first = re.sub(r"^(?:[\w./+-]+\.scn:)?(?:line\s+)?\d+(?::\d+)?:\s*", "", first)
    # An invariant is named by its validate_* function, wherever the message puts it.
    named = re.search(r"\b(validate_\w+)", first)
    head = named.group(1) if named else first
    head = re.sub(r"\d+", "N", head)[:80]
    return f"{where} {type(e).__name__}: {head}"


def parses(text: str, path: str = "fuzz.scn") -> bool:
    """Whether the parser accepts `text`."""
    try:
        parse_text(text, path)
    except ScenarioError:
        return False
    return True


class Judge:
    """Runs a scenario text on one backend (checked) or two (compared) and says how it fared.

    `known` lists the differences to count as explained; none by default, so
    that every difference counts unless the caller says why it may not.
    """

    def __init__(
        self, backends: Sequence[tuple[str, Any]], known: Sequence[KnownDifference] = ()
    ) -> None:
        if not 1 <= len(backends) <= 3:
            raise ValueError("a campaign compares two or three backends, or checks one")
        self.backends = list(backends)
        self.known = list(known)

    @property
    def names(self) -> list[str]:
        """The backends' names, in order."""
        return [n for n, _ in self.backends]

    def judge(self, text: str, path: str) -> Outcome:
        """Parse `text` as `path`, run it on every backend, compare."""
        try:
            scenario = parse_text(text, path)
        except ScenarioError as e:
            reason = re.sub(r"\d+", "N", e.reason)[:80]
            return Outcome(
                INVALID,
                None,
                error=f"the parser refused it: {e}",
                signature=frozenset({f"invalid: {reason}"}),
            )
        obs: dict[str, dict[str, Any]] = {}
        errors: list[tuple[str, BaseException]] = []
        for name, backend in self.backends:
            try:
                obs[name] = backend.run(scenario)
            except Exception as e:  # noqa: BLE001 - any exception is a finding
                errors.append((name, e))
        if errors:
            msg = "\n".join(f"{n} raised {type(e).__name__}: {e}" for n, e in errors)
            sig = frozenset(error_signature(n, e) for n, e in errors)
            return Outcome(CRASH, scenario, obs, error=msg, signature=sig)
        if len(self.backends) == 1:
            return Outcome(SAME, scenario, obs)
        # Every pair, in order (model-kernel, model-c, kernel-c with three); the first
        # pair that differs unexplained is the outcome's.
        names = self.names
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        first: tuple[str, str] | None = None
        explained: list[tuple[Difference, KnownDifference]] = []
        unexplained: list[Difference] = []
        sig: frozenset[str] = frozenset()
        for a, b in pairs:
            pair_unexplained: list[Difference] = []
            for d in diff_observations(obs[a], obs[b], scenario):
                k = explain_difference(d, scenario, self.known)
                if k is None:
                    pair_unexplained.append(d)
                elif first is None:
                    explained.append((d, k))
            if pair_unexplained:
                tag = "" if len(pairs) == 1 else f"{a}/{b}: "
                sig |= frozenset(tag + s for d in pair_unexplained for s in difference_signature(d))
                if first is None:
                    first, unexplained = (a, b), pair_unexplained
        if unexplained:
            return Outcome(
                DIFFERS, scenario, obs, unexplained, explained, signature=sig, pair=first
            )
        return Outcome(EXPLAINED if explained else SAME, scenario, obs, [], explained)
