"""Differential fuzzing: random valid scenarios on two backends, shrunk when they differ.

A campaign composes the parts of foliosim.check:

- generation: scenarios drawn by foliosim.check.gen with Hypothesis, printed
  with foliosim.scenario.printer (so only what the parser accepts runs);
- judging: foliosim.check.judge runs each text on every backend, diffs the
  observations and counts the differences `known` explains (none unless the
  caller passes them: foliosim.check.known for model against kernel);
- shrinking: the first scenario that fails in a new way stops Hypothesis's
  generation; its shrinker reduces the scenario, then
  foliosim.check.shrink deletes whole lines;
- saving: foliosim.check.findings replays the result as saved and writes
  NNN.scn with the observations of every backend.

The campaign then goes on with a fresh Hypothesis run (seeded from the
campaign seed and the round number) until its budget is spent.  With one
backend (the model, checked) the fuzzer looks for crashes and invariant
violations instead: any exception is a finding.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from foliosim.check import gen
from foliosim.check.findings import Finding, Shrunk, count_commands, save_finding
from foliosim.check.judge import CRASH, DIFFERS, EXPLAINED, SAME, Judge, Outcome, parses
from foliosim.check.known import KnownDifference
from foliosim.check.shrink import OutOfBudget, delete_lines
from foliosim.scenario.ast import Madvise, Scenario
from foliosim.scenario.printer import to_text

DEFAULT_SHRINK_BUDGET = 300
FUZZ_PATH = "fuzz.scn"  # the name every generated scenario runs under


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

    def count(self, o: Outcome) -> None:
        """Count one generated scenario's outcome, its commands and its failed syscalls."""
        if o.kind == SAME:
            self.same += 1
        elif o.kind == EXPLAINED:
            self.explained += 1
        elif o.kind == DIFFERS:
            self.differs += 1
        elif o.kind == CRASH:
            self.crashes += 1
        else:
            self.invalid += 1
        for _, k in o.explained:
            self.explained_reasons[k.name] += 1
        if o.scenario is not None:
            for cmd in o.scenario.commands:
                self.commands[gen.command_kind(cmd)] += 1
                if isinstance(cmd, Madvise):
                    self.advices[cmd.advice] += 1
        for name, obs in o.observations.items():
            for ev in obs.get("events", []):
                if isinstance(ev, dict) and "error" in ev:
                    self.failed[(name, str(ev.get("op")))] += 1

    def count_repeat(self, o: Outcome) -> None:
        """A failure that shows nothing new: counted on the finding that showed it first."""
        for f in self.findings:
            if o.signature & f.outcome.signature:
                f.repeats += 1
                return


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
    # One Hypothesis run: generating until a new failure, then shrinking it.
    shrinking: bool = False
    target: frozenset[str] = frozenset()
    first: str = ""
    last: tuple[str, Outcome] | None = None
    shrink_runs: int = 0
    first_index: int = 0
    shrink_start: float = 0.0


def round_seed(campaign_seed: int, round_no: int) -> int:
    """The Hypothesis seed of round `round_no` of a campaign seeded `campaign_seed`."""
    digest = hashlib.sha256(f"foliosim-fuzz:{campaign_seed}:{round_no}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Campaign:
    """One `foliosim fuzz` (or `equiv`) run: generate, judge, shrink and save, until the budget is spent.

    `known`: the differences to count as explained (none by default: pass
    foliosim.check.known.KNOWN_DIFFERENCES when comparing with the live kernel).
    """

    def __init__(
        self,
        backends: Sequence[tuple[str, Any]],
        *,
        seed: int,
        count: int | None = 100,
        time_limit: float | None = None,
        out_dir: str | Path = "fuzz-out",
        mthp: bool = False,
        memcg: bool = False,
        found_by: str = "",
        shrink_budget: int = DEFAULT_SHRINK_BUDGET,
        known: Sequence[KnownDifference] = (),
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
        self.memcg = memcg
        self.found_by = found_by or f"foliosim fuzz --seed {seed}"
        self.shrink_budget = shrink_budget
        self.progress = progress
        self.clock = clock
        self.stats = Stats(backends=self.judge.names)
        self._seen: set[str] = set()  # signatures already saved as findings
        self._cache: dict[str, Outcome] = {}  # of the current round, by text
        self._digest = hashlib.sha256()
        self._start = 0.0
        self._status = ""

    @property
    def known(self) -> list[KnownDifference]:
        """The differences this campaign counts as explained."""
        return self.judge.known

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
        @given(gen.scenarios(mthp=self.mthp, memcg=self.memcg))
        def probe(scenario: Scenario) -> None:
            self._probe(scenario, r)

        self._cache = {}
        try:
            probe()
        except _Failed:
            pass
        except _TimeUp:
            if r.last is None:
                raise
            # Time ran out while shrinking: save what we have, then stop.
            self._shrink_by_lines(r)
            self._save(r)
            raise
        except Exception as e:
            # Hypothesis gave up on the failure (e.g. flaky on replay): keep what we have.
            if r.last is None:
                raise
            self._status = f"hypothesis: {type(e).__name__}"
        if r.last is None:
            return False
        self._shrink_by_lines(r)
        self._save(r)
        self.stats.shrink_seconds += self.clock() - r.shrink_start
        return True

    # -- generating --------------------------------------------------------------------

    def _probe(self, scenario: Scenario, r: _Round) -> None:
        text = to_text(scenario)
        if r.shrinking:
            if self._still_fails(text, r, self._hypothesis_budget()):
                r.last = (text, self._cache[text])
                _fail()
            return
        if self.count is None and self.clock() - self._start >= (self.time_limit or 0):
            raise _TimeUp
        self.stats.generated += 1
        self._digest.update(text.encode())
        self._digest.update(b"\0")
        outcome = self._outcome(text)
        self.stats.count(outcome)
        if outcome.is_failure:
            if outcome.signature <= self._seen:
                self.stats.count_repeat(outcome)
            else:
                r.shrinking = True
                r.target = outcome.signature - frozenset(self._seen)
                r.first, r.last = text, (text, outcome)
                r.first_index = self.stats.generated
                r.shrink_start = self.clock()
                self._tick(f"shrinking a {outcome.kind} from {len(scenario.commands)} commands")
                _fail()
        self._tick()

    def _outcome(self, text: str) -> Outcome:
        cached = self._cache.get(text)
        if cached is None:
            cached = self.judge.judge(text, FUZZ_PATH)
            self._cache[text] = cached
        return cached

    # -- shrinking ---------------------------------------------------------------------

    def _hypothesis_budget(self) -> int:
        # Two thirds of the shrink budget for Hypothesis's shrinker, the rest (at
        # least) for deleting whole lines, which it is slow at.
        return self.shrink_budget - self.shrink_budget // 3

    def _still_fails(self, text: str, r: _Round, budget: int) -> bool:
        # Whether a shrinking candidate fails in (part of) the same new way.  Outcomes
        # are cached by text, so the same text gets the same verdict (a live kernel is
        # not perfectly repeatable) and costs one run; past the budget an unknown
        # candidate counts as passing.
        outcome = self._cache.get(text)
        if outcome is None:
            if r.shrink_runs >= budget:
                return False
            r.shrink_runs += 1
            self.stats.shrink_runs += 1
            outcome = self._outcome(text)
            assert r.last is not None
            self._tick(
                f"shrinking: run {r.shrink_runs}/{self.shrink_budget}, "
                f"{count_commands(r.last[0])} commands"
            )
        return outcome.is_failure and bool(outcome.signature & r.target)

    def _shrink_by_lines(self, r: _Round) -> None:
        assert r.last is not None

        def still_fails(candidate: str) -> bool:
            if candidate not in self._cache:
                if r.shrink_runs >= self.shrink_budget:
                    raise OutOfBudget
                if not parses(candidate, FUZZ_PATH):
                    return False  # a line that needs a removed one: costs no run
            return self._still_fails(candidate, r, self.shrink_budget)

        text = delete_lines(r.last[0], still_fails)
        r.last = (text, self._cache.get(text, r.last[1]))

    # -- saving ------------------------------------------------------------------------

    def _save(self, r: _Round) -> None:
        assert r.last is not None
        text, outcome = r.last
        shrunk = Shrunk(
            first=r.first,
            last=text,
            outcome=outcome,
            target=r.target,
            scenario_index=r.first_index,
            shrink_runs=r.shrink_runs,
        )
        finding = save_finding(self.out_dir, self.judge, shrunk, self.found_by)
        self.stats.shrink_runs += finding.replay_runs
        self._seen |= outcome.signature
        self.stats.findings.append(finding)
        self._tick(f"saved {finding.path}")

    def _tick(self, status: str | None = None) -> None:
        if status is not None:
            self._status = status
        self.stats.elapsed = self.clock() - self._start
        if self.progress is not None:
            self.progress(self.stats, self._status)
