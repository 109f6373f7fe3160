"""Differential fuzzing: random valid scenarios on two backends, shrunk when they differ.

A campaign draws scenarios from foliosim.check.gen with Hypothesis, prints
each one as text and parses it back (so only what the parser accepts runs),
runs it on every backend and compares the observations.  The first scenario
that differs in a new way stops Hypothesis's generation; its shrinker then
reduces the scenario to a minimal one that still differs in (part of) the
same way, and the result is saved as NNN.scn with the observations of both
backends.  The campaign then goes on with a fresh Hypothesis run (seeded from
the campaign seed and the round number) until its budget is spent.

With one backend (the model, checked) the fuzzer looks for crashes and
invariant violations instead: any exception is a finding.

Known differences (a kernel quirk the model cannot see) are listed in
KNOWN_DIFFERENCES, each a predicate on one Difference and its reason; they
are counted as "explained", never silently dropped.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from foliosim import observation
from foliosim.check import gen
from foliosim.check.diff import MISSING, Difference, diff_observations, format_difference
from foliosim.scenario.ast import DATA_GARBAGE, DATA_ZERO, Madvise, Mthp, Scenario, Thp
from foliosim.scenario.errors import ScenarioError

DEFAULT_SHRINK_BUDGET = 300
# Lines of differences (or of an exception message) written at the head of a finding.
HEADER_DETAIL_MAX = 20


# -- known differences -----------------------------------------------------------------


@dataclass(frozen=True)
class KnownDifference:
    """A difference the model cannot avoid, with why: counted as explained, never hidden."""

    name: str
    reason: str
    applies: Callable[[Difference, Scenario], bool]


def _machine_wide_sizes(scenario: Scenario) -> set[str]:
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
    wide = _machine_wide_sizes(scenario)
    if len(parts) == 3 and parts[0] == "mthp":
        return parts[1] in wide
    return parts[:1] == ["vmstat"] and parts[1].startswith("thp_") and "2M" in wide


# Each entry is also in the table of docs/fuzzing.md.
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
    d: Difference, scenario: Scenario, known: Sequence[KnownDifference] = KNOWN_DIFFERENCES
) -> KnownDifference | None:
    """The known difference that explains `d`, or None."""
    for k in known:
        if k.applies(d, scenario):
            return k
    return None


# -- outcomes --------------------------------------------------------------------------


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


def _error_signature(where: str, e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    # Where it happened ("fuzz.scn:7:", "line 7:") is not what happened.
    first = re.sub(r"^(?:[\w./+-]+\.scn:)?(?:line\s+)?\d+(?::\d+)?:\s*", "", first)
    # An invariant is named by its validate_* function, wherever the message puts it.
    named = re.search(r"\b(validate_\w+)", first)
    head = named.group(1) if named else first
    head = re.sub(r"\d+", "N", head)[:80]
    return f"{where} {type(e).__name__}: {head}"


def _one_line(text: str) -> str:
    return "; ".join(p.strip() for p in str(text).splitlines() if p.strip())


def _render(scenario: Scenario) -> str:
    # Print with the project's printer once it exists; the generator's own text otherwise.
    try:
        from foliosim.scenario.printer import to_text
    except ImportError:
        return gen.scenario_text(scenario)
    return to_text(scenario)


def _parse(text: str, path: str) -> Scenario:
    from foliosim.scenario.parser import parse_text

    return parse_text(text, path)


class Judge:
    """Runs a scenario text on every backend and says how it fared."""

    def __init__(
        self,
        backends: Sequence[tuple[str, Any]],
        known: Sequence[KnownDifference] = KNOWN_DIFFERENCES,
    ) -> None:
        if not 1 <= len(backends) <= 3:
            raise ValueError("a campaign compares two or three backends, or checks one")
        self.backends = list(backends)
        self.known = list(known)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.backends]

    def judge(self, text: str, path: str) -> Outcome:
        """Parse `text` as `path`, run it on every backend, compare."""
        try:
            scenario = _parse(text, path)
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
            sig = frozenset(_error_signature(n, e) for n, e in errors)
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


# -- campaign --------------------------------------------------------------------------


@dataclass
class Finding:
    """A saved, shrunk scenario: NNN.scn and its observations."""

    number: int
    path: Path
    outcome: Outcome
    scenario_index: int  # which generated scenario of the campaign first showed it
    commands_before: int
    commands_after: int
    shrink_runs: int
    reproduced: bool  # the saved file, run again, still fails the same way
    repeats: int = 0  # later scenarios that failed only in ways this one already showed

    def headline(self) -> str:
        """One line: the first difference or the error."""
        o = self.outcome
        if o.kind == DIFFERS and o.unexplained:
            a, b = _names_of(o)
            more = len(o.unexplained) - 1
            tail = f" (+{more} more)" if more else ""
            return format_difference(o.unexplained[0], a, b) + tail
        return _one_line(o.error)


def _names_of(o: Outcome) -> tuple[str, str]:
    if o.pair is not None:
        return o.pair
    names = list(o.observations)
    return (names[0], names[1]) if len(names) == 2 else ("a", "b")


@dataclass
class Stats:
    """What a campaign did so far; the summary prints it."""

    backends: list[str]
    generated: int = 0
    same: int = 0
    explained: int = 0
    differs: int = 0
    crashes: int = 0
    invalid: int = 0
    shrink_runs: int = 0
    shrink_seconds: float = 0.0  # of `elapsed`, spent shrinking and saving findings
    elapsed: float = 0.0
    rounds: int = 0
    interrupted: bool = False
    commands: Counter[str] = field(default_factory=Counter)
    advices: Counter[str] = field(default_factory=Counter)
    # (backend, op) -> syscalls that failed (error events)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    explained_reasons: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    digest: str = ""  # sha256 over every generated scenario text, in order

    @property
    def unexplained(self) -> int:
        """Generated scenarios that failed: unexplained differences, crashes, refusals."""
        return self.differs + self.crashes + self.invalid

    @property
    def rate(self) -> float:
        """Generated scenarios per second, shrinking time left out."""
        running = self.elapsed - self.shrink_seconds
        return self.generated / running if running > 0 else 0.0


class _Failed(Exception):
    """Raised inside the Hypothesis test to mark a failing scenario."""


def _fail() -> None:
    # One raise site: Hypothesis tells failures apart by where they were raised,
    # and shrinks only towards the same one.
    raise _Failed


class _TimeUp(BaseException):
    # A BaseException so that Hypothesis does not take it for a failure to shrink.
    pass


@dataclass
class _Round:
    generated: int = 0
    shrinking: bool = False
    target: frozenset[str] = frozenset()
    first: tuple[str, Outcome] | None = None
    last: tuple[str, Outcome] | None = None
    shrink_runs: int = 0
    first_index: int = 0
    shrink_start: float = 0.0


def round_seed(campaign_seed: int, round_no: int) -> int:
    """The Hypothesis seed of round `round_no` of a campaign seeded `campaign_seed`."""
    digest = hashlib.sha256(f"foliosim-fuzz:{campaign_seed}:{round_no}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Campaign:
    """One `foliosim fuzz` run: generate, judge, shrink and save, until the budget is spent."""

    def __init__(
        self,
        backends: Sequence[tuple[str, Any]],
        *,
        seed: int,
        count: int | None = 100,
        time_limit: float | None = None,
        out_dir: str | Path = "fuzz-out",
        mthp: bool = False,
        found_by: str = "",
        shrink_budget: int = DEFAULT_SHRINK_BUDGET,
        known: Sequence[KnownDifference] = KNOWN_DIFFERENCES,
        progress: Callable[[Stats, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (count is None) == (time_limit is None):
            raise ValueError("give a count or a time limit")
        self.judge = Judge(backends, known)
        self.seed = seed
        self.count = count
        self.time_limit = time_limit
        self.out_dir = Path(out_dir)
        self.mthp = mthp
        self.found_by = found_by or f"foliosim fuzz --seed {seed}"
        self.shrink_budget = shrink_budget
        self.progress = progress
        self.clock = clock
        self.stats = Stats(backends=self.judge.names)
        self._seen: set[str] = set()  # signatures already saved as findings
        self._digest = hashlib.sha256()
        self._start = 0.0
        self._status = ""

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> Stats:
        """Run the campaign; returns its statistics (findings saved on the way)."""
        self._start = self.clock()
        try:
            while not self._budget_spent():
                before = self.stats.generated
                found = self._run_round(self.stats.rounds)
                self.stats.rounds += 1
                if not found and self.stats.generated == before:
                    break  # Hypothesis had nothing more to give
        except _TimeUp:
            pass
        except KeyboardInterrupt:
            self.stats.interrupted = True
        self.stats.elapsed = self.clock() - self._start
        self.stats.digest = self._digest.hexdigest()
        self._tick("done")
        return self.stats

    def _budget_spent(self) -> bool:
        if self.count is not None:
            return self.stats.generated >= self.count
        assert self.time_limit is not None
        return self.clock() - self._start >= self.time_limit

    def _run_round(self, round_no: int) -> bool:
        r = _Round()
        max_examples = (self.count - self.stats.generated) if self.count is not None else 10**9

        @settings(
            database=None,
            max_examples=max_examples,
            phases=[Phase.generate, Phase.shrink],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            report_multiple_bugs=False,
            print_blob=False,
        )
        @seed(round_seed(self.seed, round_no))
        @given(gen.scenarios(mthp=self.mthp))
        def probe(scenario: Scenario) -> None:
            self._probe(scenario, r)

        cache: dict[str, Outcome] = {}
        self._cache = cache
        try:
            probe()
        except _Failed:
            pass
        except _TimeUp:
            if r.first is None:
                raise
            # Time ran out while shrinking: save what we have, then stop.
            self._delete_lines(r)
            self._save(r)
            raise
        except Exception as e:
            # Hypothesis gave up on the failure (e.g. flaky on replay): keep what we have.
            if r.first is None:
                raise
            self._status = f"hypothesis: {type(e).__name__}"
        if r.first is None:
            return False
        self._delete_lines(r)
        self._save(r)
        self.stats.shrink_seconds += self.clock() - r.shrink_start
        return True

    def _hypothesis_budget(self) -> int:
        # Two thirds of the shrink budget for Hypothesis's shrinker, the rest (at
        # least) for deleting whole lines, which it is slow at.
        return self.shrink_budget - self.shrink_budget // 3

    def _delete_lines(self, r: _Round) -> None:
        # Delta debugging over whole lines of the shrunk text (Zeller's ddmin,
        # complements only): remove chunks of lines, halving the chunk size when
        # none can go.  A candidate the parser refuses (a line that needs a
        # removed one) costs no run.
        assert r.last is not None
        lines = r.last[0].splitlines(keepends=True)
        parts = 2
        while len(lines) > 1 and r.shrink_runs < self.shrink_budget:
            chunk = -(-len(lines) // parts)
            for start in range(0, len(lines), chunk):
                candidate = "".join(lines[:start] + lines[start + chunk :])
                outcome = self._cache.get(candidate)
                if outcome is None:
                    if r.shrink_runs >= self.shrink_budget:
                        break
                    try:
                        _parse(candidate, "fuzz.scn")
                    except ScenarioError:
                        continue
                    r.shrink_runs += 1
                    self.stats.shrink_runs += 1
                    outcome = self._outcome(candidate)
                    self._status = (
                        f"shrinking by lines: run {r.shrink_runs}/"
                        f"{self.shrink_budget}, {len(lines)} commands"
                    )
                    self._tick()
                if outcome.is_failure and outcome.signature & r.target:
                    r.last = (candidate, outcome)
                    lines = candidate.splitlines(keepends=True)
                    parts = max(parts - 1, 2)
                    break
            else:
                if chunk == 1:
                    return
                parts = min(parts * 2, len(lines))

    def _probe(self, scenario: Scenario, r: _Round) -> None:
        text = _render(scenario)
        if not r.shrinking:
            if self.count is None and self.clock() - self._start >= (self.time_limit or 0):
                raise _TimeUp
            r.generated += 1
            self.stats.generated += 1
            self._digest.update(text.encode())
            self._digest.update(b"\0")
            outcome = self._outcome(text)
            self._count(outcome)
            if outcome.is_failure:
                if outcome.signature <= self._seen:
                    self._repeat(outcome)
                else:
                    r.shrinking = True
                    r.target = outcome.signature - frozenset(self._seen)
                    r.first = r.last = (text, outcome)
                    r.first_index = self.stats.generated
                    r.shrink_start = self.clock()
                    self._status = (
                        f"shrinking a {outcome.kind} from {len(scenario.commands)} commands"
                    )
                    self._tick()
                    _fail()
            self._tick()
            return
        # Shrinking: every candidate must still fail in (part of) the same new way.
        outcome_or_none = self._cache.get(text)
        if outcome_or_none is None:
            if r.shrink_runs >= self._hypothesis_budget():
                return  # out of budget: the shrinker keeps what it has
            r.shrink_runs += 1
            self.stats.shrink_runs += 1
            outcome_or_none = self._outcome(text)
            self._status = (
                f"shrinking: run {r.shrink_runs}/{self.shrink_budget}, {_commands(r.last)} commands"
            )
            self._tick()
        if outcome_or_none.is_failure and outcome_or_none.signature & r.target:
            r.last = (text, outcome_or_none)
            _fail()

    def _outcome(self, text: str) -> Outcome:
        cached = self._cache.get(text)
        if cached is None:
            cached = self.judge.judge(text, "fuzz.scn")
            self._cache[text] = cached
        return cached

    def _count(self, o: Outcome) -> None:
        s = self.stats
        if o.kind == SAME:
            s.same += 1
        elif o.kind == EXPLAINED:
            s.explained += 1
        elif o.kind == DIFFERS:
            s.differs += 1
        elif o.kind == CRASH:
            s.crashes += 1
        else:
            s.invalid += 1
        for _, k in o.explained:
            s.explained_reasons[k.name] += 1
        if o.scenario is not None:
            for cmd in o.scenario.commands:
                s.commands[gen.command_kind(cmd)] += 1
                if isinstance(cmd, Madvise):
                    s.advices[cmd.advice] += 1
        for name, obs in o.observations.items():
            for ev in obs.get("events", []):
                if isinstance(ev, dict) and "error" in ev:
                    s.failed[(name, str(ev.get("op")))] += 1

    def _repeat(self, o: Outcome) -> None:
        for f in self.stats.findings:
            if o.signature & f.outcome.signature:
                f.repeats += 1
                return

    def _tick(self, status: str | None = None) -> None:
        if status is not None:
            self._status = status
        self.stats.elapsed = self.clock() - self._start
        if self.progress is not None:
            self.progress(self.stats, self._status)

    # -- saving ------------------------------------------------------------------------

    def _save(self, r: _Round) -> None:
        assert r.first is not None and r.last is not None
        text, outcome = r.last
        number = _next_number(self.out_dir)
        stem = f"{number:03d}"
        path = self.out_dir / f"{stem}.scn"
        final, reproduced, header = self._replay(text, outcome, str(path), r)
        if not reproduced:
            final = outcome
            header.append(
                "# note: this file, run again, did not fail the same way; the "
                "observations saved are those of the shrinking run (lines shifted "
                f"by {len(header) + 1})"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(h + "\n" for h in header) + text, encoding="utf-8")
        for name, obs in final.observations.items():
            (self.out_dir / f"{stem}.{name}.json").write_text(
                observation.dumps(obs), encoding="utf-8"
            )
        self._seen |= outcome.signature
        finding = Finding(
            number=number,
            path=path,
            outcome=final,
            scenario_index=r.first_index,
            commands_before=_commands(r.first),
            commands_after=_commands(r.last),
            shrink_runs=r.shrink_runs,
            reproduced=reproduced,
        )
        self.stats.findings.append(finding)
        self._status = f"saved {path}"
        self._tick()

    def _replay(
        self, text: str, outcome: Outcome, path: str, r: _Round
    ) -> tuple[Outcome, bool, list[str]]:
        # Run the file as saved (header comments shift every line number), so the
        # observations and the differences in the header match the file.  The
        # header's length depends on the differences: settle it in a few tries.
        header = self._header(outcome, r)
        for _ in range(3):
            padded = "#\n" * len(header) + text
            final = self.judge.judge(padded, path)
            self.stats.shrink_runs += 1
            reproduced = final.is_failure and bool(final.signature & r.target)
            if not reproduced:
                return outcome, False, header
            new_header = self._header(final, r)
            if len(new_header) == len(header):
                return final, True, new_header
            header = new_header
        return final, True, header

    def _header(self, o: Outcome, r: _Round) -> list[str]:
        lines = [f"# found by: {self.found_by}"]
        before, after = _commands(r.first), _commands(r.last)
        lines.append(
            f"# scenario {r.first_index} of the campaign, shrunk from {before} to "
            f"{after} commands in {r.shrink_runs} runs"
        )
        if o.kind == DIFFERS:
            a, b = _names_of(o)
            total = len(o.unexplained) + len(o.explained)
            lines.append(
                f"# {a} and {b} differ: {total} difference{'s' if total != 1 else ''}, "
                f"{len(o.unexplained)} unexplained, {len(o.explained)} explained"
            )
            detail = [format_difference(d, a, b) for d in o.unexplained]
            detail += [
                f"{format_difference(d, a, b)} (explained: {k.name})" for d, k in o.explained
            ]
        else:
            lines.append(
                "# "
                + (
                    "the parser refused the generated text"
                    if o.kind == INVALID
                    else "a backend raised an exception"
                )
            )
            detail = [p for p in str(o.error).splitlines() if p.strip()]
        if len(detail) > HEADER_DETAIL_MAX:
            detail = detail[: HEADER_DETAIL_MAX - 1] + [
                f"... and {len(detail) - HEADER_DETAIL_MAX + 1} more"
            ]
        lines += ["#   " + _comment_safe(d) for d in detail]
        return lines


def _comment_safe(text: str) -> str:
    # A comment line must stay one line of plain characters.
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def _commands(pair: tuple[str, Outcome] | None) -> int:
    if pair is None:
        return 0
    text, _ = pair
    return sum(1 for line in text.splitlines() if line.split("#", 1)[0].strip())


def _next_number(directory: Path) -> int:
    # Findings already in the directory are kept: number after the highest.
    used = (
        [
            int(p.stem.split(".")[0])
            for p in directory.glob("[0-9][0-9][0-9]*.scn")
            if p.stem.split(".")[0].isdigit()
        ]
        if directory.is_dir()
        else []
    )
    return max(used, default=-1) + 1
