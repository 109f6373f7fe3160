"""The model's STATE page lists are built run by run, and say what fs/proc says page by page.

observe.read_pages() finds the runs of pages whose entries cannot differ with
numpy and reads one entry per run; the report and the JSON writer then work
per run.  These tests hold that to the page-by-page meaning on every scenario
of the library: the runs are the maximal runs of equal pages, every page is
what fs/proc/page.c's functions say of it, and the JSON text is json.dumps's.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from foliosim import observation
from foliosim.cli import report
from foliosim.model import proc_page, task_mmu
from foliosim.model.backend import ModelBackend
from foliosim.model.types import PG_zero
from foliosim.observation import PageList, page_runs
from foliosim.scenario.parser import parse_file, parse_text

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
LIBRARY = sorted(SCENARIO_DIR.glob("**/*.scn"))
IDS = [str(p.relative_to(SCENARIO_DIR)) for p in LIBRARY]


def _states(obs: dict[str, Any]) -> list[dict[str, Any]]:
    return [obs["final"]] + [e["state"] for e in obs["events"] if e.get("op") == "observe"]


def _mappings(state: dict[str, Any]):
    for proc, pstate in state["procs"].items():
        for name, mapping in pstate["maps"].items():
            yield proc, name, mapping


def _page_by_page(m, mm, start: int, nr: int) -> list[dict[str, Any]]:
    """Each page's entry on its own: its pagemap bits, stable_page_flags(), get_kpage_count()."""
    bits, pfn = task_mmu.mapping_ptes(mm, start, nr)
    pmd_mapped = task_mmu.mapping_pmd_mapped(mm, start, nr) if mm.pmds else None
    present, swap, exclusive = task_mmu.pte_to_pagemap_entry(m, bits, pfn, pmd_mapped)
    out: list[dict[str, Any]] = []
    for k in range(nr):
        if present[k]:
            p = int(pfn[k])
            folio = int(task_mmu.folio_heads(m, pfn[k : k + 1])[0])
            out.append(
                {
                    "state": "present",
                    "exclusive": bool(exclusive[k]),
                    "soft_dirty": False,
                    "flags": proc_page.stable_page_flags(m, p, folio),
                    "mapcount": proc_page.get_kpage_count(m, p, folio),
                    "order": 0 if m.mem.flags[p] & PG_zero else int(m.mem.order[folio]),
                }
            )
        elif swap[k]:
            out.append({"state": "swap", "exclusive": False, "soft_dirty": False})
        else:
            out.append({"state": "none", "exclusive": False, "soft_dirty": False})
    return out


@pytest.mark.parametrize("path", LIBRARY, ids=IDS)
def test_page_lists_are_maximal_runs_and_match_fs_proc_page_by_page(path):
    backend = ModelBackend(profile="linux-6.18")
    obs = backend.run(parse_file(str(path)))
    for state in _states(obs):
        for _, _, mapping in _mappings(state):
            pages = mapping["pages"]
            assert isinstance(pages, PageList)
            # The runs the model found are the ones comparing neighbours finds.
            assert pages.runs == page_runs(list(pages))
            for first, last in pages.runs:
                assert all(pages[i] is pages[first] for i in range(first, last + 1))
    m = backend.machine
    for proc, name, mapping in _mappings(obs["final"]):
        mm = m.mms[proc]
        mp = mm.mappings[name]
        assert mapping["pages"] == _page_by_page(m, mm, mp.start, mp.pages), (proc, name)


@pytest.mark.parametrize(
    "path",
    [p for p in LIBRARY if "observe" in p.read_text()][:12] + [SCENARIO_DIR / "fork-cow.scn"],
    ids=lambda p: p.name,
)
def test_json_is_what_json_dumps_writes_page_by_page(path):
    obs = ModelBackend(profile="linux-6.18").run(parse_file(str(path)))
    plain = json.loads(json.dumps(obs))  # every PageList a plain list, no shared dicts
    assert observation.dumps(obs) == json.dumps(plain, sort_keys=True, indent=1) + "\n"
    assert observation.dumps(plain) == observation.dumps(obs)


BIG = """\
mthp 64K always
swap 64M
mmap A 64M
mmap B 64
write A all
madvise A 0-4095 free
madvise A 2048-8191 pageout
write A 100-131
write B 0-7
observe mid
read A 0-16383
"""


def _big():
    sc = parse_text(BIG, "big.scn")
    return sc, ModelBackend(profile="linux-6.18").run(sc)


def test_a_big_mapping_is_few_runs_and_its_json_matches():
    _, obs = _big()
    pages = obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]
    assert len(pages) == 16384
    # 64K folios: a head and a tail run per folio where the folio is whole.
    assert len(pages.runs) < len(pages) // 4
    assert len(pages.runs) == len(page_runs(list(pages)))
    plain = copy.deepcopy(json.loads(json.dumps(obs)))
    assert observation.dumps(obs) == json.dumps(plain, sort_keys=True, indent=1) + "\n"


def test_the_report_classifies_and_formats_runs_not_pages(monkeypatch):
    sc, obs = _big()
    runs = sum(
        len(mapping["pages"].runs) for state in _states(obs) for _, _, mapping in _mappings(state)
    )
    pages = sum(
        len(mapping["pages"]) for state in _states(obs) for _, _, mapping in _mappings(state)
    )
    calls = {"classify_page": 0, "format_page": 0}
    for fn in calls:
        real = getattr(report, fn)

        def counting(page, _real=real, _fn=fn):
            calls[_fn] += 1
            return _real(page)

        monkeypatch.setattr(report, fn, counting)
    out = io.StringIO()
    report.print_report(Console(file=out, width=200), obs, sc)
    # The strip, the legend and the dump each look at a run once.
    assert runs < pages // 8
    assert calls["classify_page"] <= 3 * runs
    shown = sum(
        min(len(mapping["pages"].runs), report.MAX_RANGES)
        for state in _states(obs)
        for _, _, mapping in _mappings(state)
    )
    assert calls["format_page"] == shown
    # The same report from the JSON (plain lists, runs found by comparing pages).
    again = io.StringIO()
    report.print_report(Console(file=again, width=200), json.loads(observation.dumps(obs)), sc)
    assert again.getvalue() == out.getvalue()
