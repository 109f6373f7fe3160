"""export-c refuses memcg lines (issue 13: not exported yet) at their line, exit 2."""

from __future__ import annotations

from foliosim.cli.main import main


def test_a_memcg_line_is_refused_with_its_position(tmp_path, capsys):
    scn = tmp_path / "m.scn"
    scn.write_text("mmap A 1\nwrite A 0\nmemcg limit max\n")
    assert main(["export-c", str(scn), "-o", str(tmp_path / "m.c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"{scn}:3:1: export-c: memory cgroup commands are not exported to C yet (issue 13)"
    )
