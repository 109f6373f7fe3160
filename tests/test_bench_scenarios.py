"""bench/run.py --write-scenarios writes the benchmark rows' workloads, which foliosim reads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from foliosim.scenario.parser import parse_file

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_write_scenarios_writes_each_rows_workload(tmp_path, capsys):
    bench = _bench()
    assert bench.main(["--write-scenarios", str(tmp_path), "--rows", "64K lazyfree 256M,64K swap-out 256M"]) == 0
    rows = {r.name: r for r in bench.ROWS}
    for name, file in (
        ("64K lazyfree 256M", "64K-lazyfree-256M.scn"),
        ("64K swap-out 256M", "64K-swap-out-256M.scn"),
    ):
        path = tmp_path / file
        assert path.read_text() == rows[name].scenario_text()
        parse_file(str(path))
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "64K-lazyfree-256M.scn"),
        str(tmp_path / "64K-swap-out-256M.scn"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["64K-lazyfree-256M.scn", "64K-swap-out-256M.scn"]


def test_write_scenarios_refuses_an_unwritable_directory_in_one_line(tmp_path, capsys):
    bench = _bench()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert bench.main(["--write-scenarios", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: --write-scenarios: ") and err.count("\n") == 1
