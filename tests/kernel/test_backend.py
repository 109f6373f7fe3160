"""What Linux does to a scenario's pages, as the kernel backend observes it."""

from __future__ import annotations

import pytest
from kernel_helpers import events, final_pages, run_text

from foliosim.observation import FORMAT, MTHP_SIZE_NAMES, SMAPS_KEYS, VMSTAT_KEYS, dumps

pytestmark = pytest.mark.kernel


class TestObservationShape:
    def test_observation_has_the_contract_keys(self):
        obs = run_text("mmap A 4\nwrite A 0\n", "shape.scn")
        assert obs["format"] == FORMAT
        assert obs["scenario"] == "shape.scn"
        assert obs["backend"]["name"] == "kernel"
        assert obs["backend"]["release"] == __import__("platform").release()
        final = obs["final"]
        assert set(final["vmstat"]) == set(VMSTAT_KEYS)
        assert tuple(final["mthp"]) == MTHP_SIZE_NAMES
        for stats in final["mthp"].values():
            assert "nr_anon" in stats and not any(k.startswith("shmem_") for k in stats)
        mapping = final["procs"]["p0"]["maps"]["A"]
        assert tuple(mapping["smaps"]) == SMAPS_KEYS
        assert len(mapping["pages"]) == 4

    def test_same_scenario_gives_the_same_observation_twice(self):
        text = (
            "mmap A 8\nmmap B 1\nwrite A all as x\nmadvise A 0-3 free\nobserve batched\n"
            "madvise B 0 cold\nfork p1\np1: write A 5 as y\nobserve forked\n"
        )
        first = dumps(run_text(text))
        assert dumps(run_text(text)) == first


class TestPages:
    def test_written_page_is_present_exclusive_anon_order_0(self):
        obs = run_text("mmap A 4\nwrite A 1 as a\n")
        pages = final_pages(obs, "A")
        assert [p["state"] for p in pages] == ["none", "present", "none", "none"]
        p = pages[1]
        assert p["exclusive"] is True
        assert {"anon", "anon_exclusive", "swapbacked", "uptodate"} <= set(p["flags"])
        assert "lru" not in p["flags"] and "idle" not in p["flags"]
        assert p["mapcount"] == 1 and p["order"] == 0
        assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Rss"] == 4

    def test_read_of_untouched_page_maps_the_zero_page(self):
        obs = run_text("mmap A 2\nread A 0\n")
        assert events(obs, "read")[0]["data"] == ["zero"]
        p = final_pages(obs, "A")[0]
        assert p["state"] == "present" and "zero_page" in p["flags"] and p["order"] == 0
        assert "referenced" not in p["flags"] and "active" not in p["flags"]

    def test_read_reports_labels_and_zero_in_range_order(self):
        obs = run_text("mmap A 4\nwrite A 0 as a\nwrite A 3 as b\nread A 3,0-1\n")
        assert events(obs, "read")[0]["data"] == ["b", "a", "zero"]

    def test_mthp_64k_always_gives_an_order_4_folio(self):
        obs = run_text("mthp 64K always\nmmap A 16\nwrite A 0\n")
        pages = final_pages(obs, "A")
        assert all(p["state"] == "present" and p["order"] == 4 for p in pages)
        assert "compound_head" in pages[0]["flags"]
        assert all("compound_tail" in p["flags"] for p in pages[1:])
        assert obs["final"]["mthp"]["64K"]["anon_fault_alloc"] >= 1

    def test_droppable_pages_are_not_swapbacked(self):
        obs = run_text("mmap D 2 droppable\nwrite D all\n")
        for p in final_pages(obs, "D"):
            assert p["state"] == "present" and "swapbacked" not in p["flags"]


class TestReclaim:
    def test_lazyfree_then_pageout_discards_four_pages(self):
        obs = run_text(
            "mmap A 4\nwrite A all as old\nmadvise A all free\n"
            "madvise A all pageout\nexpect vmstat pglazyfreed 4\n"
            "expect A all none\nexpect A all data zero\n"
        )
        assert obs["final"]["vmstat"]["pglazyfreed"] == 4
        assert [e["ok"] for e in events(obs, "expect")] == [True, True, True]

    def test_madv_free_waits_in_the_lazyfree_batch_until_a_drain(self):
        # Batches are empty at start, so 4 folios stay in lru_lazyfree: still swapbacked and
        # not yet counted; MADV_COLD on another mapping drains them.
        obs = run_text(
            "mmap A 4\nmmap B 1\nwrite A all\nmadvise A all free\nobserve before\n"
            "madvise B 0 cold\nobserve after\n"
        )
        before, after = (e["state"] for e in events(obs, "observe"))
        a_before = before["procs"]["p0"]["maps"]["A"]
        a_after = after["procs"]["p0"]["maps"]["A"]
        assert before["vmstat"]["pglazyfree"] == 0
        assert all("swapbacked" in p["flags"] for p in a_before["pages"])
        assert after["vmstat"]["pglazyfree"] == 4
        assert all("swapbacked" not in p["flags"] for p in a_after["pages"])
        assert a_after["smaps"]["LazyFree"] == 16

    def test_swap_and_pageout_give_pswpout_and_swap_entries(self):
        obs = run_text(
            "swap 64M\nmmap A 4\nwrite A all as old\nmadvise A all pageout\n"
            "observe out\nread A all\n"
        )
        out = events(obs, "observe")[0]["state"]
        assert out["vmstat"]["pswpout"] == 4
        assert [p["state"] for p in out["procs"]["p0"]["maps"]["A"]["pages"]] == ["swap"] * 4
        assert out["procs"]["p0"]["maps"]["A"]["smaps"]["Swap"] == 16
        assert events(obs, "read")[0]["data"] == ["old"] * 4
        assert obs["final"]["vmstat"]["pswpin"] >= 1

    def test_pageout_without_swap_keeps_the_pages(self):
        obs = run_text("mmap A 2\nwrite A all\nmadvise A all pageout\nexpect A all present\n")
        assert events(obs, "expect")[0]["ok"] is True


class TestProcesses:
    def test_fork_shares_pages_until_the_child_writes(self):
        obs = run_text(
            "mmap A 2\nwrite A all as old\nfork p1\np1: write A 0 as kid\n"
            "p1: read A all\nread A all\n"
        )
        r1, r0 = events(obs, "read")
        assert (r1["proc"], r1["data"]) == ("p1", ["kid", "old"])
        assert (r0["proc"], r0["data"]) == ("p0", ["old", "old"])
        p0, p1 = final_pages(obs, "A", "p0"), final_pages(obs, "A", "p1")
        assert p0[1]["mapcount"] == 2 and p0[1]["exclusive"] is False
        assert p1[0]["mapcount"] == 1 and p1[0]["exclusive"] is True

    def test_exited_process_is_absent_from_state(self):
        obs = run_text("mmap A 1\nfork p1\np1: exit\n")
        assert set(obs["final"]["procs"]) == {"p0"}

    def test_munmapped_mapping_is_absent_from_state(self):
        obs = run_text("mmap A 1\nmmap B 1\nmunmap A\n")
        assert set(obs["final"]["procs"]["p0"]["maps"]) == {"B"}

    def test_gup_held_pages_are_unmapped_but_not_written_to_swap(self):
        # vmsplice takes plain references (FOLL_GET, not FOLL_PIN): reclaim still replaces the
        # PTEs with swap entries, but pageout() will not write a folio with extra references,
        # so only the two unreferenced pages count in pswpout; the others stay in swapcache.
        obs = run_text(
            "swap 64M\nmmap A 4\nwrite A all as w\ngup A 1-2 as R\n"
            "madvise A all pageout\nobserve held\nrelease R\nread A all\n"
        )
        held = events(obs, "observe")[0]["state"]
        assert [p["state"] for p in held["procs"]["p0"]["maps"]["A"]["pages"]] == ["swap"] * 4
        assert held["vmstat"]["pswpout"] == 2
        assert events(obs, "read")[0]["data"] == ["w"] * 4
        back = final_pages(obs, "A")
        assert ["swapcache" in p["flags"] for p in back] == [False, True, True, False]
        assert obs["final"]["vmstat"]["pswpin"] == 2

    def test_poke_writes_the_page_through_gup(self):
        obs = run_text("mmap A 2\nwrite A all as old\npoke A 1 as pk\nread A all\n")
        assert events(obs, "read")[0]["data"] == ["old", "pk"]


class TestErrors:
    def test_failed_syscall_becomes_an_error_event_and_the_run_goes_on(self):
        # MADV_FREE on an mlocked VMA is EINVAL; the failing run stops the rest of the line.
        obs = run_text(
            "mmap A 4\nwrite A all\nmlock A 0\nmadvise A 0,2-3 free\nmadvise A 2-3 free\n"
        )
        errs = [e for e in obs["events"] if "error" in e]
        assert errs == [{"line": 4, "proc": "p0", "op": "madvise", "map": "A", "error": "EINVAL"}]
        assert "Locked" in obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]
        assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Locked"] == 4
        assert obs["final"]["vmstat"]["pglazyfree"] == 0  # 2-3 wait in the batch

    def test_failed_expectation_is_recorded_with_what_was_found(self):
        obs = run_text("mmap A 2\nwrite A 0 as a\nexpect A all data a\nexpect A smaps Rss 8\n")
        e1, e2 = events(obs, "expect")
        assert (e1["ok"], e1["got"]) == (False, ["a", "zero"])
        assert (e2["ok"], e2["got"]) == (False, 4)


class TestHugePages:
    def test_read_in_a_hugepage_region_maps_the_huge_zero_page_at_order_0(self):
        obs = run_text("mmap A 2M\nmadvise A all hugepage\nread A 0\n")
        pages = final_pages(obs, "A")
        assert all(p["state"] == "present" and "zero_page" in p["flags"] for p in pages)
        assert all(p["order"] == 0 for p in pages)
        assert "compound_head" in pages[0]["flags"] and "thp" in pages[0]["flags"]

    def test_write_in_a_hugepage_region_faults_a_pmd_thp(self):
        obs = run_text("mmap A 2M\nmadvise A all hugepage\nwrite A 3\n")
        pages = final_pages(obs, "A")
        assert all(p["order"] == 9 for p in pages)
        assert obs["final"]["vmstat"]["thp_fault_alloc"] == 1
        assert obs["final"]["mthp"]["2M"]["nr_anon"] == 1
        assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["AnonHugePages"] == 2048


class TestReferences:
    def test_a_readonly_pin_is_refused_up_front_in_one_line(self):
        # io_uring pins FOLL_WRITE only and the kernel has no gup_test.
        from foliosim.kernel.backend import KernelBackend
        from foliosim.scenario.parser import parse_text

        sc = parse_text("mmap A 4\nwrite A all as a\npin A 0 as R readonly\n", "ro.scn")
        reason = KernelBackend().refusal(sc)
        assert reason is not None and reason.startswith("ro.scn:3:1: kernel backend: no R/O")
        assert "\n" not in reason

    def test_a_reference_name_taken_again_reads_what_the_new_pin_holds(self):
        obs = run_text(
            "mmap A 8K\nwrite A all as a\npin A all as R\nrelease R\nwrite A 1 as b\n"
            "pin A 1 as R\nexpect R data b\nrelease R\n"
        )
        (ev,) = events(obs, "expect")
        assert ev["ok"] and ev["got"] == ["b"]
