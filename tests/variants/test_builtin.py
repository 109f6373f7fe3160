"""Each built-in variant changes exactly what it claims, on scenarios whose
linux-6.18 outcome the library has seen on the live kernel."""

from __future__ import annotations

from pathlib import Path

from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_file, parse_text
from foliosim.variants import load_variant

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


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
    for name in ("mthp-lazyfree-redirty", "lazyfree-gup-release", "lazyfree-redirty",
                 "droppable-free-redirty", "mthp-pt-boundary"):
        scenario = parse_file(str(SCENARIOS / f"{name}.scn"))
        for variant in ("seed-v1", "reviewed"):
            assert _failed(_run(variant, scenario)) == [], (variant, name)
