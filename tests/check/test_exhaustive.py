"""foliosim equiv A B --exhaustive: the bounded space, its states, and what the checker reports."""

from __future__ import annotations

import contextlib
import itertools

import pytest

from foliosim.check.exhaustive import check, outcomes
from foliosim.check.exhaustive.build import build
from foliosim.check.exhaustive.engine import Side, load_side, run_one
from foliosim.check.exhaustive.explain import explain
from foliosim.check.exhaustive.space import (
    Bounds,
    blocks,
    configs_of_block,
    count_configs,
    enumerate_configs,
)
from foliosim.model import rmap
from foliosim.model.checks import validate_all
from foliosim.model.profile import get_profile
from foliosim.scenario.parser import parse_file

REVERT = "linux-6.18-revert-faeb2831b517"


@pytest.fixture
def cli(capsys):
    """Run `foliosim ARGS...`; returns (exit status, stdout, stderr)."""
    from foliosim.cli.main import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _ref_sets(max_refs: int) -> int:
    # Multisets of at most max_refs references of two kinds (get, pin).
    return sum(n + 1 for n in range(max_refs + 1))


def test_order_0_count_matches_a_count_made_by_hand():
    # One page, one process.  Per folio state, the PTE patterns (present dirty
    # or clean, or device-exclusive; a swap entry too when in the swap cache;
    # soft-dirty or not) times the rest: PG_dirty (2) x references x swap
    # device (off/free/full; free or full in the swap cache) x VM_LOCKED,
    # PG_mlocked and path (5 combinations with a mapping: unlocked x 2 paths,
    # locked x 2 paths, mlocked x pageout; 4 for a swap entry alone, which
    # cannot be mlocked).
    rest_mapped, rest_swap = 5, 4
    per_ref_set = 2 * (
        6 * rest_mapped * 3  # lazyfree
        + 6 * rest_mapped * 3  # swap-backed
        + (6 * rest_mapped + 2 * rest_swap) * 2  # in the swap cache
        + 6 * 2 * 3  # droppable: never locked, 2 paths
    )
    for max_refs in (0, 1, 2):
        b = Bounds(max_order=0, max_procs=1, max_refs=max_refs)
        assert count_configs(b) == per_ref_set * _ref_sets(max_refs)


def test_blocks_partition_the_space_without_duplicates():
    b = Bounds(max_order=2, max_procs=1, max_refs=1)
    everything = list(enumerate_configs(b))
    by_block = [c for blk in blocks(b) for c in configs_of_block(b, blk)]
    assert len(everything) == len(by_block) == len(set(everything))
    assert set(everything) == set(by_block)


def test_several_processes_only_up_to_the_shared_order():
    b = Bounds(max_order=3, max_procs=2, max_shared_order=2, max_refs=0)
    seen = {(c.order, c.nprocs) for c in enumerate_configs(b)}
    assert seen == {(0, 1), (0, 2), (2, 1), (2, 2), (3, 1)}


def _sample(b: Bounds, stride: int):
    return itertools.islice(enumerate_configs(b), 0, None, stride)


def test_every_built_state_keeps_the_model_invariants():
    profile = get_profile("linux-6.18")
    n = 0
    for c in itertools.chain(
        enumerate_configs(Bounds(max_order=0, max_procs=2, max_refs=1)),
        _sample(Bounds(max_order=3, max_procs=2, max_shared_order=2), 601),
    ):
        m, _ = build(c, profile)
        validate_all(m, None)  # raises InvariantError naming the object
        n += 1
    assert n > 2000


def test_reclaim_in_linux_6_18_keeps_the_invariants_on_the_built_states():
    side = load_side("linux-6.18")
    faults = [
        (c, o.fault)
        for c in _sample(Bounds(max_order=4, max_procs=2), 613)
        if (o := run_one(side, c, validate=True)).fault
    ]
    assert faults == []


def test_a_profile_agrees_with_itself_on_every_configuration():
    a = load_side("linux-6.18")
    b = Bounds(max_order=2, max_procs=1, max_refs=0)
    report = check(a, a, b)
    assert report.minimal is None and report.differing == 0
    assert report.checked == count_configs(b)


def test_reverting_faeb2831b517_is_found_at_order_0_with_a_gup_reference():
    a, b = load_side("linux-6.18"), load_side(REVERT)
    report = check(a, b, Bounds(max_order=2, max_procs=1))
    c = report.minimal
    assert c is not None and report.stopped_early
    # The fix's own story: a clean lazyfree page with an extra reference.
    assert (c.order, c.nprocs, c.state, c.dirty) == (0, 1, "lazyfree", False)
    assert c.refs == ("get",)
    x, y, folio = outcomes(a, b, c)
    lines = explain(c, folio, a.name, x, b.name, y)
    assert any("swapbacked" in ln and ln.startswith("folio flags") for ln in lines)


def _crashing_side(exc: type[BaseException]) -> Side:
    base = load_side("linux-6.18")

    def lazyfree_range(*args, **kwargs):
        raise exc("past the end of the page table")

    @contextlib.contextmanager
    def applied():
        saved = rmap.lazyfree_range
        rmap.lazyfree_range = lazyfree_range
        try:
            yield
        finally:
            rmap.lazyfree_range = saved

    return Side("crashes", base.profile, applied, "crashes")


def test_a_crashing_variant_is_a_difference_not_a_crash_of_the_checker():
    a, b = load_side("linux-6.18"), _crashing_side(IndexError)
    report = check(a, b, Bounds(max_order=2, max_procs=1, max_refs=0))
    c = report.minimal
    assert c is not None and c.state == "lazyfree"
    x, y, folio = outcomes(a, b, c)
    assert x.fault is None and y.fault.startswith("IndexError")
    assert explain(c, folio, a.name, x, b.name, y)[1].startswith("crashes faults: IndexError")
    assert rmap.lazyfree_range is not None and rmap.lazyfree_range.__name__ == "lazyfree_range"


def test_jobs_split_the_work_and_count_the_same():
    a = load_side("linux-6.18")
    b = Bounds(max_order=0, max_procs=2, max_refs=0)
    assert check(a, a, b, jobs=2).checked == check(a, a, b, jobs=1).checked == count_configs(b)


# --- the command line ------------------------------------------------------------------


def test_cli_finds_the_revert_and_writes_a_scenario_the_parser_accepts(cli, tmp_path):
    code, out, err = cli(
        "equiv", "linux-6.18", REVERT, "--exhaustive", "--max-order", "2", "--out", tmp_path
    )
    assert code == 1, out + err
    assert "NOT equivalent" in out and "configurations/s" in out
    (scn,) = tmp_path.glob("*.scn")
    text = scn.read_text()
    assert "# found by: foliosim equiv linux-6.18" in text
    kinds = [type(c).__name__ for c in parse_file(scn).commands]
    assert "Gup" in kinds and kinds.count("Madvise") >= 2


def test_cli_equivalent_variants_exit_0_with_their_count(cli, tmp_path):
    code, out, err = cli(
        "equiv",
        "linux-6.18",
        REVERT,
        "--exhaustive",
        "--max-order",
        "0",
        "--max-procs",
        "1",
        "--max-refs",
        "0",
        "--out",
        tmp_path,
    )
    # Without extra references the revert changes nothing at order 0.
    assert code == 0, out + err
    assert f"checked {count_configs(Bounds(max_order=0, max_procs=1, max_refs=0)):,} " in out


@pytest.mark.parametrize(
    "args, word",
    [
        (["--max-order", "1"], "--max-order 1"),
        (["--max-order", "12"], "--max-order 12"),
        (["--jobs", "0"], "--jobs 0"),
        (["--max-procs", "0"], "--max-procs 0"),
    ],
)
def test_cli_refuses_bad_bounds_in_one_line(cli, args, word):
    code, out, err = cli("equiv", "linux-6.18", REVERT, "--exhaustive", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and word in err


def test_cli_refuses_an_unknown_variant_in_one_line(cli):
    code, out, err = cli("equiv", "linux-6.18", "no-such-variant", "--exhaustive")
    assert code == 2 and out == "" and err.count("\n") == 1 and "no-such-variant" in err


# --- the built-in variants ---------------------------------------------------------------


def _kinds(variant: str, bounds: Bounds):
    a, b = load_side("linux-6.18"), load_side(variant)
    report = check(a, b, bounds)
    assert report.minimal is not None, f"{variant} agreed with linux-6.18"
    out = []
    for c in report.kinds.values():
        x, y, folio = outcomes(a, b, c)
        out.append((c, x, y, explain(c, folio, a.name, x, b.name, y)))
    return out


def test_per_pte_differs_where_one_redirtied_page_keeps_the_whole_lazyfree_folio():
    found = _kinds("per-pte", Bounds(max_order=2, max_procs=1, max_refs=0))
    notes = [(c, lines) for c, _x, _y, lines in found if "354dffd29575" in lines[0]]
    assert notes, [lines for *_, lines in found]
    c, lines = min(notes, key=lambda n: n[0].size())
    # Clean pages first, then a dirty one: 6.18 restores all, per-pte drops the first.
    assert c.order == 2 and c.state == "lazyfree" and c.cut == "pattern"
    assert any(ln.startswith("pages 0-1 of p0") and "none" in ln for ln in lines)


def test_bug_pte_restore_makes_cow_shared_ptes_writable():
    found = _kinds("bug-pte-restore", Bounds(max_order=2, max_procs=2, max_refs=0))
    writable = [ln for *_, lines in found for ln in lines if "writable although shared" in ln]
    assert writable, [lines for *_, lines in found]


@pytest.mark.parametrize("variant", ["bug-oob-batch", "bug-stale-nr-pages"])
def test_bug_variants_fault_in_the_model(variant):
    found = _kinds(variant, Bounds(max_order=2, max_procs=1, max_refs=0))
    c, x, y, _lines = min(found, key=lambda f: f[0].size())
    assert x.fault is None and y.fault is not None
    if variant == "bug-oob-batch":
        assert c.cut in ("pgtable", "vma")
    else:
        assert any(code & 0x20 for parts in c.ptes for code in parts)  # device-exclusive


@pytest.mark.parametrize("variant", ["seed-v1", "reviewed", "seed-v4", "batched-swap"])
def test_the_seed_and_its_rewrites_agree_with_linux_6_18_on_small_bounds(variant):
    a, b = load_side("linux-6.18"), load_side(variant)
    report = check(a, b, Bounds(max_order=2, max_procs=1, max_refs=0))
    assert report.minimal is None, report.kinds


def test_batched_swap_restores_a_pinned_swap_cache_batch_from_one_merged_pte():
    # Dev Jain's v4 (12/12) clears the whole batch with get_and_clear_ptes(),
    # whose one value ORs dirty and young over the batch; when sharing an
    # exclusive sub-batch fails (the folio may be pinned) the PTEs not yet
    # converted are written back from that value.  Linux 6.18 clears one PTE,
    # fails on it and restores it as it was, leaving the others untouched.
    found = _kinds("batched-swap", Bounds(max_order=2, max_procs=2, max_refs=1))
    for c, x, y, _lines in found:
        # Only there: a large swap-cache folio with a FOLL_PIN reference.
        assert c.order == 2 and c.state == "swapcache" and c.refs == ("pin",), c
        assert x.fault is None and y.fault is None
    c, _x, _y, lines = min(found, key=lambda f: f[0].size())
    assert c.nprocs == 1 and c.path == "pageout"
    spread = [
        ln
        for ln in lines
        if "linux-6.18 present (clean, old, writable), holding its data" in ln
        and "batched-swap present (dirty, young, writable), holding its data" in ln
    ]
    assert spread, lines
    # Only PTE bits (and PG_dirty) differ: every page holds its data on both sides.
    pages = [ln for ln in lines if ln.startswith("pages ")]
    assert pages and all(ln.count("holding its data") == 2 for ln in pages), lines


UNPINNED_BATCHED_SWAP = '''"""batched-swap, one PTE at a time (as 6.18) for a swap-backed folio that may be pinned."""
from foliosim.model.mm import folio_maybe_dma_pinned
from foliosim.model.page_flags import folio_test_swapbacked
from foliosim.variants import batched_swap as v4
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """v4's folio_unmap_pte_batch(), 1 for a maybe-pinned swap-backed folio."""
    if folio_test_swapbacked(m, folio) and folio_maybe_dma_pinned(m, folio):
        return 1
    return v4.folio_unmap_pte_batch(m, folio, vma, vpn, t, i)


@replace
def _unmap_swapbacked_ptes(m, vma, folio, page, t, i, pteval, nr_pages):
    """v4's swap-backed branch."""
    return v4._unmap_swapbacked_ptes(m, vma, folio, page, t, i, pteval, nr_pages)
'''


def test_batched_swap_differs_only_where_the_folio_may_be_pinned(tmp_path):
    # The same batching with the pinned case left to the per-PTE path agrees
    # with linux-6.18 everywhere, so the merged restore is the only difference.
    path = tmp_path / "unpinned.py"
    path.write_text(UNPINNED_BATCHED_SWAP)
    report = check(load_side("linux-6.18"), load_side(str(path)), Bounds(max_order=2, max_procs=1))
    assert report.minimal is None, report.kinds


def test_cli_reports_batched_swap_not_equivalent_with_its_scenario(cli, tmp_path):
    code, out, err = cli(
        "equiv", "linux-6.18", "batched-swap", "--exhaustive", "--max-order", "2",
        "--max-procs", "1", "--out", tmp_path,
    )  # fmt: skip
    assert code == 1, out + err
    # 8 PTE patterns mixing dirty and clean, each by MADV_PAGEOUT and from the LRU.
    assert "NOT equivalent: 16 configurations differ" in out, out
    assert "a GUP pin" in out and "batched-swap present (dirty, young, writable)" in out
    scn = tmp_path / "exhaustive-batched-swap.scn"
    text = scn.read_text()
    assert "# needs: a held FOLL_PIN reference" in text
    assert "# needs: the folio kept in the swap cache by an earlier reclaim" in text
    assert [type(c).__name__ for c in parse_file(scn).commands].count("Madvise") == 1


def test_written_lru_scenarios_hold_their_expectations_on_the_model():
    # The .scn of an LRU configuration of one process, lazyfree, without swap, is
    # built with a memcg limit (and mremap for a folio straddling a page table),
    # no `# needs:` line: the model running those lines meets the expect lines
    # that the configuration's one reclaim predicted.
    from foliosim.check.exhaustive.explain import page_views, scenario
    from foliosim.model.backend import ModelBackend
    from foliosim.scenario.parser import parse_text

    a = load_side("linux-6.18")
    built = 0
    for c in enumerate_configs(Bounds(max_order=2, max_procs=1, max_refs=0)):
        if c.path != "lru" or c.swap != "off" or c.state != "lazyfree" or any(c.locked):
            continue
        x = run_one(a, c, keep=True)
        text = scenario(c, page_views(x.machine, c), "linux-6.18", "foliosim equiv a b")
        if c.droppable:
            assert "# needs: one pass of LRU reclaim" in text
            continue
        assert "LRU reclaim (" not in text and "memcg limit" in text, text
        if c.cut == "pgtable":
            assert "mremap A" in text and "needs: mremap" not in text
        if "# needs:" in text:  # soft-dirty: the model's faults never set it
            continue
        obs = ModelBackend(check=True).run(parse_text(text, "x.scn"))
        failed = [e["text"] for e in obs["events"] if e.get("op") == "expect" and not e["ok"]]
        assert failed == [], text
        built += 1
    assert built >= 40
