"""foliosim diff: differences between two observation files, exit 0/1/2."""

from __future__ import annotations

import json

from foliosim import observation

# MADV_FREE of 31 pages fills one per-CPU batch: pages 0-30 become lazyfree at once.
SCENARIO = "mmap A 32\nwrite A all as old\nmadvise A 0-30 free\nread A all\nobserve\n"


def _observation(cli, scn, tmp_path):
    out = tmp_path / "obs"
    code, _, _ = cli("run", scn("lazy.scn", SCENARIO), "--json", out / "lazy.model.json")
    assert code == 0
    return out / "lazy.model.json"


def test_same_observation_has_no_differences_and_exits_0(cli, scn, tmp_path):
    model = _observation(cli, scn, tmp_path)
    code, out, err = cli("diff", model, model)
    assert (code, err) == (0, "")
    assert out == "no differences between lazy.model.json and " + str(model) + "\n"


def test_changed_flag_and_missing_field_are_reported_with_backend_names(cli, scn, tmp_path):
    model = _observation(cli, scn, tmp_path)
    # The same observation as a kernel would give it with two changes: pages 0-1
    # swapbacked at the observe, and exclusive left out of the final pages.
    obs = json.loads(model.read_text())
    obs["backend"] = {"name": "kernel", "release": "6.18.44"}
    pages = next(e for e in obs["events"] if e["op"] == "observe")["state"]["procs"]["p0"]["maps"][
        "A"
    ]["pages"]
    for page in pages[:2]:
        page["flags"].append("swapbacked")
        page["flags"].sort()
    for page in obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]:
        del page["exclusive"]
    kernel = tmp_path / "lazy.kernel.json"
    kernel.write_text(observation.dumps(obs))
    code, out, err = cli("diff", model, kernel)
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        (
            "line 5 observe, p0 A page 0-1 flags: model said [anon, anon_exclusive, mmap, "
            "uptodate], kernel said [anon, anon_exclusive, mmap, swapbacked, uptodate]"
        ),
        "final, p0 A page 0-31 exclusive: model said true, missing on kernel",
        "2 differences between model and kernel",
    ]


def test_read_values_are_placed_at_page_indexes_given_the_scenario(cli, scn, tmp_path):
    path = scn("r.scn", "mmap A 8\nwrite A 4-7 as x\nread A 4-7\n")
    out = tmp_path / "r"
    cli("run", path, "--json", out / "a.json")
    obs = json.loads((out / "a.json").read_text())
    obs["events"][0]["data"][3] = "zero"
    obs["backend"] = {"name": "kernel", "release": "6.18.44"}
    (out / "b.json").write_text(observation.dumps(obs))
    code, text, _ = cli("diff", out / "a.json", out / "b.json", "--scenario", path)
    assert code == 1
    assert text.splitlines()[0] == "line 3 read, p0 A page 7 data: model said x, kernel said zero"


def test_invalid_json_is_one_line_with_its_position_and_exit_2(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": \n  oops}')
    good = tmp_path / "good.json"
    good.write_text("{}")
    code, out, err = cli("diff", bad, good)
    assert (code, out) == (2, "")
    assert err == f"{bad}:2:3: invalid JSON: Expecting value\n"


def test_json_that_is_not_an_observation_is_refused(cli, tmp_path):
    a = tmp_path / "a.json"
    a.write_text('{"format": "something/2"}')
    code, _, err = cli("diff", a, a)
    assert code == 2
    assert err == (
        f"{a}: not a foliosim observation (format something/2, expected {observation.FORMAT})\n"
    )
    a.write_text("[1, 2]")
    code, _, err = cli("diff", a, a)
    assert code == 2 and "a JSON list, not an object" in err


def test_missing_observation_file_is_one_line(cli, tmp_path):
    code, _, err = cli("diff", tmp_path / "nope.json", tmp_path / "nope.json")
    assert (code, err) == (2, f"{tmp_path / 'nope.json'}: no such file\n")
