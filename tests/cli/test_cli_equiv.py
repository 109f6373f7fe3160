"""foliosim equiv: two model profiles on the same random scenarios."""

from __future__ import annotations

from foliosim.scenario import ast
from foliosim.scenario.parser import parse_file


def test_equiv_finds_what_reverting_faeb2831b517_changes(cli, tmp_path):
    code, out, err = cli(
        "equiv",
        "linux-6.18",
        "linux-6.18-revert-faeb2831b517",
        "--seed",
        "1",
        "--count",
        "300",
        "--out",
        tmp_path,
    )
    assert code == 1, out + err
    assert "NOT equivalent" in out
    found = parse_file(tmp_path / "000.scn").commands
    # The shrunk scenario is the fix's own story: a lazyfree page held by a GUP
    # reference meets reclaim, and only the old kernel makes it swapbacked.
    kinds = [type(c) for c in found]
    assert ast.Gup in kinds and ast.Madvise in kinds
    assert {c.advice for c in found if isinstance(c, ast.Madvise)} >= {"free", "pageout"}
    assert "swapbacked" in (tmp_path / "000.scn").read_text().splitlines()[3]
    assert (tmp_path / "000.linux-6.18.json").exists()


def test_equiv_of_a_profile_with_itself_is_refused(cli):
    code, out, err = cli("equiv", "linux-6.18", "linux-6.18")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "the same" in err


def test_equiv_refuses_an_unknown_profile_in_one_line(cli):
    code, _, err = cli("equiv", "linux-6.18", "linux-9.99")
    assert code == 2 and err.count("\n") == 1 and "linux-9.99" in err
