"""The memcg's lruvec lists and LRU reclaim (issue 13): mm/vmscan.c, mm/swap.c and
mm/memcontrol-v1.c, Linux 6.18, on scenarios run by the model."""

from __future__ import annotations

import pytest

from foliosim.model import lru, memcontrol, vmscan
from foliosim.model.backend import ModelBackend
from foliosim.model.types import PG_referenced
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_text


def _run(text: str):
    b = ModelBackend(check=True)
    obs = b.run(parse_text(text, "t.scn"))
    assert b.machine is not None
    return b.machine, obs


def _pfns(m, name: str) -> list[int]:
    mm = m.mms["p0"]
    start = mm.mappings[name].start
    t = mm.pgtables[start >> 9]
    return [int(t.pfn[(start + i) & 511]) for i in range(mm.mappings[name].pages)]


def test_lazyfree_folios_go_to_the_inactive_file_head_in_batch_order():
    m, _ = _run("swap off\nmmap L 40\nwrite L all\nmadvise L all free\n")
    pfns = _pfns(m, "L")
    # One batch of 31 moved: the first freed deepest (the tail), the other 9 still
    # queued on the inactive anon list, behind them in fault order.
    assert lru.lruvec_list(m, lru.LRU_INACTIVE_FILE) == pfns[:31]
    assert lru.lruvec_list(m, lru.LRU_INACTIVE_ANON) == pfns[31:]


def test_isolate_lru_folios_takes_from_the_tail():
    m, _ = _run("swap off\nmmap L 31\nwrite L all\nmadvise L all free\n")
    taken, scanned = vmscan.isolate_lru_folios(m, 4, lru.LRU_INACTIVE_FILE)
    assert taken == _pfns(m, "L")[:4] and scanned == 4


def test_a_young_lazyfree_folio_is_kept_once_then_reclaimed_clean():
    m, _ = _run("swap off\nmmap L 31\nwrite L all\nmadvise L all free\nread L 0\n")
    folio = _pfns(m, "L")[0]
    first = vmscan.folio_check_references(m, folio)
    assert first is vmscan.FolioReferences.FOLIOREF_KEEP
    assert m.mem.flags[folio] & PG_referenced
    second = vmscan.folio_check_references(m, folio)
    assert second is vmscan.FolioReferences.FOLIOREF_RECLAIM_CLEAN


def test_a_limit_nothing_can_meet_fails_with_ebusy_and_keeps_the_old_limit():
    _, obs = _run(
        "swap off\nmmap A 64\nwrite A all\nmmap L 64\nwrite L all\nmadvise L all free\n"
        "memcg limit 64K\n"
    )
    assert {"line": 7, "proc": "p0", "op": "memcg", "error": "EBUSY"} in obs["events"]
    memcg = obs["final"]["memcg"]
    assert memcg["limit"] is None and memcg["inactive_file"] == 0 and memcg["rss"] == 256


def test_a_limit_reclaim_can_meet_is_set_after_reclaiming_lazyfree_pages():
    m, obs = _run("swap off\nmmap L 256\nwrite L all\nmadvise L all free\nmemcg limit 512K\n")
    assert obs["events"] == []
    assert m.memcg.max_pages == 128
    # Whole SWAP_CLUSTER_MAX passes until usage fits: at most 128 pages are left.
    assert memcontrol.mem_cgroup_usage(m) <= 128


def test_a_fault_over_the_limit_reclaims_lazyfree_pages_in_the_faulting_process():
    m, obs = _run(
        "swap off\nmmap L 256\nwrite L all\nmadvise L all free\nmemcg limit 1M\n"
        "mmap A 128\nwrite A all\n"
    )
    assert not [e for e in obs["events"] if e["op"] == "oom_kill"]
    assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Rss"] == 512
    # Only as many lazyfree pages went as the charges needed, whole reclaim passes.
    gone = 256 - obs["final"]["procs"]["p0"]["maps"]["L"]["smaps"]["Rss"] // 4
    assert 128 - 64 <= gone < 256
    assert memcontrol.mem_cgroup_usage(m) <= 256


def test_the_charge_batch_leaves_the_rest_in_the_stock():
    m, _ = _run("memcg swappiness 60\nmmap A 1\nwrite A 0\n")
    assert m.memcg.stock == memcontrol.MEMCG_CHARGE_BATCH - 1
    assert memcontrol.mem_cgroup_usage(m) == memcontrol.MEMCG_CHARGE_BATCH


def test_with_nothing_to_reclaim_the_oom_killer_kills_the_faulting_process():
    m, obs = _run("swap off\nmemcg limit 256K\nmmap A 128\nwrite A all\nread A 0\n")
    assert {"line": 4, "proc": "p0", "op": "oom_kill", "victim": "p0"} in obs["events"]
    assert {"line": 5, "proc": "p0", "op": "skipped", "killed_at": 4} in obs["events"]
    assert obs["final"]["procs"] == {} and m.memcg.oom_kills == ["p0"]


def test_the_oom_victim_is_the_task_with_the_most_rss_not_the_faulting_one():
    _, obs = _run(
        "swap off\nmmap A 8\nwrite A all\nfork c\nc: mmap B 100\nc: write B all\n"
        "memcg limit 512K\nmmap D 100\nwrite D all\nexpect oom_kill c\nc: read B 0\n"
    )
    assert {"line": 9, "proc": "p0", "op": "oom_kill", "victim": "c"} in obs["events"]
    assert obs["events"][-2]["ok"] is True
    assert obs["events"][-1] == {"line": 11, "proc": "c", "op": "skipped", "killed_at": 9}
    assert obs["final"]["procs"]["p0"]["maps"]["D"]["smaps"]["Rss"] == 400


def test_without_a_memcg_line_state_has_no_memcg():
    _, obs = _run("mmap A 1\nwrite A 0\n")
    assert "memcg" not in obs["final"]
