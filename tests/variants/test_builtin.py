"""Each built-in variant changes exactly what it claims, on scenarios whose
linux-6.18 outcome the library has seen on the live kernel."""

from __future__ import annotations

from pathlib import Path

from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_file, parse_text
from foliosim.variants import load_variant, model_functions

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _model(name: str):
    # A model function by name, wherever the model defines it.
    return model_functions()[name][1]


def _run(variant: str, scenario):
    with load_variant(variant).applied():
        return ModelBackend(check=True).run(scenario)


def _failed(obs):
    return [e["text"] for e in obs["events"] if e.get("op") == "expect" and not e["ok"]]


def _pages(obs, mapping="A", proc="p0"):
    return obs["final"]["procs"][proc]["maps"][mapping]["pages"]


def test_per_pte_discards_the_clean_pages_before_a_redirtied_one():
    # mthp-lazyfree-redirty: 64K lazyfree folio, page 3 written again.  Linux
    # 6.18 keeps all 16 PTEs; the per-PTE walk discards pages 0-2 first.
    scenario = parse_file(str(SCENARIOS / "mthp-lazyfree-redirty.scn"))
    assert _failed(_run("linux-6.18", scenario)) == []
    obs = _run("per-pte", scenario)
    (after_pageout,) = [e for e in obs["events"] if e["text"] == "expect A all present"]
    assert after_pageout["got"] == ["none"] * 3 + ["present"] * 13
    assert obs["final"]["vmstat"]["pglazyfreed"] == 0  # the folio was kept, not freed
    assert "expect A all present" in _failed(obs)


EXTRA_REF = """\
swap off
mmap A 16K
write A all as old
madvise A all free
gup A 0-1 as R
madvise A all pageout
"""


def test_pre_6_15_swapbacked_turns_an_extra_ref_lazyfree_folio_swapbacked():
    scenario = parse_text(EXTRA_REF, "extra-ref.scn")
    new, old = _run("linux-6.18", scenario), _run("pre-6.15-swapbacked", scenario)
    for obs in (new, old):
        assert [p["state"] for p in _pages(obs)] == ["present"] * 2 + ["none"] * 2
    assert [("swapbacked" in p["flags"]) for p in _pages(new)[:2]] == [False, False]
    assert [("swapbacked" in p["flags"]) for p in _pages(old)[:2]] == [True, True]
    assert new["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["LazyFree"] == 8
    assert old["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["LazyFree"] == 0


def test_the_seed_and_the_reviewed_form_keep_the_library_lazyfree_scenarios():
    for name in (
        "mthp-lazyfree-redirty",
        "lazyfree-gup-release",
        "lazyfree-redirty",
        "droppable-free-redirty",
        "mthp-pt-boundary",
    ):
        scenario = parse_file(str(SCENARIOS / f"{name}.scn"))
        for variant in ("seed-v1", "reviewed"):
            assert _failed(_run(variant, scenario)) == [], (variant, name)


def test_seed_v4_keeps_the_library_lazyfree_scenarios():
    for name in (
        "mthp-lazyfree-redirty",
        "lazyfree-gup-release",
        "lazyfree-redirty",
        "droppable-free-redirty",
        "mthp-lazyfree-mixed-write",
    ):
        scenario = parse_file(str(SCENARIOS / f"{name}.scn"))
        assert _failed(_run("seed-v4", scenario)) == [], name


def test_bug_pte_restore_keeps_the_clean_read_only_pages_the_fixed_batch_discards():
    # The live kernel discards pages 0-2 here (the scenario's expectations).
    scenario = parse_file(str(SCENARIOS / "mthp-lazyfree-mixed-write.scn"))
    assert _failed(_run("linux-6.18", scenario)) == []
    assert _failed(_run("bug-pte-restore", scenario)) == [
        "expect A 0-2 none",
        "expect A 0-2 data zero",
    ]


# After fork and the child's exit every PTE is read-only; writing page 0 reuses
# the folio and makes only page 0's PTE writable; page 0 is redirtied after MADV_FREE.
FIRST_PTE_WRITABLE = """\
thp madvise
mthp 64K madvise
mmap A 64K
madvise A all hugepage
write A all as old
fork p1
p1: exit
write A 0 as new
madvise A all free
write A 0 as newer
madvise A all pageout
"""


def _writable_ptes(variant):
    from foliosim.model.types import PTE_WRITE

    with load_variant(variant).applied():
        backend = ModelBackend(check=True)
        backend.run(parse_text(FIRST_PTE_WRITABLE, "first-writable.scn"))
    mm = backend.machine.mms["p0"]
    (vma,) = mm.vmas
    t = mm.pgtables[vma.start >> 9]
    i = vma.start & 511
    return [bool(t.bits[i + k] & PTE_WRITE) for k in range(16)]


def test_bug_pte_restore_makes_read_only_ptes_writable_on_restore():
    # 6.18: the batch is page 0 alone; its restore leaves 1-15 read-only.
    assert _writable_ptes("linux-6.18") == [True] + [False] * 15
    # Before 29f40594a281 the batch ran over all 16 and the restore wrote page
    # 0's writable value into every PTE.
    assert _writable_ptes("bug-pte-restore") == [True] * 16


# A lazyfree 64K folio whose VMA is cut in the middle (madvise on half of it).
CUT_VMA = """\
thp madvise
mthp 64K madvise
mmap A 64K
madvise A all hugepage
write A all as old
madvise A all free
madvise A 8-15 nohugepage
"""


def _reclaim_cut_folio(variant):
    lru_add_drain, page_folio = _model("lru_add_drain"), _model("page_folio")
    folio_isolate_lru, reclaim_pages = _model("folio_isolate_lru"), _model("reclaim_pages")

    backend = ModelBackend(check=True)
    backend.run(parse_text(CUT_VMA, "cut.scn"))
    m = backend.machine
    mm = m.mms["p0"]
    assert len(mm.vmas) == 2
    t = mm.pgtables[mm.vmas[0].start >> 9]
    i = mm.vmas[0].start & 511
    folio = page_folio(m, t.pfn[i])
    assert m.mem.order[folio] == 4
    lru_add_drain(m)
    # shrink_folio_list() from the LRU (MADV_PAGEOUT's walker would split the folio).
    with load_variant(variant).applied():
        assert folio_isolate_lru(m, folio)
        reclaim_pages(m, [folio])
    return [int(t.bits[i + k]) for k in range(16)]


def test_bug_oob_batch_faults_on_a_folio_cut_by_a_vma_boundary():
    import pytest

    from foliosim.model.errors import InvariantError

    # 6.18: one batch per VMA, both halves discarded.
    assert _reclaim_cut_folio("linux-6.18") == [0] * 16
    with pytest.raises(InvariantError, match="batch of 16 PTEs .* crosses the VMA's end"):
        _reclaim_cut_folio("bug-oob-batch")


def test_a_pte_batch_past_the_page_table_is_a_fault():
    import pytest

    from foliosim.model.errors import InvariantError
    from foliosim.model.types import PTE_PRESENT, PageTable

    folio_pte_batch = _model("folio_pte_batch")

    t = PageTable()
    for k in range(8):  # a 64K folio at pfn 1024 whose first 8 PTEs end the table
        t.bits[504 + k] = PTE_PRESENT
        t.pfn[504 + k] = 1024 + k
    assert folio_pte_batch(t, 504, 1024, 1024, 16, 8) == 8
    with pytest.raises(InvariantError, match="read past the page table"):
        folio_pte_batch(t, 504, 1024, 1024, 16, 16)


LAZYFREE_64K = """\
thp madvise
mthp 64K madvise
mmap A 64K
madvise A all hugepage
write A all as old
madvise A all free
"""


def _reclaim_with_last_page_device_exclusive(variant):
    lru_add_drain, page_folio = _model("lru_add_drain"), _model("page_folio")
    folio_isolate_lru, reclaim_pages = _model("folio_isolate_lru"), _model("reclaim_pages")
    make_device_exclusive = _model("make_device_exclusive")

    backend = ModelBackend(check=True)
    backend.run(parse_text(LAZYFREE_64K, "lazyfree-64k.scn"))
    m = backend.machine
    mm = m.mms["p0"]
    (vma,) = mm.vmas
    t = mm.pgtables[vma.start >> 9]
    folio = page_folio(m, t.pfn[vma.start & 511])
    make_device_exclusive(m, vma, vma.start + 15)  # HMM_DMIRROR_EXCLUSIVE on page 15
    lru_add_drain(m)
    with load_variant(variant).applied():
        assert folio_isolate_lru(m, folio)
        reclaim_pages(m, [folio])
    return m, mm, folio


def test_bug_stale_nr_pages_unmaps_15_pages_for_one_device_exclusive_entry():
    import pytest

    from foliosim.model.checks import validate_all
    from foliosim.model.errors import InvariantError
    from foliosim.model.types import MM_ANONPAGES

    # 6.18 (fixed): a batch of 15 present PTEs, then the device-exclusive one alone.
    m, mm, folio = _reclaim_with_last_page_device_exclusive("linux-6.18")
    assert mm.counters[MM_ANONPAGES] == 0 and m.mem.refcount[folio] == 0
    validate_all(m, None)
    # CVE-2026-63950: the device-exclusive entry reuses nr_pages = 15.
    m, mm, folio = _reclaim_with_last_page_device_exclusive("bug-stale-nr-pages")
    assert mm.counters[MM_ANONPAGES] == 1 - 15  # one page's entry, 15 pages' RSS
    assert m.mem.refcount[folio] < 0  # 15 references dropped for one
    with pytest.raises(InvariantError, match="validate_folio_refcount: .*refcount -14"):
        validate_all(m, None)


def test_bug_stale_nr_pages_is_the_models_try_to_unmap_one_less_one_line():
    # The variant copies the model's function: if the model's changes, so must it.
    import difflib
    import inspect

    from foliosim.model import rmap

    model = inspect.getsource(rmap.try_to_unmap_one).splitlines()
    variant = inspect.getsource(
        load_variant("bug-stale-nr-pages").replacements["try_to_unmap_one"]
    ).splitlines()
    changed = [
        (line[0], line[1:].split("#")[0].strip())
        for line in difflib.unified_diff(model, variant, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert [c for c in changed if c[1] and "try_to_unmap_one" not in c[1]] == [
        ("+", "@replace"),
        ("+", "nr_pages = 1"),
        ("-", "nr_pages = 1"),
    ], changed


# Each historical variant against the library scenario that shows it on the live
# kernel: linux-6.18's model meets every expectation (as 6.18.44 does, three runs
# out of three), the variant's model fails exactly those the bug changes.
PRESSURE = SCENARIOS / "pressure"


def test_bug_pte_restore_lets_the_parents_write_land_in_the_childs_page():
    import pytest

    from foliosim.model.errors import InvariantError

    scenario = parse_file(str(PRESSURE / "memcg-lazyfree-shared-restore.scn"))
    assert _failed(_run("linux-6.18", scenario)) == []
    # The restore wrote page 0's writable value over the shared PTEs 8-15, so the
    # parent's write to page 8 raised no fault and changed the child's page.
    with load_variant("bug-pte-restore").applied():
        obs = ModelBackend().run(scenario)
        with pytest.raises(InvariantError, match="validate_no_data_loss: p1 A page 8"):
            ModelBackend(check=True).run(scenario)
    assert _failed(obs) == [
        "expect A 8 mapcount 1",
        "p1: expect A 8 data old",
        "p1: expect A 8 mapcount 1",
        "expect memcg inactive_anon 1028",
    ]


def test_bug_oob_batch_faults_on_the_library_straddle_and_vma_cut_scenarios():
    import pytest

    from foliosim.model.errors import InvariantError

    for name, match in (
        ("memcg-lazyfree-straddle", "read past the page table"),
        ("memcg-lazyfree-vma-cut", "crosses the VMA's end"),
    ):
        scenario = parse_file(str(PRESSURE / f"{name}.scn"))
        assert _failed(_run("linux-6.18", scenario)) == [], name
        with pytest.raises(InvariantError, match=match):
            _run("bug-oob-batch", scenario)


def test_per_pte_discards_what_the_library_pt_boundary_scenario_keeps():
    scenario = parse_file(str(SCENARIOS / "mthp-pt-boundary.scn"))
    assert _failed(_run("linux-6.18", scenario)) == []
    assert _failed(_run("per-pte", scenario)) == [
        "expect A 8-23 present",
        "expect A 8-9,11-23 data old",
    ]


def test_pre_6_15_swapbacked_never_frees_the_released_lazyfree_pages():
    # lazyfree-gup-release: the pages kept for the pipe's reference are still
    # lazyfree in 6.18 and go at the next pageout; before faeb2831b517 they were
    # made swap-backed, and without swap they stay.
    scenario = parse_file(str(SCENARIOS / "lazyfree-gup-release.scn"))
    assert _failed(_run("linux-6.18", scenario)) == []
    assert _failed(_run("pre-6.15-swapbacked", scenario)) == [
        "expect A smaps LazyFree 8",
        "expect A all none",
        "expect A smaps Rss 0",
        "expect vmstat pglazyfreed 4",
        "expect A all data zero",
    ]
