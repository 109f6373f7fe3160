"""foliosim run/diff/explain as a user runs them: a separate process, the real model and kernel.

The live-kernel tests are marked `kernel` (tests/conftest.py skips them, with
the kernel backend's reason, where it cannot run).
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


def test_bad_scenario_is_refused_with_file_line_col_and_nothing_runs(tmp_path):
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


@pytest.mark.kernel
def test_kernel_run_json_follows_the_contract_and_the_report_says_pass(tmp_path):
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


def test_model_run_json_follows_the_contract_and_every_expectation_holds(tmp_path):
    out = tmp_path / "m.json"
    proc = _foliosim("run", REDIRTY, "--json", out)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    obs = json.loads(out.read_text())
    check_contract_keys(obs)
    assert obs["backend"] == {"name": "model", "profile": "linux-6.18"}
    expects = [e for e in obs["events"] if e["op"] == "expect"]
    assert len(expects) == 4 and all(e["ok"] for e in expects)
    assert proc.stdout.splitlines()[-1] == "4 expectations: 4 passed, 0 failed"


def test_a_failed_expectation_exits_1_in_a_real_process(tmp_path):
    wrong = tmp_path / "wrong.scn"
    # As droppable-free-redirty.scn, but claiming that pageout keeps the page written again.
    wrong.write_text(REDIRTY.read_text().replace("expect D all none", "expect D 0 present"))
    proc = _foliosim("run", wrong)
    assert (proc.returncode, proc.stderr) == (1, ""), proc.stdout
    assert "  FAIL line 11  expect D 0 present" in proc.stdout.splitlines()


def test_explain_on_the_real_model_names_functions_per_line():
    proc = _foliosim("explain", REDIRTY)
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("foliosim explain: model (profile linux-6.18)")
    i = lines.index("  10 madvise D all pageout")
    assert lines[i + 1].startswith("       ") and "(no model function" not in lines[i + 1]


@pytest.mark.kernel
def test_both_backends_agree_on_a_library_scenario(tmp_path):
    # The library says model and kernel agree on it (tests/test_scenario_library.py).
    proc = _foliosim("run", "--backend", "both", REDIRTY, "--json", tmp_path)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    assert proc.stdout.splitlines()[-1] == "model and kernel agree (droppable-free-redirty.scn)"
    assert "FAIL" not in proc.stdout
    diff = _foliosim(
        "diff",
        tmp_path / "droppable-free-redirty.model.json",
        tmp_path / "droppable-free-redirty.kernel.json",
    )
    assert (diff.returncode, diff.stderr) == (0, "")
    assert diff.stdout == "no differences between model and kernel\n"
