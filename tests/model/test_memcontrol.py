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


def test_a_fault_under_a_set_limit_is_refused_as_not_modelled():
    with pytest.raises(ScenarioError, match=r"t.scn:3:1: model: a fault charged"):
        _run("memcg limit 1M\nmmap A 1\nwrite A 0\n")


def test_without_a_memcg_line_state_has_no_memcg():
    _, obs = _run("mmap A 1\nwrite A 0\n")
    assert "memcg" not in obs["final"]
