"""tests/conftest.py's gates: a `kernel` test is skipped with its reason, or fails when required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TWO_KERNEL_TESTS = "tests/kernel/test_worker.py::TestContentTokens"


def _pytest_as_non_root(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "as_non_root", "-p", "no:cacheprovider", "-rs"]
        + list(argv),
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(TESTS), "FOLIOSIM_REQUIRE_KERNEL": "", **env},
    )


def test_kernel_tests_are_skipped_with_the_kernel_backends_reason():
    proc = _pytest_as_non_root(TWO_KERNEL_TESTS)
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout
    assert "kernel: needs root (pfns in /proc/PID/pagemap" in proc.stdout
    assert "running as uid 65534" in proc.stdout


def test_foliosim_require_kernel_turns_the_skips_into_failures():
    proc = _pytest_as_non_root(TWO_KERNEL_TESTS, FOLIOSIM_REQUIRE_KERNEL="1")
    assert proc.returncode == 1, proc.stdout
    assert "2 errors" in proc.stdout and "skipped" not in proc.stdout
    assert "FOLIOSIM_REQUIRE_KERNEL=1 but the kernel tests cannot run: needs root" in proc.stdout


def test_not_kernel_selects_the_model_tests_and_leaves_the_kernel_ones_out():
    proc = _pytest_as_non_root("tests/test_scenario_library.py", "-m", "not kernel", "--co", "-q")
    assert proc.returncode == 0, proc.stdout
    selected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert any("::test_scenario_expectations_hold_on_the_model[" in t for t in selected)
    assert not any("_on_the_kernel[" in t or "model_and_kernel" in t for t in selected)


@pytest.mark.parametrize("marker", ["kernel", "herd7"])
def test_the_markers_are_registered(marker):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers"],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert f"@pytest.mark.{marker}:" in proc.stdout
