"""The model's fast paths change nothing: the model with them equals the model without (slow-paths).

docs/fast-paths.md.  Each comparison runs the same scenario on linux-6.18 (fast
paths on) and under the built-in variant `slow-paths` (every page through its
slow path) and compares the whole observations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foliosim.model import fastpath, madvise, memory
from foliosim.model.backend import ModelBackend
from foliosim.model.errors import InvariantError
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_file, parse_text
from foliosim.variants import load_variant

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
LIBRARY = sorted(SCENARIO_DIR.glob("*.scn")) + sorted(SCENARIO_DIR.glob("pressure/*.scn"))
LIBRARY += sorted((SCENARIO_DIR / "peer").glob("*.scn"))

SLOW = load_variant("slow-paths")

# The fast paths take runs from this length (fastpath.FAST_RUN_MIN is larger by
# default): so the small scenarios of the library and of equiv take them too.
RUN_MIN = 2


@pytest.fixture(autouse=True)
def short_runs_take_fast_paths(monkeypatch):
    monkeypatch.setattr(fastpath, "FAST_RUN_MIN", RUN_MIN)


def observe(scenario, slow: bool) -> str:
    """The observation of one run as JSON (the backend's own name left out), or the error it raised."""
    try:
        if slow:
            with SLOW.applied():
                obs = ModelBackend(check=True).run(scenario)
        else:
            obs = ModelBackend(check=True).run(scenario)
    except (ScenarioError, InvariantError) as e:
        return f"error: {e}"
    obs.pop("backend")
    return json.dumps(obs, sort_keys=True)


@pytest.mark.parametrize("path", LIBRARY, ids=[str(p.relative_to(SCENARIO_DIR)) for p in LIBRARY])
def test_the_library_observes_the_same_with_and_without_fast_paths(path):
    scenario = parse_file(path)
    assert observe(scenario, slow=False) == observe(scenario, slow=True)


# The benchmark's workload, small: every fast path runs on it (see the next test).
WORKLOADS = {
    "lazyfree-4K": "mmap A 4M\nwrite A all\nmadvise A all free\nmadvise A all pageout\nread A all\n",
    "lazyfree-64K": "mthp 64K always\nmmap A 4M\nwrite A all\nmadvise A all free\n"
    "madvise A all pageout\nread A all\n",
    "swap-out-4K": "swap 8M\nmmap A 4M\nwrite A all\nmadvise A all pageout\nread A all\n",
    "swap-partial": "swap 8M\nmmap A 3M\nwrite A 5-700\nmadvise A 0-300 pageout\nread A 7-100\n"
    "madvise A all pageout\nwrite A 200-250\nread A all\nmunmap A\n",
    "partial": "mmap A 3M\nwrite A 5-700\nfork p1\nmadvise A 0-760 free\nwrite A 10-20\n"
    "madvise A all pageout\nread A all\np1: exit\nread A 3-767\nmunmap A\n",
}


@pytest.mark.parametrize("run_min", [RUN_MIN, fastpath.FAST_RUN_MIN], ids=["short", "default"])
@pytest.mark.parametrize("name", WORKLOADS)
def test_the_workload_observes_the_same_with_and_without_fast_paths(name, run_min, monkeypatch):
    monkeypatch.setattr(fastpath, "FAST_RUN_MIN", run_min)
    scenario = parse_text(WORKLOADS[name], f"{name}.scn")
    assert observe(scenario, slow=False) == observe(scenario, slow=True)


def test_the_fast_paths_run_on_the_workload(monkeypatch):
    """The comparisons above compare something: each fast path is taken on the 4K workload."""
    taken = []
    for mod, name in (
        (memory, "do_anonymous_page_run"),
        (madvise, "madvise_free_pte_range_run"),
        (madvise, "madvise_pageout_lazyfree_run"),
        (madvise, "madvise_pageout_swap_run"),
        (memory, "_do_anonymous_page_large_run"),
        (memory, "do_swap_page_run"),
    ):
        real = getattr(mod, name)

        def spy(*args, _real=real, _name=name):
            taken.append(_name)
            return _real(*args)

        monkeypatch.setattr(mod, name, spy)
    ModelBackend().run(parse_text(WORKLOADS["lazyfree-4K"], "w.scn"))
    assert set(taken) == {
        "do_anonymous_page_run",
        "madvise_free_pte_range_run",
        "madvise_pageout_lazyfree_run",
    }
    taken.clear()
    ModelBackend().run(parse_text(WORKLOADS["swap-out-4K"], "w.scn"))
    assert set(taken) == {"do_anonymous_page_run", "madvise_pageout_swap_run", "do_swap_page_run"}
    taken.clear()
    ModelBackend().run(parse_text(WORKLOADS["lazyfree-64K"], "w.scn"))
    assert set(taken) == {"do_anonymous_page_run", "_do_anonymous_page_large_run"}


def test_a_broken_fast_path_is_caught(monkeypatch):
    """The comparison fails when a fast path differs: here one that forgets to clean the PTEs."""

    def broken(m, t, start, end):
        folios = t.pfn_v[start & 511 : ((end - 1) & 511) + 1]
        for folio in folios[np.argsort(folios)].tolist():
            from foliosim.model import lru

            lru.folio_mark_lazyfree(m, folio)

    monkeypatch.setattr(madvise, "madvise_free_pte_range_run", broken)
    scenario = parse_text(WORKLOADS["lazyfree-4K"], "w.scn")
    assert observe(scenario, slow=False) != observe(scenario, slow=True)


def _equiv(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FOLIOSIM_FAST_RUN_MIN=str(RUN_MIN))
    return subprocess.run(
        [sys.executable, "-m", "foliosim.cli.main", "equiv", "linux-6.18", "slow-paths", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
    )


@pytest.mark.parametrize("mthp", [False, True], ids=["4K", "mthp"])
def test_equiv_finds_fast_and_slow_paths_equivalent(mthp, tmp_path):
    done = _equiv("--seed", "1", "--count", "150", "--out", str(tmp_path), *(["--mthp"] if mthp else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equivalent" in done.stdout


def test_equiv_exhaustive_finds_fast_and_slow_paths_equivalent(tmp_path):
    done = _equiv("--exhaustive", "--max-order", "2", "--max-procs", "1", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equivalent" in done.stdout
