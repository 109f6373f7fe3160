"""--variant on the commands that run the model: accepted, reported, refused in one line."""

from __future__ import annotations

from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

BAD_SIGNATURE = """\
from foliosim.variants import replace
BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio):
    return True
"""


def test_run_with_a_variant_reports_it_and_fails_what_it_changes(cli):
    code, out, err = cli("run", "--variant", "per-pte", SCENARIOS / "mthp-lazyfree-redirty.scn")
    assert code == 1, err
    assert "model (variant per-pte on linux-6.18)" in out
    assert "FAIL line 18  expect A all present" in out


def test_run_with_a_profile_as_variant_is_the_profile(cli):
    code, out, err = cli("run", "--variant", "linux-6.18", SCENARIOS / "mthp-lazyfree-redirty.scn")
    assert code == 0, out + err


def test_run_refuses_a_bad_variant_file_in_one_line(cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_SIGNATURE)
    code, out, err = cli("run", "--variant", bad, SCENARIOS / "lazyfree-redirty.scn")
    assert code == 2 and out == ""
    assert err.startswith(f"{bad}:5: @replace lazyfree_range(m, vma, folio): the model's is ")
    assert err.count("\n") == 1


def test_run_refuses_an_unknown_variant_in_one_line(cli):
    code, _, err = cli("run", "--variant", "seed-v9", SCENARIOS / "lazyfree-redirty.scn")
    assert code == 2 and err.count("\n") == 1
    assert "seed-v9" in err and "per-pte" in err


def test_run_refuses_profile_and_variant_together(cli):
    code, _, err = cli(
        "run", "--profile", "linux-9", "--variant", "per-pte", SCENARIOS / "lazyfree-redirty.scn"
    )
    assert code == 2 and err.count("\n") == 1 and "give one" in err


def test_equiv_takes_a_variant_on_either_side(cli, tmp_path):
    code, out, err = cli(
        "equiv", "seed-v1", "reviewed", "--seed", "3", "--count", "40", "--out", tmp_path
    )
    assert code == 0, out + err
    assert "model seed-v1 vs model reviewed" in out


def test_fuzz_model_alone_runs_a_variant(cli, tmp_path):
    code, out, err = cli(
        "fuzz",
        "--backends",
        "model",
        "--variant",
        "reviewed",
        "--seed",
        "2",
        "--count",
        "20",
        "--out",
        tmp_path,
    )
    assert code == 0, out + err
    assert "model (reviewed, checked)" in out


def test_explain_lists_a_variants_own_functions(cli):
    code, out, err = cli("explain", "--variant", "seed-v1", SCENARIOS / "lazyfree-redirty.scn")
    assert code == 0, err
    assert "variant seed-v1 on linux-6.18" in out
    assert "commit_ttu_lazyfree_folio" in out  # defined in the variant file
