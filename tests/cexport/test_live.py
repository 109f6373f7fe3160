"""The exported C programs on this machine's Linux: the second kernel harness against the first.

Live tests (marker `kernel`: root, two CPUs, gcc; tests/conftest.py skips them otherwise).
vmstat and mTHP counters are machine-wide and other processes may run on the
scenario's CPU (filling and draining its per-CPU batches): on this shared machine
both harnesses show such noise now and then (docs/export-c.md), so a difference
counts only if it is there on three runs in a row.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from foliosim.cexport.backend import CBackend, compile_c
from foliosim.cexport.generate import export_c
from foliosim.check.diff import diff_observations, format_difference
from foliosim.kernel.backend import KernelBackend
from foliosim.kernel.settings import RUN_DIR, THP_DIR, active_swaps
from foliosim.model.backend import ModelBackend
from foliosim.model.profile import profile_for_kernel
from foliosim.scenario.parser import parse_file, parse_text

LIBRARY = sorted((Path(__file__).parents[2] / "scenarios").glob("*.scn"))
TRIES = 3

pytestmark = pytest.mark.kernel


def _differences(scenario: Any) -> list[str]:
    c = CBackend().run(scenario)
    k = KernelBackend().run(scenario)
    m = ModelBackend(profile=profile_for_kernel().name).run(scenario)
    return [
        f"c vs kernel: {format_difference(d, 'c', 'kernel')}"
        for d in diff_observations(c, k, scenario)
    ] + [
        f"c vs model: {format_difference(d, 'c', 'model')}"
        for d in diff_observations(c, m, scenario)
    ]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: getattr(p, "name", None))
def test_library_scenario_gives_the_same_observation_on_c_kernel_and_model(path: Path) -> None:
    scenario = parse_file(path)
    for _ in range(TRIES):
        diffs = _differences(scenario)
        if not diffs:
            return
    pytest.fail(f"{path.name}: differs on {TRIES} runs in a row:\n" + "\n".join(diffs))


def _tap(binary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary)], capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: getattr(p, "name", None))
def test_library_scenario_passes_its_assert_model_export(path: Path) -> None:
    scenario = parse_file(path)
    model = ModelBackend(profile=profile_for_kernel().name).run(scenario)
    binary = compile_c(export_c(scenario, path.read_text(), "model", model), path.name)
    for _ in range(TRIES):
        proc = _tap(binary)
        if proc.returncode == 0:
            assert "not ok" not in proc.stdout
            assert proc.stdout.startswith("TAP version 13\n1..")
            return
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith(("not ok", "#"))]
    pytest.fail(f"{path.name}: exit {proc.returncode} on {TRIES} runs:\n" + "\n".join(failed))


REDIRTY = """mmap A 16K
write A all as old
madvise A all free
write A 0 as new
madvise A all pageout
expect A 1-3 none
expect A 0 data new
expect A 1-3 data zero
expect vmstat pglazyfreed 4
"""


def test_assert_scenario_turns_expect_lines_into_tap_checks() -> None:
    scenario = parse_text(REDIRTY, "redirty.scn")
    proc = _tap(compile_c(export_c(scenario, REDIRTY, "scenario"), "redirty"))
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["TAP version 13", "1..4"]
    assert lines[2:6] == [
        "ok 1 - line 6: p0 A 1-3 none",
        "ok 2 - line 7: p0 A 0 data new",
        "ok 3 - line 8: p0 A 1-3 data zero",
        # Only 3 of the 4 were discarded: the redirtied page 0 is kept.
        "not ok 4 - line 9: p0 vmstat pglazyfreed 4",
    ]
    assert lines[6] == "# got: 3"
    assert proc.returncode == 1


def test_the_json_goes_to_the_file_given_and_the_tap_to_stdout(tmp_path: Path) -> None:
    scenario = parse_text(REDIRTY, "redirty.scn")
    binary = compile_c(export_c(scenario, REDIRTY, "scenario"), "redirty")
    out = tmp_path / "obs.json"
    proc = subprocess.run(
        [str(binary), "--json", str(out)], capture_output=True, text=True, check=False
    )
    assert proc.stdout.startswith("TAP version 13")

    obs = json.loads(out.read_text())
    assert obs["backend"]["name"] == "c" and obs["scenario"] == "redirty.scn"
    assert [e["ok"] for e in obs["events"]] == [True, True, True, False]


def _selected(path: Path) -> str:
    text = path.read_text()
    return next((w.strip("[]") for w in text.split() if w.startswith("[")), text.strip())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_run_restores_every_setting(sig: signal.Signals) -> None:
    # 4000 traced lines fill the stderr pipe we do not read: the program blocks in the
    # middle of the scenario, with swap on and mTHP changed, until the signal comes.
    text = "mthp 64K always\nthp always\nswap 64M\nmmap A 64K\nwrite A all\n" + (
        "madvise A 0 cold\n" * 4000
    )
    binary = compile_c(export_c(parse_text(text, "sig.scn"), text), "sig")
    proc = subprocess.Popen(
        [str(binary), "--trace"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "\tswapon\t" in line:
            break
    # What the program found before changing anything (it holds the machine's run lock,
    # so no other run changes the settings meanwhile), in the kernel backend's format.
    saved = json.loads((RUN_DIR / "saved-settings.json").read_text())
    assert saved["zram_swap_ours"] is True
    assert "/dev/zram0" in active_swaps()
    assert _selected(THP_DIR / "enabled") == "always"
    proc.send_signal(sig)
    proc.stderr.close()
    assert proc.wait(timeout=60) == -sig
    assert "/dev/zram0" not in active_swaps()
    assert Path("/sys/block/zram0/disksize").read_text().strip() == "0"
    assert _selected(THP_DIR / "enabled") == saved["thp"]
    for kb, mode in saved["mthp"].items():
        assert _selected(THP_DIR / f"hugepages-{kb}kB" / "enabled") == mode
    sleep = THP_DIR / "khugepaged" / "scan_sleep_millisecs"
    assert sleep.read_text().strip() == saved["khugepaged_sleep"]
    assert not (RUN_DIR / "saved-settings.json").exists()


def test_without_root_a_scenario_that_needs_it_says_so_in_one_line_and_skips() -> None:
    text = "swap 64M\nmmap A 16K\nwrite A all\nexpect A all present\n"
    binary = compile_c(export_c(parse_text(text, "s.scn"), text, "scenario"), "needs-root")
    where = Path(tempfile.mkdtemp(prefix="foliosim-c-"))
    try:
        where.chmod(0o755)
        shutil.copy(binary, where / "s")
        proc = subprocess.run(
            [str(where / "s")], capture_output=True, text=True, user=65534, group=65534, check=False
        )
    finally:
        shutil.rmtree(where)
    assert proc.returncode == 4
    assert proc.stdout == "1..0 # SKIP needs root: swap on zram0 (swapon, /sys/block/zram0)\n"


FORK_AFTER_FREE = """mmap A 16K
write A all as a
madvise A all free
fork p1
expect A smaps LazyFree 0
expect vmstat pglazyfree 0
madvise A 0 cold
expect A smaps LazyFree 16
expect vmstat pglazyfree 4
"""


def test_fork_itself_drains_no_lazyfree_batch() -> None:
    # The C program of issue 8: four pages written, MADV_FREE, fork(): the folios are
    # still in the per-CPU lazyfree batch, LazyFree 0, until something drains it
    # (here lru_add_drain() at the start of MADV_COLD).  The harness's own fork steps
    # (COW broken by plain stores, lru_add pushed out by ballast faults) drain nothing.
    scenario = parse_text(FORK_AFTER_FREE, "fork-after-free.scn")
    for _ in range(TRIES):
        obs = CBackend().run(scenario)
        if all(e["ok"] for e in obs["events"]):
            return
    pytest.fail(f"{[(e['line'], e['got']) for e in obs['events'] if not e['ok']]}")
