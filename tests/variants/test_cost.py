"""Cost counting: the counts come from the model's primitives and differ where the
variants' code differs, and counting never changes what the model does."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import HealthCheck, given, settings

from foliosim.check.diff import diff_observations
from foliosim.check.gen import scenarios
from foliosim.cli.cost import count_scenario
from foliosim.model import cost
from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_text
from foliosim.variants import load_variant

# Four 64K lazyfree folios, clean: all discarded in one try_to_unmap() each.
LAZYFREE_64K = """\
thp never
mthp 64K always
mmap A 256K
write A all as old
madvise A all free
madvise A all pageout
expect vmstat pglazyfreed 64
"""

# Four 64K swap-backed folios swapped out.
SWAPOUT_64K = """\
swap 4M
mthp 64K always
mmap A 256K
write A all as old
madvise A all pageout
expect vmstat pswpout 64
"""


def _per_folio(name: str, text: str) -> dict[str, float]:
    counted = count_scenario(parse_text(text, "x.scn"), name)
    assert counted.failed == [] and counted.calls == 4, (name, counted)
    return {k: v / 4 for k, v in counted.counts.items()}


def test_batched_lazyfree_unmap_costs_less_than_per_pte():
    batched, per_pte = _per_folio("linux-6.18", LAZYFREE_64K), _per_folio("per-pte", LAZYFREE_64K)
    # Linux 6.18: one walk step, one ptep_get of the first PTE, 15 more in
    # folio_pte_batch(); one clear of 16, one flush of 16 pages, one reference
    # drop, 16 page mapcounts plus the folio's two counters.
    assert batched == {
        "rmap_vma": 1,
        "pvmw_step": 1,
        "ptep_get": 17,
        "pte_clear": 16,
        "tlb_flush": 1,
        "tlb_flush_pages": 16,
        "mapcount_atomic": 18,
        "refcount_atomic": 1,
    }
    # Per PTE: 16 walk steps, each reading the PTE twice (check_pte and
    # try_to_unmap_one), 16 flushes of one page, 16 rmap removals and puts.
    assert per_pte == {
        "rmap_vma": 1,
        "pvmw_step": 16,
        "ptep_get": 32,
        "pte_clear": 16,
        "tlb_flush": 16,
        "tlb_flush_pages": 16,
        "mapcount_atomic": 48,
        "refcount_atomic": 16,
    }


def test_batched_swap_saves_flushes_atomics_and_swap_calls_not_slots():
    linux, batched = _per_folio("linux-6.18", SWAPOUT_64K), _per_folio("batched-swap", SWAPOUT_64K)
    assert linux["tlb_flush"] == 16 and batched["tlb_flush"] == 1
    assert linux["swap_op"] == 16 and batched["swap_op"] == 1
    assert linux["swap_slot"] == batched["swap_slot"] == 16
    assert linux["anon_share"] == 16 and batched["anon_share"] == 1
    assert linux["pte_write"] == batched["pte_write"] == 16
    assert linux["pte_clear"] == batched["pte_clear"] == 16


def test_a_variant_replacing_try_to_unmap_is_counted_inside_its_own(tmp_path):
    path = tmp_path / "noop.py"
    path.write_text(
        "from foliosim.variants import replace\nBASE = 'linux-6.18'\n\n"
        "@replace\ndef try_to_unmap(m, folio, flags):\n    return None\n"
    )
    counted = count_scenario(parse_text(LAZYFREE_64K, "x.scn"), str(path))
    assert counted.calls == 4 and sum(counted.counts.values()) == 0
    assert counted.failed == [7]  # nothing unmapped: nothing freed


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(mthp=True))
def test_counting_and_variants_never_change_the_observation(scenario):
    # Counting and an applied variant switch the model's shortcuts off: the
    # loop they stand for must give the same result.
    plain = ModelBackend(check=True).run(scenario)
    with cost.counting(Counter()):
        counted = ModelBackend(check=True).run(scenario)
    assert diff_observations(plain, counted, scenario) == []
    with load_variant("batched-swap").applied():
        batched = ModelBackend(check=True).run(scenario)
    assert diff_observations(plain, batched, scenario) == []


def test_cost_cli_prints_side_by_side_and_json(tmp_path, capsys):
    from foliosim.cli.main import main

    scn = tmp_path / "lf.scn"
    scn.write_text(LAZYFREE_64K)
    assert main(["cost", str(scn), "--variant", "per-pte", "--variant", "linux-6.18"]) == 0
    out = capsys.readouterr().out
    assert "linux-6.18 / per-pte" in out and "TLB flush requests" in out
    argv = ["cost", str(scn), "--variant", "per-pte", "--variant", "linux-6.18"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    per_pte, linux = data["variants"]
    assert per_pte["counts"]["tlb_flush"] == 64 and linux["counts"]["tlb_flush"] == 4
    assert linux["vmstat"]["pglazyfreed"] == 64


def test_cost_cli_refuses_a_bad_variant_in_one_line(tmp_path, capsys):
    from foliosim.cli.main import main

    scn = tmp_path / "lf.scn"
    scn.write_text(LAZYFREE_64K)
    bad = tmp_path / "bad.py"
    bad.write_text("BASE = 'linux-6.18'\nimport no_such_module\n")
    assert main(["cost", str(scn), "--variant", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:2: fails to import: ModuleNotFoundError") and err.count("\n") == 1
