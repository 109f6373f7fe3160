"""The scenario library (scenarios/*.scn) holds on the model, on Linux, and both agree.

Every expectation in the library was seen on the live kernel; the model is
right where it reproduces them.  The kernel tests are marked `kernel`
(tests/conftest.py skips them, with the kernel backend's reason, where it
cannot run).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from foliosim.scenario.parser import parse_file

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
# The kernel build every expectation of the library was seen on (scenarios/README.md).
LIBRARY_PROFILE = "linux-6.18.44-fc"
# scenarios/pressure/: reclaim under a memory cgroup's limit (issue 13, docs/pressure.md).
SCENARIOS = sorted(SCENARIO_DIR.glob("*.scn")) + sorted(SCENARIO_DIR.glob("pressure/*.scn"))
IDS = [str(p.relative_to(SCENARIO_DIR)) for p in SCENARIOS]


@cache
def _model_observation(path: Path, profile: str = LIBRARY_PROFILE) -> dict[str, Any]:
    from foliosim.model.backend import ModelBackend

    return ModelBackend(profile=profile, check=True).run(parse_file(str(path)))


def _running_kernel_profile() -> str:
    from foliosim.model.profile import NoProfileError, profile_for_kernel

    try:
        return profile_for_kernel().name
    except NoProfileError as e:
        pytest.skip(str(e))


# Other processes may run on the scenario's CPU and fill or drain its per-CPU
# batches, and vmstat and mTHP counters are machine-wide (docs/kernel-notes.md,
# "noise"): a kernel result counts as the kernel's only if it is there on every
# one of TRIES runs; a run that agrees stands, and the disturbed ones are reported.
TRIES = 3
_KERNEL_RUNS: dict[Path, list[dict[str, Any]]] = {}


def _kernel_observations(path: Path):
    """Kernel runs of `path`: the ones made so far, then fresh ones, TRIES at most."""
    from foliosim.kernel.backend import KernelBackend

    runs = _KERNEL_RUNS.setdefault(path, [])
    yield from list(runs)
    while len(runs) < TRIES:
        runs.append(KernelBackend().run(parse_file(str(path))))
        yield runs[-1]


def _first_agreeing_run(path: Path, problems) -> list[str]:
    """Problems of the first kernel run that has none, or of every run (none agreed)."""
    seen: list[str] = []
    for i, obs in enumerate(_kernel_observations(path)):
        found = problems(obs)
        if not found:
            if seen:
                print(f"{path.name}: kernel run(s) before run {i + 1} were disturbed:")
                print("\n".join(seen))
            return []
        seen.append(f"run {i + 1}:\n" + "\n".join(found))
    return seen


def _failed_expectations(obs: dict[str, Any]) -> list[str]:
    return [
        f"line {e['line']}: {e['proc']}: {e['text']}  (got {e['got']!r})"
        for e in obs["events"]
        if e["op"] == "expect" and e["ok"] is not True
    ]


def test_library_has_at_least_24_scenarios() -> None:
    assert len(SCENARIOS) >= 24


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_states_its_claim_expectation_and_kernel_reference(path: Path) -> None:
    head = path.read_text().splitlines()[:3]
    stem = path.stem
    assert len(head) == 3, f"{path.name}: needs the three header lines"
    assert re.fullmatch(rf"# {re.escape(stem)}: \S.*\.", head[0]), head[0]
    assert head[1] == "# Expect: pass on model and kernel.", head[1]
    assert re.fullmatch(r"# See: \S.*", head[2]), head[2]


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_is_described_in_the_readme(path: Path) -> None:
    assert f"`{path.relative_to(SCENARIO_DIR)}`" in (SCENARIO_DIR / "README.md").read_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_expectations_hold_on_the_model(path: Path) -> None:
    failed = _failed_expectations(_model_observation(path))
    assert not failed, "model disagrees with Linux:\n" + "\n".join(failed)


@pytest.mark.kernel
@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_expectations_hold_on_the_kernel(path: Path) -> None:
    failed = _first_agreeing_run(path, _failed_expectations)
    assert not failed, (
        f"the live kernel no longer does what the scenario says ({TRIES} runs):\n"
        + "\n".join(failed)
    )


@pytest.mark.kernel
@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_model_and_kernel_observations_are_identical(path: Path) -> None:
    from foliosim.check.diff import diff_observations, format_differences

    model = _model_observation(path, _running_kernel_profile())

    def differences(kernel: dict[str, Any]) -> list[str]:
        diffs = diff_observations(model, kernel)
        return [format_differences(diffs, "model", "kernel")] if diffs else []

    diffs = _first_agreeing_run(path, differences)
    assert not diffs, f"model and kernel differ on {TRIES} runs:\n" + "\n".join(diffs)
