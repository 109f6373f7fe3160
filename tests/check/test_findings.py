"""Saving a finding: numbering, the header, and the replay of the file as saved."""

from __future__ import annotations

import json

from foliosim.check.findings import Shrunk, count_commands, next_number, save_finding
from foliosim.check.judge import Judge
from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_file
from foliosim.variants import VariantBackend, load_variant

# Differs between the two profiles at the observe (line 6) and in the final state.
GUP_LAZYFREE = "mmap A 1\nwrite A 0\nmadvise A 0 free\ngup A 0 as r\nmadvise A 0 pageout\nobserve\n"


def _judge():
    return Judge(
        [
            ("linux-6.18", ModelBackend("linux-6.18")),
            ("revert", VariantBackend(load_variant("pre-6.15-swapbacked"))),
        ]
    )


def _shrunk(judge, text=GUP_LAZYFREE):
    outcome = judge.judge(text, "fuzz.scn")
    return Shrunk(
        first="observe\n" * 3 + text,
        last=text,
        outcome=outcome,
        target=outcome.signature,
        scenario_index=7,
        shrink_runs=12,
    )


def test_numbers_follow_the_highest_finding_already_there(tmp_path):
    assert next_number(tmp_path / "absent") == 0
    (tmp_path / "004.scn").write_text("")
    (tmp_path / "002.linux-6.18.json").write_text("")
    (tmp_path / "notes.scn").write_text("")
    assert next_number(tmp_path) == 5


def test_commands_are_counted_without_comments_and_blank_lines():
    assert count_commands("# head\n\nmmap A 1  # tail\nwrite A 0\n") == 2


def test_a_saved_finding_replays_as_saved_with_its_header_and_observations(tmp_path):
    judge = _judge()
    f = save_finding(tmp_path, judge, _shrunk(judge), "foliosim equiv (test)")
    assert f.path == tmp_path / "000.scn" and f.reproduced and f.replay_runs >= 1
    assert (f.commands_before, f.commands_after, f.scenario_index) == (9, 6, 7)
    lines = f.path.read_text().splitlines()
    assert lines[0] == "# found by: foliosim equiv (test)"
    assert lines[1] == "# scenario 7 of the campaign, shrunk from 9 to 6 commands in 12 runs"
    assert lines[2].startswith("# linux-6.18 and revert differ: ")
    # The differences in the header name the lines of the file as saved.
    header = [line for line in lines if line.startswith("#")]
    observe = parse_file(f.path).commands[-1]
    assert type(observe).__name__ == "Observe" and observe.line == len(header) + 6
    assert any(
        line.startswith(f"#   line {observe.line} observe, p0 A page 0 flags") for line in header
    )
    saved = json.loads((tmp_path / "000.revert.json").read_text())
    assert saved["backend"]["variant"] == "pre-6.15-swapbacked"
    assert (tmp_path / "000.linux-6.18.json").exists()


def test_a_finding_that_does_not_fail_again_says_so(tmp_path):
    judge = _judge()
    s = _shrunk(judge)
    # As if the shrinking run had been a fluke: replayed, the file agrees.
    agreeing = Judge([("linux-6.18", ModelBackend()), ("revert", ModelBackend())])
    f = save_finding(tmp_path, agreeing, s, "test")
    assert not f.reproduced and f.outcome is s.outcome
    assert "# note: this file, run again, did not fail the same way" in f.path.read_text()
