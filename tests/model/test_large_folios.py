"""Large folios in the model: fault orders, batches, splits, deferred split, swap, PMDs."""

from __future__ import annotations

from foliosim.model.backend import ModelBackend
from foliosim.model.internal import folio_pte_batch
from foliosim.model.page_flags import page_folio
from foliosim.model.rmap import folio_maybe_mapped_shared
from foliosim.model.types import PTE_PRESENT, PageTable
from foliosim.scenario.parser import parse_text

MTHP = "thp madvise\nmthp 16K madvise\nmthp 64K madvise\n"


def run(text: str):
    trace: list[tuple[int, str, str]] = []
    backend = ModelBackend(check=True)
    obs = backend.run(parse_text(text, "t.scn"), trace=lambda *t: trace.append(t))
    return obs, backend.machine, trace


def pages(obs, proc: str = "p0", name: str = "A") -> list[dict]:
    return obs["final"]["procs"][proc]["maps"][name]["pages"]


def orders(obs, proc: str = "p0", name: str = "A") -> list[int]:
    return [p.get("order", -1) for p in pages(obs, proc, name)]


def test_write_fault_picks_the_largest_order_whose_block_fits_the_vma():
    obs, _, _ = run(MTHP + "mmap A 128K offset 4\nmadvise A all hugepage\nwrite A all\n")
    # 64K blocks around pages 0-11 and 28-31 stick out of the VMA: 16K folios there.
    assert orders(obs) == [2] * 12 + [4] * 16 + [2] * 4
    assert obs["final"]["mthp"]["16K"]["anon_fault_alloc"] == 4
    assert obs["final"]["mthp"]["64K"]["anon_fault_alloc"] == 1


def test_zero_page_pte_rules_out_every_order_whose_block_contains_it():
    obs, _, _ = run(MTHP + "mmap A 64K\nmadvise A all hugepage\nread A 3\nwrite A all\n")
    assert orders(obs) == [0] * 4 + [2] * 12


def test_without_vm_hugepage_madvise_sizes_give_order_0():
    obs, _, _ = run(MTHP + "mmap A 64K\nwrite A all\n")
    assert orders(obs) == [0] * 16


def test_redirtied_lazyfree_64k_folio_is_decided_in_one_batch_and_kept_whole():
    obs, _, trace = run(
        MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all as old\n"
        "madvise A all free\nwrite A 3 as new\nmadvise A all pageout\n"
    )
    decisions = [msg for _, func, msg in trace if func == "try_to_unmap_one"]
    assert len(decisions) == 1 and "kept: dirty" in decisions[0]
    assert orders(obs) == [4] * 16
    assert obs["final"]["vmstat"]["pglazyfree"] == 16
    assert obs["final"]["vmstat"]["pglazyfreed"] == 0


def test_partial_madvise_free_splits_the_folio_and_the_split_marks_it_dirty():
    obs, _, _ = run(MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all\nmadvise A 0-7 free\n")
    ps = pages(obs)
    assert orders(obs) == [0] * 16
    assert all("dirty" not in p["flags"] for p in ps[:8])  # cleaned by MADV_FREE
    assert all("dirty" in p["flags"] for p in ps[8:])  # PG_dirty from the split
    stats = obs["final"]["mthp"]["64K"]
    assert (stats["split"], stats["split_deferred"], stats["nr_anon"]) == (1, 1, 0)
    assert stats["nr_anon_partially_mapped"] == 0


def test_split_maps_zero_filled_pages_to_the_shared_zero_page():
    obs, _, _ = run(MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A 0\nmadvise A 8-15 free\n")
    ps = pages(obs)
    assert "zero_page" not in ps[0]["flags"]
    assert all("zero_page" in p["flags"] for p in ps[1:])
    assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Rss"] == 4


def test_partially_unmapped_folio_is_queued_for_deferred_split_once():
    obs, m, _ = run(
        MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all\n"
        "madvise A 0-3 dontneed\nmadvise A 4 dontneed\n"
    )
    stats = obs["final"]["mthp"]["64K"]
    assert stats["split_deferred"] == 1
    assert stats["nr_anon_partially_mapped"] == 1
    assert list(m.deferred_split.values()) == [True]


def test_swapped_out_64k_folio_comes_back_whole_on_one_read_fault():
    obs, _, _ = run(
        MTHP + "swap 64M\nmmap A 64K\nmadvise A all hugepage\nwrite A all\n"
        "madvise A all pageout\nread A 5\n"
    )
    assert orders(obs) == [4] * 16
    final = obs["final"]
    assert final["vmstat"]["pswpin"] == 16 and final["vmstat"]["pswpout"] == 16
    assert (final["mthp"]["64K"]["swpout"], final["mthp"]["64K"]["swpin"]) == (1, 1)


def test_64k_folio_without_swap_space_is_split_and_counted_as_swpout_fallback():
    obs, _, _ = run(
        MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all\nmadvise A all pageout\n"
    )
    assert orders(obs) == [0] * 16
    assert obs["final"]["mthp"]["64K"]["swpout_fallback"] == 1
    assert all("active" in p["flags"] for p in pages(obs))


def test_lazyfree_pmd_thp_is_split_at_the_pmd_then_discarded_in_one_batch():
    obs, _, trace = run(
        "mmap A 2M\nmadvise A all hugepage\nwrite A all\nmadvise A all free\n"
        "madvise A all pageout\n"
    )
    vmstat = obs["final"]["vmstat"]
    assert (vmstat["thp_split_pmd"], vmstat["thp_split_page"]) == (1, 0)
    assert vmstat["pglazyfreed"] == 512
    assert sum(func == "try_to_unmap_one" for _, func, _ in trace) == 1


def test_write_to_the_huge_zero_page_allocates_a_whole_thp():
    obs, m, _ = run("mmap A 2M\nmadvise A all hugepage\nread A 0\nwrite A 5\n")
    assert obs["final"]["vmstat"]["thp_fault_alloc"] == 1
    assert obs["final"]["vmstat"]["thp_split_pmd"] == 0
    assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["AnonHugePages"] == 2048
    assert m.huge_zero_pfn > 0


def test_folio_pte_batch_stops_at_a_pte_of_another_folio():
    t = PageTable()
    for i in range(16):
        t.bits[i] = PTE_PRESENT
        t.pfn[i] = 32 + i
    t.pfn[9] = 7
    assert folio_pte_batch(t, 0, 32, 32, 16, 16) == 9
    assert folio_pte_batch(t, 2, 34, 32, 16, 4) == 4  # capped by the range


def test_fork_shared_folio_is_maybe_mapped_shared_until_the_child_exits():
    text = MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all\nfork p1\n"
    _, m, _ = run(text)
    mm = m.mms["p0"]
    vpn = mm.mappings["A"].start
    folio = page_folio(m, mm.pte_table(vpn).pfn[vpn & 511])
    assert folio_maybe_mapped_shared(m, folio)
    _, m, _ = run(text + "p1: exit\n")
    mm = m.mms["p0"]
    folio = page_folio(m, mm.pte_table(vpn).pfn[vpn & 511])
    assert not folio_maybe_mapped_shared(m, folio)


def test_page_folio_finds_the_head_of_every_page_of_a_large_folio():
    _, m, _ = run(MTHP + "mmap A 64K\nmadvise A all hugepage\nwrite A all\n")
    mm = m.mms["p0"]
    start = mm.mappings["A"].start
    t = mm.pte_table(start)
    head = t.pfn[start & 511]
    assert head % 16 == 0
    assert {page_folio(m, t.pfn[(start + k) & 511]) for k in range(16)} == {head}
