"""foliosim.scenario.errors: the fields and the one-line form of ScenarioError."""

import pickle

from foliosim.scenario.errors import ScenarioError


def test_scenario_error_formats_as_path_line_col_reason():
    e = ScenarioError("lazyfree.scn", 7, 7, "unknown mapping 'B' (mappings of p0 so far: A)")
    assert str(e) == "lazyfree.scn:7:7: unknown mapping 'B' (mappings of p0 so far: A)"
    assert (e.path, e.line, e.col, e.reason) == (
        "lazyfree.scn",
        7,
        7,
        "unknown mapping 'B' (mappings of p0 so far: A)",
    )


def test_scenario_error_is_an_exception_that_survives_pickling():
    e = ScenarioError("a.scn", 0, 0, "cannot read scenario file: Permission denied")
    assert isinstance(e, Exception)
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == "a.scn:0:0: cannot read scenario file: Permission denied"
    assert (back.path, back.line, back.col, back.reason) == (e.path, e.line, e.col, e.reason)
