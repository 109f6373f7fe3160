"""foliosim race's engine: record reclaim from the model, build the tests, get each verdict.

One configuration (barriers dropped, GUP-side ordering) gives two tests
(foliosim.race.actors); each model's verdict is `unsafe` when herd7 (or, for
`sc`, the native exploration) finds an execution reaching a test's exists
clause, else `safe`.  Under `sc` both engines run when herd7 is there, and
must agree.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foliosim.race import actors, litmus, sc
from foliosim.race.herd import Herd
from foliosim.race.ir import Test, registers
from foliosim.race.record import BARRIERS, record_reclaim
from foliosim.race.runner import MODELS, HerdResult, run_herd
from foliosim.race.witness import story

if TYPE_CHECKING:
    from foliosim.variants import Variant

WITHOUT = (*BARRIERS, *actors.ORDERINGS)

# The table (issue 10): configuration -> model -> verdict.
EXPECTED: dict[tuple[str, ...], dict[str, str]] = {
    (): {"sc": "safe", "lkmm": "safe", "x86-tso": "safe", "armv8": "safe"},
    ("smp_mb",): {"sc": "safe", "lkmm": "unsafe", "x86-tso": "safe", "armv8": "unsafe"},
    ("smp_rmb",): {"sc": "safe", "lkmm": "unsafe", "x86-tso": "safe", "armv8": "unsafe"},
}


class EnginesDisagree(Exception):
    """foliosim's SC exploration and herd7's sc.cat gave different verdicts: a bug here."""


@dataclass
class Outcome:
    """One test under one model: the verdict, how it was found, and a witness if unsafe."""

    test: Test
    model: str
    safe: bool
    engine: str  # "herd7" or "foliosim sc"
    executions: int  # herd7's candidate executions, or SC interleavings
    seconds: float
    litmus: str
    witness: list[str] | None = None
    herd: HerdResult | None = None
    sc: sc.ScResult | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "test": self.test.name,
            "model": self.model,
            "verdict": "safe" if self.safe else "unsafe",
            "engine": self.engine,
            "executions": self.executions,
            "seconds": round(self.seconds, 4),
            "bad": self.test.bad,
        }
        if self.sc is not None:
            d["sc_interleavings"] = self.sc.interleavings
            d["sc_final_states"] = len(self.sc.states)
        if self.herd is not None:
            d["herd7_candidates"] = self.herd.candidates
            d["herd7_executions"] = self.herd.executions
            d["herd7_states"] = len(self.herd.states)
            d["herd7_observation"] = self.herd.observation
        if self.witness:
            d["witness"] = self.witness
        return d


@dataclass
class Report:
    """Every model's verdict on one configuration."""

    profile: str
    without: tuple[str, ...]
    paths: int  # paths of the model's lazyfree decision the recorder walked
    outcomes: list[Outcome] = field(default_factory=list)
    variant: str | None = None  # the variant the reclaim side was recorded from

    def verdict(self, model: str) -> str:
        mine = [o for o in self.outcomes if o.model == model]
        return "safe" if all(o.safe for o in mine) else "unsafe"

    @property
    def safe(self) -> bool:
        return all(o.safe for o in self.outcomes)

    def as_json(self) -> dict[str, Any]:
        models = list(dict.fromkeys(o.model for o in self.outcomes))
        return {
            "profile": self.profile,
            "variant": self.variant,
            "without": list(self.without),
            "reclaim_paths": self.paths,
            "verdicts": {m: self.verdict(m) for m in models},
            "tests": [o.as_json() for o in self.outcomes],
        }


def build_tests(
    profile: str = "linux-6.18",
    without: tuple[str, ...] = (),
    functions: dict[str, Callable[..., Any]] | None = None,
    variant: Variant | None = None,
) -> tuple[list[Test], int]:
    """The configuration's tests, reclaim recorded from the model, and the decision's path count."""
    barriers = tuple(w for w in without if w in BARRIERS)
    reclaim, setup, paths = record_reclaim(profile, barriers, functions, variant)
    return actors.tests(reclaim, setup, without), paths


def _state_of(test: Test, model: str, herd_state: dict[str, str]) -> dict[str, int]:
    # herd7's register names back to the test's.
    back = {
        f"{t}:{name}": f"{t}:{reg}" for (t, reg), name in litmus.register_names(test, model).items()
    }
    out: dict[str, int] = {}
    for key, value in herd_state.items():
        key = key.strip("[]")
        try:
            out[back.get(key, key)] = int(value)
        except ValueError:
            continue
    return out


def _holds(test: Test, state: dict[str, int]) -> bool:
    return any(all(state.get(k) == v for k, v in alt.items()) for alt in test.exists)


def judge(test: Test, model: str, herd: Herd | None, dot_dir: Path | None = None) -> Outcome:
    """The verdict of one test under one model."""
    text = litmus.to_litmus(test, model)
    if model == "sc":
        start = time.perf_counter()
        native = sc.explore(test)
        seconds = time.perf_counter() - start
        result = None
        if herd is not None:
            result = run_herd(herd, "sc", text, dot_dir)
            if (result.positive == 0) != native.safe:
                raise EnginesDisagree(
                    f"{test.name}: foliosim's SC exploration says "
                    f"{'safe' if native.safe else 'unsafe'}, herd7's sc.cat says "
                    f"{'safe' if result.positive == 0 else 'unsafe'}"
                )
        witness = None if native.safe else story(test, native.final)
        return Outcome(
            test,
            model,
            native.safe,
            "foliosim sc" + (" + herd7 sc.cat" if result else ""),
            native.interleavings,
            seconds,
            text,
            witness,
            result,
            native,
        )
    if herd is None:
        raise ValueError(f"model {model} needs herd7")
    result = run_herd(herd, model, text, dot_dir)
    safe = result.positive == 0
    witness = None
    if not safe:
        states = [_state_of(test, model, s) for s in result.states]
        bad = next((s for s in states if _holds(test, s)), None)
        if bad is not None:
            witness = story(test, bad)
    size = result.candidates if result.candidates is not None else result.executions
    return Outcome(test, model, safe, "herd7", size, result.wall_seconds, text, witness, result)


def check(
    models: tuple[str, ...] = MODELS,
    without: tuple[str, ...] = (),
    profile: str = "linux-6.18",
    herd: Herd | None = None,
    dot_dir: Path | None = None,
    functions: dict[str, Callable[..., Any]] | None = None,
    variant: Variant | None = None,
) -> Report:
    """Every model's verdict on the configuration `without` (barriers / orderings dropped).

    variant: record reclaim from a variant (foliosim.variants.load_variant());
    its base profile replaces `profile`.
    """
    tests, paths = build_tests(profile, without, functions, variant)
    report = Report(profile, tuple(without), paths)
    if variant is not None:
        report.profile = variant.base
        report.variant = variant.name if variant.replacements else None
    for model in models:
        for test in tests:
            report.outcomes.append(judge(test, model, herd, dot_dir))
    return report


def litmus_files(report: Report) -> dict[str, str]:
    """file name -> litmus text with the verdict found, for --litmus DIR."""
    files = {}
    for o in report.outcomes:
        dropped = ["-".join(["without", *report.without])] if report.without else []
        suffix = dropped[0] if dropped else "both-barriers"
        if report.variant is not None:
            # The variant's own barriers: named after it (its file's stem).
            stem = re.sub(r"[^\w.-]", "_", Path(report.variant).name.removesuffix(".py"))
            suffix = "+".join([stem, *dropped])
        name = f"{o.model}/{o.test.name}+{suffix}.litmus"
        files[name] = litmus.to_litmus(o.test, o.model, "safe" if o.safe else "unsafe")
    return files


__all__ = [
    "EXPECTED",
    "MODELS",
    "WITHOUT",
    "Report",
    "build_tests",
    "check",
    "judge",
    "litmus_files",
    "registers",
]
