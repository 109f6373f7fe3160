"""`foliosim race` end to end: exit status, JSON, --litmus, --graph, --table, bad arguments."""

from __future__ import annotations

import json
import shutil

import pytest

from foliosim.cli.main import main


def test_sc_alone_runs_without_herd7_and_is_safe(capsys):
    assert main(["race", "--model", "sc"]) == 0
    out = capsys.readouterr().out
    assert "sc       safe" in out and "interleavings" in out


@pytest.mark.parametrize(
    "argv,reason",
    [
        (["race", "--without", "smp_wmb"], "invalid choice: 'smp_wmb'"),
        (["race", "--model", "power"], "invalid choice: 'power'"),
        (["race", "--model", "lkmm", "--graph", "out.svg"], "must end in .png"),
        (["race", "--table", "--without", "smp_mb"], "--table runs its own configurations"),
        (
            ["race", "--model", "sc", "--profile", "linux-2.4"],
            "--profile linux-2.4: unknown profile",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, reason):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and len(err.splitlines()) == 1


@pytest.mark.herd7
def test_without_smp_mb_exits_1_and_tells_the_witness(herd7, capsys):
    assert main(["race", "--model", "lkmm", "--without", "smp_mb"]) == 1
    out = capsys.readouterr().out
    assert "lkmm     unsafe" in out and "witness: lazyfree-gup-fast under lkmm" in out
    assert (
        "1. CPU 0 (reclaim): get_and_clear_ptes() exchanges the PTE: 1 (present) -> 0 (none)" in out
    )


@pytest.mark.herd7
def test_json_and_litmus_dir(herd7, capsys, tmp_path):
    assert (
        main(
            [
                "race",
                "--model",
                "x86-tso",
                "--model",
                "armv8",
                "--without",
                "smp_rmb",
                "--json",
                "--litmus",
                str(tmp_path),
            ]
        )
        == 1
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdicts"] == {"x86-tso": "safe", "armv8": "unsafe"}
    assert doc["without"] == ["smp_rmb"] and doc["reclaim_paths"] == 3
    assert all(t["executions"] > 0 for t in doc["tests"])
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.litmus"))
    assert files == [
        "armv8/lazyfree-gup-fast+without-smp_rmb.litmus",
        "armv8/lazyfree-gup-put+without-smp_rmb.litmus",
        "x86-tso/lazyfree-gup-fast+without-smp_rmb.litmus",
        "x86-tso/lazyfree-gup-put+without-smp_rmb.litmus",
    ]
    put = (tmp_path / "armv8/lazyfree-gup-put+without-smp_rmb.litmus").read_text()
    assert "Expected verdict under armv8: unsafe" in put and put.startswith("AArch64 ")


@pytest.mark.herd7
def test_both_barriers_are_safe_everywhere(herd7, capsys):
    assert main(["race"]) == 0
    out = capsys.readouterr().out
    for model in ("sc", "lkmm", "x86-tso", "armv8"):
        assert f"{model:<8} safe" in out


@pytest.mark.herd7
def test_graph_renders_herd7s_execution(herd7, tmp_path, capsys):
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (apt-get install graphviz)")
    png = tmp_path / "witness.png"
    assert main(["race", "--model", "armv8", "--without", "smp_mb", "--graph", str(png)]) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.herd7
def test_table_prints_the_readme_table(herd7, capsys):
    assert main(["race", "--table"]) == 0
    out = capsys.readouterr().out
    assert "| both barriers (linux-6.18) | safe | safe | safe | safe |" in out
    assert "| `--without smp_mb` | safe | unsafe | safe | unsafe |" in out
    assert "| `--without smp_rmb` | safe | unsafe | safe | unsafe |" in out
