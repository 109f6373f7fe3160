"""foliosim run/diff/explain on the real parser, model and live kernel, where they exist.

Each test skips with one reason while its component is missing; live-kernel
tests skip when the kernel backend cannot run here, and FOLIOSIM_REQUIRE_KERNEL=1
turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_run import check_contract_keys

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
REDIRTY = SCENARIOS / "droppable-free-redirty.scn"


def _foliosim(*argv: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foliosim.cli.main", *map(str, argv)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FOLIOSIM_DEBUG": ""},
    )


def test_bad_scenario_is_refused_with_file_line_col_and_nothing_runs(real_parser, tmp_path):
    bad = tmp_path / "bad.scn"
    bad.write_text("mmap A 16K\nwrite B 0\n")
    good = tmp_path / "good.scn"
    good.write_text("mmap A 16K\nwrite A 0\n")
    proc = _foliosim("run", good, bad)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"{bad}:2:7: ")
    assert "'B'" in line


@pytest.fixture
def kernel() -> None:
    try:
        from foliosim.kernel.backend import KernelBackend
    except ImportError as e:
        reason: str | None = f"no kernel backend ({e})"
    else:
        reason = KernelBackend.unavailable_reason()
    if reason is None:
        return
    if os.environ.get("FOLIOSIM_REQUIRE_KERNEL") == "1":
        pytest.fail(f"FOLIOSIM_REQUIRE_KERNEL=1 but the kernel backend is unavailable: {reason}")
    pytest.skip(reason)


def test_kernel_run_json_follows_the_contract_and_the_report_says_pass(
    real_parser, kernel, tmp_path
):
    out = tmp_path / "k.json"
    proc = _foliosim("run", "--backend", "kernel", REDIRTY, "--json", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    obs = json.loads(out.read_text())
    check_contract_keys(obs)
    assert obs["backend"]["name"] == "kernel"
    assert obs["backend"]["release"] == os.uname().release
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        f"foliosim run: kernel (Linux {os.uname().release})  scenario droppable-free-redirty.scn"
    )
    assert "  PASS line 11  expect D all none" in lines
    # Two runs of the same scenario on the same kernel agree field by field.
    again = tmp_path / "k2.json"
    assert _foliosim("run", "--backend", "kernel", REDIRTY, "--json", again).returncode == 0
    diff = _foliosim("diff", out, again, "--scenario", REDIRTY)
    assert (diff.returncode, diff.stderr) == (0, ""), diff.stdout


def test_model_run_json_follows_the_contract(real_model, tmp_path):
    out = tmp_path / "m.json"
    proc = _foliosim("run", REDIRTY, "--json", out)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    obs = json.loads(out.read_text())
    check_contract_keys(obs)
    assert obs["backend"] == {"name": "model", "profile": "linux-6.18"}
    failed = [e for e in obs["events"] if e["op"] == "expect" and not e["ok"]]
    assert proc.returncode == (1 if failed else 0)


def test_explain_on_the_real_model_names_functions_per_line(real_model):
    proc = _foliosim("explain", REDIRTY)
    assert proc.returncode in (0, 1), proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("foliosim explain: model (profile linux-6.18)")
    i = lines.index("  10 madvise D all pageout")
    assert lines[i + 1].startswith("       ") and "(no model function" not in lines[i + 1]


def test_both_backends_on_the_real_model_and_kernel(real_model, kernel, tmp_path):
    proc = _foliosim("run", "--backend", "both", REDIRTY, "--json", tmp_path)
    assert "Traceback" not in proc.stderr
    model = json.loads((tmp_path / "droppable-free-redirty.model.json").read_text())
    kern = json.loads((tmp_path / "droppable-free-redirty.kernel.json").read_text())
    diff = _foliosim(
        "diff",
        tmp_path / "droppable-free-redirty.model.json",
        tmp_path / "droppable-free-redirty.kernel.json",
    )
    agree = model["events"] == kern["events"] and model["final"] == kern["final"]
    assert diff.returncode == (0 if agree else 1)
    assert proc.returncode == (0 if agree and "FAIL" not in proc.stdout else 1)
