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
SCENARIOS = sorted(SCENARIO_DIR.glob("*.scn"))
IDS = [p.name for p in SCENARIOS]


@cache
def _model_observation(path: Path) -> dict[str, Any]:
    from foliosim.model.backend import ModelBackend

    return ModelBackend(check=True).run(parse_file(str(path)))


@cache
def _kernel_observation(path: Path) -> dict[str, Any]:
    from foliosim.kernel.backend import KernelBackend

    return KernelBackend().run(parse_file(str(path)))


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
    assert f"`{path.name}`" in (SCENARIO_DIR / "README.md").read_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_expectations_hold_on_the_model(path: Path) -> None:
    failed = _failed_expectations(_model_observation(path))
    assert not failed, "model disagrees with Linux:\n" + "\n".join(failed)


@pytest.mark.kernel
@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_scenario_expectations_hold_on_the_kernel(path: Path) -> None:
    failed = _failed_expectations(_kernel_observation(path))
    assert not failed, "the live kernel no longer does what the scenario says:\n" + "\n".join(
        failed
    )


@pytest.mark.kernel
@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_model_and_kernel_observations_are_identical(path: Path) -> None:
    from foliosim.check.diff import diff_observations, format_differences

    model = _model_observation(path)
    kernel = _kernel_observation(path)
    diffs = diff_observations(model, kernel)
    assert not diffs, format_differences(diffs, "model", "kernel")
