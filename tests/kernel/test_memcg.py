"""The kernel backend's memory cgroup (issue 13, docs/pressure.md): who is in it, exact
memory.stat reads, limits written by the scenario's process."""

from __future__ import annotations

import pytest
from kernel_helpers import run_text

from foliosim.kernel import memcg


@pytest.mark.kernel
class TestScenarioMemcg:
    def test_a_few_pages_show_in_memory_stat_at_once(self):
        # 4 pages are far below the 128 updates after which a read flushes by
        # itself: only the pump's faults make the read exact.
        obs = run_text("mmap A 4\nwrite A all\nexpect memcg rss 16\nexpect memcg cache 0\n")
        assert [e["ok"] for e in obs["events"]] == [True, True]

    def test_state_has_the_memcg_only_for_a_memcg_scenario(self):
        assert "memcg" not in run_text("mmap A 1\nwrite A 0\n")["final"]
        final = run_text("mmap A 1\nwrite A 0\nmemcg swappiness 0\n")["final"]
        assert final["memcg"]["limit"] is None
        assert final["memcg"]["rss"] == 4

    def test_a_limit_the_kernel_cannot_meet_is_ebusy(self):
        obs = run_text("swap off\nmmap A 64\nwrite A all\nmemcg limit 16K\n")
        assert {"line": 4, "proc": "p0", "op": "memcg", "error": "EBUSY"} in obs["events"]
        assert obs["final"]["memcg"]["limit"] is None

    def test_usage_and_failcnt_are_read_but_not_in_state(self):
        obs = run_text("mmap A 64\nwrite A all\nexpect memcg usage 0\nexpect memcg failcnt 0\n")
        usage, failcnt = (e["got"] for e in obs["events"])
        assert usage >= 256 and failcnt == 0  # 64 pages, plus kernel memory and stock
        assert "usage" not in obs["final"]["memcg"]

    def test_no_scenario_cgroup_is_left(self):
        run_text("mmap A 1\nwrite A 0\nmemcg limit max\n")
        assert list(memcg.V1_ROOT.glob("foliosim-*")) == []

    def test_a_write_over_the_limit_with_nothing_to_reclaim_is_oom_killed(self):
        obs = run_text("swap off\nmemcg limit 256K\nmmap A 128\nwrite A all\nread A 0\n")
        assert {"line": 4, "proc": "p0", "op": "oom_kill", "victim": "p0"} in obs["events"]
        assert {"line": 5, "proc": "p0", "op": "skipped", "killed_at": 4} in obs["events"]
        assert obs["final"]["procs"] == {}

    def test_the_oom_victim_is_the_process_with_the_most_rss_and_the_writer_goes_on(self):
        # Not a library scenario: after fork both workers break COW on their own
        # memory (worker.c), which is charged to the cgroup and shows in memory.stat.
        obs = run_text(
            "swap off\nmmap A 8\nwrite A all\nfork c\nc: mmap B 600\nc: write B all\n"
            "memcg limit 4M\nmmap D 600\nwrite D all\nexpect oom_kill c\nc: read B 0\n"
            "expect D smaps Rss 2400\n"
        )
        assert {"line": 9, "proc": "p0", "op": "oom_kill", "victim": "c"} in obs["events"]
        assert {"line": 11, "proc": "c", "op": "skipped", "killed_at": 9} in obs["events"]
        assert all(e["ok"] for e in obs["events"] if e["op"] == "expect")
        assert list(obs["final"]["procs"]) == ["p0"]
