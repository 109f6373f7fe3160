"""`foliosim race --variant V`: reclaim recorded from a variant's own code, whatever it imports.

The built-in variants bind the model's functions directly (`from
foliosim.model.rmap import set_ptes`); the recorder must still see every
access and barrier they make.  Fixture variant files in tests/race/variants/
drop smp_mb(), drop smp_rmb(), or read the refcount before the PTE clear.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from foliosim.cli.main import main
from foliosim.model import rmap
from foliosim.race.check import EXPECTED, check
from foliosim.race.ir import Fence, If, Let, Read, Write, eval_expr
from foliosim.race.record import RecordError, record_reclaim
from foliosim.race.runner import MODELS, run_herd
from foliosim.variants import load_variant

HERE = Path(__file__).parent / "variants"
NO_MB = str(HERE / "lazyfree_no_mb.py")
NO_RMB = str(HERE / "lazyfree_no_rmb.py")
EARLY = str(HERE / "refcount_before_clear.py")
DIRECT = str(HERE / "direct_refcount.py")
SEEDS = ("seed-v1", "reviewed", "seed-v4")


def _straight(body):
    # The accesses before the decision's first branch.
    out = []
    for s in body:
        if isinstance(s, If):
            break
        out.append(s)
    return [(type(s).__name__, getattr(s, "loc", getattr(s, "kind", None))) for s in out]


@pytest.mark.parametrize("name", SEEDS)
def test_a_seed_variant_records_the_same_reclaim_thread_as_linux_6_18(name):
    linux, _, linux_paths = record_reclaim()
    thread, _, paths = record_reclaim(variant=load_variant(name))
    assert _straight(thread.body) == [
        ("Xchg", "pte"),
        ("Fence", "mb"),
        ("Read", "refcount"),
        ("Read", "mapcount"),
        ("Fence", "rmb"),
        ("Read", "pg_dirty"),
    ]
    assert paths == linux_paths == 3 and name in thread.role
    # The same decision on every value the reads can see (seed-v4 tests the
    # refcount the other way round, so its tree is mirrored, not equal).
    for values in itertools.product([0, 1], [1, 2, 3], [0, 1]):
        regs = dict(zip(("dirty", "ref_count", "map_count"), values), pteval=1)
        assert _outcome(thread.body, regs) == _outcome(linux.body, regs), regs
    if name != "seed-v4":
        assert thread.body == linux.body


def _outcome(body, regs):
    # (discarded, PTE restored) when the recorded tree runs on these values.
    for s in body:
        if isinstance(s, If):
            return _outcome(s.then if eval_expr(s.cond, regs) else s.orelse, regs)
        if isinstance(s, Write) and s.loc == "pte":
            return (False, True)
        if isinstance(s, Let) and s.reg == "discarded":
            return (bool(s.value), False)
    return (False, False)


@pytest.mark.parametrize("barrier", ["smp_mb", "smp_rmb"])
def test_without_drops_the_barrier_call_of_the_variant_too(barrier):
    linux, _, _ = record_reclaim(without=(barrier,))
    thread, _, _ = record_reclaim(without=(barrier,), variant=load_variant("reviewed"))
    assert thread.body == linux.body


def test_profile_and_variant_together_are_refused(capsys):
    argv = ["race", "--model", "sc", "--profile", "linux-6.18.44-fc", "--variant", "seed-v1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "give one" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", SEEDS)
def test_a_seed_variant_is_safe_under_sc(name, capsys):
    assert main(["race", "--model", "sc", "--variant", name]) == 0
    out = capsys.readouterr().out
    assert f"variant {name}, base linux-6.18" in out and "sc       safe" in out


@pytest.mark.parametrize("path,barrier", [(NO_MB, "smp_mb"), (NO_RMB, "smp_rmb")])
def test_a_variant_dropping_a_barrier_records_what_without_records(path, barrier):
    without, _, _ = record_reclaim(without=(barrier,))
    thread, _, _ = record_reclaim(variant=load_variant(path))
    assert thread.body == without.body
    kinds = [s.kind for s in thread.body if isinstance(s, Fence)]
    assert kinds == [k for k in ("mb", "rmb") if k != barrier.removeprefix("smp_")]


def test_a_variant_reading_the_refcount_before_the_clear_is_recorded_in_that_order():
    thread, _, _ = record_reclaim(variant=load_variant(EARLY))
    assert _straight(thread.body)[:3] == [("Read", "refcount"), ("Xchg", "pte"), ("Fence", "mb")]
    assert not any(isinstance(s, Read) and s.loc == "refcount" for s in thread.body[2:])


def test_reading_the_refcount_before_the_clear_is_unsafe_even_under_sc():
    # GUP-fast takes its reference after reclaim's early read, and still
    # sees the PTE before reclaim clears it: store buffering needs no reordering.
    report = check(("sc",), variant=load_variant(EARLY))
    gup_fast = next(o for o in report.outcomes if o.test.name == "lazyfree-gup-fast")
    assert not gup_fast.safe and report.verdict("sc") == "unsafe"
    assert any("folio_ref_count()" in step for step in gup_fast.witness)


def test_recording_a_variant_restores_every_binding_it_rebinds():
    v = load_variant("seed-v1")
    module_globals = next(iter(v.replacements.values())).__globals__
    before = dict(module_globals)
    before_rmap = {n: getattr(rmap, n) for n in ("set_ptes", "lazyfree_range", "smp_mb")}
    record_reclaim(variant=v)
    assert {k: module_globals[k] for k in before} == before
    assert {n: getattr(rmap, n) for n in before_rmap} == before_rmap


def test_a_variant_reading_the_refcount_array_directly_is_refused_with_its_line(capsys):
    assert main(["race", "--model", "sc", "--variant", DIRECT]) == 2
    err = capsys.readouterr().err.strip()
    line = next(
        n
        for n, text in enumerate(Path(DIRECT).read_text().splitlines(), 1)
        if "m.mem.refcount[folio]" in text and "=" in text
    )
    assert err.splitlines() == [
        (
            f"{DIRECT}:{line}: reads folio->_refcount directly (m.mem.refcount[folio]); "
            "call folio_ref_count(m, folio), the access foliosim race records"
        )
    ]


def test_a_variant_testing_pg_dirty_directly_is_refused(tmp_path, capsys):
    path = tmp_path / "dirty_bit.py"
    path.write_text(
        Path(NO_RMB)
        .read_text()
        .replace(
            "if folio_test_dirty(m, folio) and",
            "if m.mem.flags[folio] & PG_dirty and",
        )
        .replace("PG_swapbacked\n", "PG_dirty, PG_swapbacked\n", 1)
    )
    assert main(["race", "--model", "sc", "--variant", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{path}:") and "tests PG_dirty directly" in err
    assert len(err.splitlines()) == 1


def test_a_variant_replacing_a_recorded_function_is_refused(tmp_path, capsys):
    path = tmp_path / "own_dirty.py"
    path.write_text(
        'BASE = "linux-6.18"\n'
        "from foliosim.variants import replace\n"
        "\n"
        "@replace\n"
        "def folio_test_dirty(m, folio):\n"
        "    return False\n"
    )
    assert main(["race", "--model", "sc", "--variant", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"{path}:4: @replace folio_test_dirty(): foliosim race records folio_test_dirty() "
        "itself (an access or barrier of the litmus test); change its callers instead"
    )


@pytest.mark.parametrize(
    "text,reason",
    [
        ('BASE = "linux-6.18"\ndef lazyfree_range(:\n', ":2: syntax error"),
        ("from foliosim.variants import replace\n", ":1: no BASE"),
        ('BASE = "linux-6.18"\nraise ValueError("no")\n', ":2: fails to import: ValueError: no"),
    ],
)
def test_a_bad_variant_file_is_refused_in_one_line(tmp_path, capsys, text, reason):
    path = tmp_path / "bad.py"
    path.write_text(text)
    assert main(["race", "--model", "sc", "--variant", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{path}{reason}") and len(err.splitlines()) == 1


def test_an_unknown_variant_name_is_refused(capsys):
    assert main(["race", "--model", "sc", "--variant", "seed-v9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "seed-v9" in err and "unknown" in err and len(err.splitlines()) == 1


def test_the_litmus_of_a_variant_dropping_smp_mb_lacks_exactly_that_barrier(tmp_path):
    assert main(["race", "--model", "sc", "--litmus", str(tmp_path / "linux")]) == 0
    assert main(["race", "--model", "sc", "--variant", NO_MB, "--litmus", str(tmp_path / "v")]) == 0
    linux = (tmp_path / "linux/sc/lazyfree-gup-fast+both-barriers.litmus").read_text()
    variant = (tmp_path / "v/sc/lazyfree-gup-fast+lazyfree_no_mb.litmus").read_text()
    dropped = [line for line in linux.splitlines() if line not in variant.splitlines()]
    assert [line.split(";")[0].strip() for line in dropped if "smp_" in line] == ["smp_mb()"]
    assert "lazyfree_no_mb.py replaces lazyfree_range()" in variant


# With herd7: the seeds are linux-6.18 everywhere; the fixtures get herd7's verdict.

CELLS = [(name, model) for name in SEEDS for model in MODELS]


@pytest.mark.herd7
@pytest.mark.parametrize("name,model", CELLS, ids=[f"{n}-{m}" for n, m in CELLS])
def test_a_seed_variant_is_safe_like_linux_6_18(herd7, name, model):
    report = check((model,), herd=herd7, variant=load_variant(name))
    assert report.verdict(model) == EXPECTED[()][model] == "safe"


FIXTURES = [
    (NO_MB, EXPECTED[("smp_mb",)]),
    (NO_RMB, EXPECTED[("smp_rmb",)]),
    (EARLY, {m: "unsafe" for m in MODELS}),
]


@pytest.mark.herd7
@pytest.mark.parametrize("path,verdicts", FIXTURES, ids=[Path(p).stem for p, _ in FIXTURES])
def test_a_fixture_variant_gets_the_verdict_herd7_gives_its_litmus(
    herd7, tmp_path, capsys, path, verdicts
):
    status = main(["race", "--variant", path, "--json", "--litmus", str(tmp_path)])
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdicts"] == verdicts
    assert status == (0 if set(verdicts.values()) == {"safe"} else 1)
    written = sorted(tmp_path.rglob("*.litmus"))
    assert len(written) == 2 * len(MODELS)
    for litmus in written:
        model = litmus.parent.name
        test = litmus.name.split("+")[0]
        herd_safe = run_herd(herd7, model, litmus).positive == 0
        mine = next(t for t in doc["tests"] if t["model"] == model and t["test"] == test)
        assert (mine["verdict"] == "safe") == herd_safe, (model, test)


def test_record_error_locates_the_variants_line():
    with pytest.raises(RecordError) as e:
        record_reclaim(variant=load_variant(DIRECT))
    assert Path(e.value.path).resolve() == Path(DIRECT).resolve()
    assert "m.mem.refcount[folio]" in Path(DIRECT).read_text().splitlines()[e.value.line - 1]
