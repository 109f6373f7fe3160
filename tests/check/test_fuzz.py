"""The differential fuzzer: deterministic campaigns, shrunk and saved findings, explained ones."""

from __future__ import annotations

import json

import pytest

from foliosim.check.diff import Difference
from foliosim.check.fuzz import Campaign
from foliosim.check.known import KNOWN_DIFFERENCES, KnownDifference, explain_difference
from foliosim.kernel.backend import KernelBackend
from foliosim.model.backend import ModelBackend
from foliosim.model.errors import InvariantError
from foliosim.scenario import ast
from foliosim.scenario.parser import parse_file, parse_text


class FakeBackend:
    """An observation of one event per line; `cold_bug` fails every `madvise ... cold`."""

    def __init__(self, cold_bug: bool = False, crash_on_poke: bool = False) -> None:
        self.cold_bug = cold_bug
        self.crash_on_poke = crash_on_poke
        self.runs = 0

    def run(self, scenario, trace=None):
        self.runs += 1
        events = []
        for c in scenario.commands:
            if self.crash_on_poke and isinstance(c, ast.Poke):
                raise RuntimeError(f"line {c.line}: poke is not done yet")
            ev = {"line": c.line, "proc": c.proc, "op": type(c).__name__.lower()}
            if self.cold_bug and isinstance(c, ast.Madvise) and c.advice == "cold":
                ev["error"] = "EINVAL"
            events.append(ev)
        return {"format": "fake", "events": events, "final": {"vmstat": {}}}


def _cold_campaign(tmp_path, **kw):
    backends = [("model", FakeBackend()), ("kernel", FakeBackend(cold_bug=True))]
    return Campaign(
        backends,
        seed=kw.pop("seed", 5),
        count=kw.pop("count", 150),
        out_dir=tmp_path,
        found_by="foliosim fuzz --seed 5 (test)",
        **kw,
    )


def _commands(path):
    return [c for c in parse_file(path).commands]


def test_shrinker_reduces_a_difference_to_the_line_that_causes_it(tmp_path):
    stats = _cold_campaign(tmp_path).run()
    assert stats.differs > 0 and len(stats.findings) == 1
    f = stats.findings[0]
    assert f.path == tmp_path / "000.scn" and f.reproduced
    cmds = _commands(f.path)
    colds = [c for c in cmds if isinstance(c, ast.Madvise) and c.advice == "cold"]
    assert len(colds) == 1
    # All that is left is the mapping the advice needs and the advice itself.
    assert len(cmds) == 2 and isinstance(cmds[0], ast.Mmap)
    assert f.commands_before >= 10  # seed 5: the first scenario to differ is long (25)
    text = f.path.read_text()
    assert text.startswith("# found by: foliosim fuzz --seed 5 (test)\n")
    cold_line = colds[0].line
    assert f"#   line {cold_line} madvise, p0 error: missing on model, kernel said EINVAL" in text
    kernel = json.loads((tmp_path / "000.kernel.json").read_text())
    model = json.loads((tmp_path / "000.model.json").read_text())
    assert [e.get("error") for e in kernel["events"] if e["line"] == cold_line] == ["EINVAL"]
    assert all("error" not in e for e in model["events"])


def test_later_scenarios_with_the_same_difference_are_counted_not_saved_again(tmp_path):
    stats = _cold_campaign(tmp_path, count=300).run()
    assert len(stats.findings) == 1
    assert stats.findings[0].repeats == stats.differs - 1 > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000.kernel.json",
        "000.model.json",
        "000.scn",
    ]


def test_findings_already_in_the_directory_are_kept(tmp_path):
    (tmp_path / "000.scn").write_text("# an older finding\n")
    stats = _cold_campaign(tmp_path).run()
    assert stats.findings[0].path == tmp_path / "001.scn"
    assert (tmp_path / "000.scn").read_text() == "# an older finding\n"


def test_a_known_difference_is_counted_as_explained_with_its_reason(tmp_path):
    def cold_einval(d: Difference, scenario: ast.Scenario) -> bool:
        return d.op == "madvise" and d.field == "error" and d.b == "EINVAL"

    known = [KnownDifference("cold-einval", "the fake kernel refuses MADV_COLD", cold_einval)]
    stats = _cold_campaign(tmp_path, known=known).run()
    assert stats.differs == 0 and stats.findings == []
    assert stats.explained > 0
    assert stats.explained_reasons["cold-einval"] >= stats.explained
    assert stats.commands["madvise"] > 0 and stats.advices["cold"] > 0
    assert not list(tmp_path.iterdir())


def test_an_exception_in_a_lone_backend_is_a_finding_shrunk_to_its_line(tmp_path):
    backend = FakeBackend(crash_on_poke=True)
    stats = Campaign(
        [("model", backend)], seed=5, count=150, out_dir=tmp_path, found_by="test"
    ).run()
    assert stats.crashes > 0 and len(stats.findings) == 1
    f = stats.findings[0]
    cmds = _commands(f.path)
    assert [type(c).__name__ for c in cmds] == ["Mmap", "Poke"]
    assert "#   model raised RuntimeError: line" in f.path.read_text()
    assert not (tmp_path / "000.model.json").exists()  # there is no observation to save


def _fingerprint(stats):
    return (
        stats.generated,
        stats.digest,
        stats.same,
        stats.differs,
        stats.crashes,
        dict(stats.commands),
        dict(stats.advices),
        dict(stats.failed),
        [(f.path.name, f.commands_before, f.commands_after, f.shrink_runs) for f in stats.findings],
    )


def test_a_campaign_with_findings_is_deterministic_for_its_seed(tmp_path):
    a = _cold_campaign(tmp_path / "a", count=200).run()
    b = _cold_campaign(tmp_path / "b", count=200).run()
    c = _cold_campaign(tmp_path / "c", count=200, seed=7).run()
    assert a.generated == 200
    assert _fingerprint(a) == _fingerprint(b)
    assert a.digest != c.digest
    assert (tmp_path / "a/000.scn").read_text() == (tmp_path / "b/000.scn").read_text()


def test_a_time_limited_campaign_stops_on_time():
    ticks = iter(range(10**6))
    backends = [("model", FakeBackend()), ("kernel", FakeBackend())]
    # A fake clock: one second per call, so the limit is reached after a few scenarios.
    stats = Campaign(
        backends,
        seed=1,
        count=None,
        time_limit=20,
        out_dir="unused",
        clock=lambda: float(next(ticks)),
    ).run()
    assert 0 < stats.generated < 20 and stats.differs == 0


# -- with the real backends ------------------------------------------------------------


def _model(check, profile="linux-6.18"):
    return ModelBackend(profile=profile, check=check)


def _model_of_running_kernel(check=False):
    # Compared with the live kernel, the model follows the profile of its build.
    from foliosim.model.profile import NoProfileError, profile_for_kernel

    try:
        return _model(check, profile=profile_for_kernel().name)
    except NoProfileError as e:
        pytest.skip(str(e))


class _ModelThatAlwaysRaises(ModelBackend):
    """The real model with a deliberately broken invariant: every run raises."""

    def run(self, scenario, trace=None, final=True):
        super().run(scenario, trace, final)
        raise InvariantError("validate_everything: deliberately broken for this test")


def _model_only_campaign(model, out_dir, count=40):
    return Campaign([("model", model)], seed=2024, count=count, out_dir=out_dir, found_by="test")


def test_a_model_only_campaign_finds_no_crash_and_is_deterministic_for_its_seed(tmp_path):
    runs = [_model_only_campaign(_model(check=True), tmp_path / str(i)).run() for i in range(2)]
    assert runs[0].generated == 40
    # Every scenario ran to its end on the checked model: no exception, no finding.
    assert runs[0].same == 40
    assert (runs[0].crashes, runs[0].invalid, runs[0].findings) == (0, 0, [])
    assert not (tmp_path / "0").exists()
    assert _fingerprint(runs[0]) == _fingerprint(runs[1])


def test_a_model_that_always_raises_is_counted_as_crashing_on_every_scenario(tmp_path):
    stats = _model_only_campaign(_ModelThatAlwaysRaises(check=True), tmp_path).run()
    assert stats.generated == 40 and stats.same == 0
    assert stats.crashes == 40
    # One finding, shrunk to a single line; the other 39 scenarios repeat it.
    (f,) = stats.findings
    assert f.commands_after == 1 and f.repeats == 39
    assert "#   model raised InvariantError: validate_everything:" in f.path.read_text()


@pytest.mark.kernel
def test_a_small_campaign_on_model_and_kernel_runs_and_accounts_for_every_scenario(tmp_path):
    stats = Campaign(
        [("model", _model_of_running_kernel()), ("kernel", KernelBackend())],
        seed=1,
        count=8,
        out_dir=tmp_path,
        found_by="test",
        shrink_budget=30,
        known=KNOWN_DIFFERENCES,
    ).run()
    assert stats.generated == 8
    assert stats.same + stats.explained + stats.differs + stats.crashes + stats.invalid == 8
    assert stats.invalid == 0
    for f in stats.findings:
        assert f.path.exists() and _commands(f.path)


# -- the command line ------------------------------------------------------------------


def _fuzz(argv, monkeypatch, model=None):
    import foliosim.cli.fuzz as cli_fuzz
    from foliosim.cli.main import main

    if model is not None:
        monkeypatch.setattr(
            cli_fuzz, "model_backend", lambda profile, check=False, variant=None: model
        )
    return main(["fuzz", *argv])


def test_cli_model_only_campaign_reports_seed_coverage_and_rate(tmp_path, monkeypatch, capsys):
    rc = _fuzz(
        ["--backends", "model", "--count", "40", "--seed", "9", "--out", str(tmp_path)],
        monkeypatch,
        model=FakeBackend(),
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("foliosim fuzz: seed 9, model (linux-6.18, checked), 40 scenarios")
    assert "ran 40 scenarios" in out and "findings: none" in out
    assert "madvise pageout" in out and "scenarios per second:" in out
    assert not list(tmp_path.iterdir())


def test_cli_exits_1_and_names_the_saved_finding(tmp_path, monkeypatch, capsys):
    rc = _fuzz(
        ["--backends", "model", "--count", "60", "--seed", "4", "--out", str(tmp_path)],
        monkeypatch,
        model=FakeBackend(crash_on_poke=True),
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert f"{tmp_path}/000.scn: " in out and "model raised RuntimeError" in out
    head = (tmp_path / "000.scn").read_text().splitlines()[0]
    assert head == "# found by: foliosim fuzz --seed 4 --count 60 --backends model"


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--count", "0"], "--count 0: must be at least 1"),
        (["--count", "5", "--time", "3"], "not allowed with argument"),
        (["--backends", "kernel"], "--backends kernel: expected one of"),
        (["--time", "-1"], "--time -1: must be more than 0"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(argv, says, monkeypatch, capsys):
    rc = _fuzz(argv, monkeypatch, model=FakeBackend())
    err = capsys.readouterr().err
    assert rc == 2
    assert says in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_without_the_kernel_backend_unless_model_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        KernelBackend,
        "unavailable_reason",
        staticmethod(lambda: "needs root; running as uid 1000"),
    )
    rc = _fuzz(["--count", "3", "--out", str(tmp_path)], monkeypatch, model=FakeBackend())
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "needs root" in err[0] and "--backends model" in err[0]
    rc = _fuzz(
        ["--count", "3", "--backends", "model", "--out", str(tmp_path)],
        monkeypatch,
        model=FakeBackend(),
    )
    assert rc == 0


@pytest.mark.kernel
def test_a_fixed_seed_campaign_finds_no_unexplained_difference_between_model_and_kernel(
    tmp_path,
):
    # The CI campaign: 60 scenarios of seed 13 (all 600 of that seed agreed on
    # 2026-11-25). Any finding is saved under tmp_path and named in the failure.
    stats = Campaign(
        [("model", _model_of_running_kernel(check=True)), ("kernel", KernelBackend())],
        seed=13,
        count=60,
        out_dir=tmp_path,
        found_by="foliosim fuzz --seed 13 --count 60 (CI)",
        shrink_budget=60,
        known=KNOWN_DIFFERENCES,
    ).run()
    assert stats.generated == 60
    assert stats.crashes == 0 and stats.invalid == 0
    # A model bug differs again when its saved scenario is replayed; a difference
    # that does not reproduce came from the shared machine (its counters are
    # machine-wide) and is printed, not failed on.
    real = [f for f in stats.findings if f.reproduced]
    noise = [f for f in stats.findings if not f.reproduced]
    if noise:
        print(
            "differences that did not reproduce:\n" + "\n".join(f.path.read_text() for f in noise)
        )
    found = "\n".join(f.path.read_text() for f in real)
    assert not real, f"model and kernel differ:\n{found}"


def _diff_on(field):
    return Difference(
        line=None, op=None, proc=None, mapping=None, pages=None, field=field, a=0, b=-4
    )


def test_mthp_counters_of_a_size_enabled_for_every_process_are_explained_not_hidden():
    wide = parse_text("mthp 16K always\nmmap A 8\nwrite A all\n", "w.scn")
    advised = parse_text("mthp 16K madvise\nmmap A 8\nmadvise A all hugepage\n", "a.scn")
    inherit = parse_text("thp always\nmmap A 8\n", "i.scn")
    known = explain_difference(_diff_on("mthp 16K nr_anon"), wide, KNOWN_DIFFERENCES)
    assert known is not None and "machine-wide" in known.reason
    # 64K stays `never` here: only other processes' older 64K folios can move its stats.
    other = explain_difference(_diff_on("mthp 64K nr_anon"), wide, KNOWN_DIFFERENCES)
    assert other is not None and other.name == "other processes' folios of a size left never"
    assert explain_difference(_diff_on("mthp 16K nr_anon"), advised, KNOWN_DIFFERENCES) is None
    assert (
        explain_difference(_diff_on("vmstat thp_fault_alloc"), inherit, KNOWN_DIFFERENCES)
        is not None
    )
    assert explain_difference(_diff_on("vmstat pglazyfree"), inherit, KNOWN_DIFFERENCES) is None


def test_an_mthp_stat_of_a_size_left_never_is_explained_and_of_an_enabled_one_is_not():
    # Only other processes' older folios of a `never` size can move its stats (freed:
    # nr_anon below 0); once the scenario enables the size, its own folios count too.
    left_never = parse_text("mmap A 64K\nwrite A all\n", "n.scn")
    madvised = parse_text(
        "mthp 64K madvise\nmmap A 64K\nmadvise A all hugepage\nwrite A all\n", "e.scn"
    )
    d = Difference(None, None, None, None, None, "mthp 64K nr_anon", 0, -5)
    known = explain_difference(d, left_never, KNOWN_DIFFERENCES)
    assert known is not None and known.name == "other processes' folios of a size left never"
    assert explain_difference(d, madvised, KNOWN_DIFFERENCES) is None


FOREIGN_MADVISED = "other processes' folios of a size only madvised mappings get"


def test_stats_of_a_size_only_madvised_mappings_get_are_explained_without_madv_hugepage():
    # 2M starts at `inherit` under `thp madvise` (the contract): only VM_HUGEPAGE VMAs
    # get it, so a scenario without MADV_HUGEPAGE (or MADV_COLLAPSE) makes no 2M folio,
    # while other processes' madvised regions do.
    plain = parse_text("mmap A 64K\nwrite A all\n", "n.scn")
    madvise_mode = parse_text("mthp 64K madvise\nmmap A 64K\nwrite A all\n", "m.scn")
    advised = parse_text("mmap A 4M\nmadvise A all hugepage\nwrite A all\n", "a.scn")
    always = parse_text("thp always\nmmap A 4M\nwrite A all\n", "t.scn")
    for field in ("mthp 2M nr_anon", "vmstat thp_fault_alloc"):
        d = Difference(None, None, None, None, None, field, 0, 2)
        known = explain_difference(d, plain, KNOWN_DIFFERENCES)
        assert known is not None and known.name == FOREIGN_MADVISED
        assert explain_difference(d, advised, KNOWN_DIFFERENCES) is None
        known = explain_difference(d, always, KNOWN_DIFFERENCES)
        assert known is not None and known.name == "machine-wide mTHP counters"
    d64 = Difference(None, None, None, None, None, "mthp 64K anon_fault_alloc", 0, 3)
    known = explain_difference(d64, madvise_mode, KNOWN_DIFFERENCES)
    assert known is not None and known.name == FOREIGN_MADVISED
    advised64 = parse_text("mthp 64K madvise\nmmap A 64K\nmadvise A all hugepage\n", "b.scn")
    assert explain_difference(d64, advised64, KNOWN_DIFFERENCES) is None
    # Not a THP counter: never explained.
    d_lazy = Difference(None, None, None, None, None, "vmstat pglazyfree", 0, 3)
    assert explain_difference(d_lazy, plain, KNOWN_DIFFERENCES) is None
