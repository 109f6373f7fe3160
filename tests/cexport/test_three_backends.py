"""Three backends at once (model, kernel, c): every pair is compared, the differing pair named."""

from __future__ import annotations

import copy
from typing import Any

from foliosim.check.judge import DIFFERS, SAME, Judge
from foliosim.model.backend import ModelBackend

TEXT = "mmap A 16K\nwrite A all as a\nmadvise A all free\nmadvise A all pageout\n"


class _Bent:
    """The model, but with LazyFree of the final state changed: a backend that differs."""

    def run(self, scenario: Any, trace: Any = None) -> dict[str, Any]:
        obs = copy.deepcopy(ModelBackend().run(scenario))
        obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Rss"] += 4
        return obs


def test_three_agreeing_backends_are_the_same() -> None:
    judge = Judge([("model", ModelBackend()), ("kernel", ModelBackend()), ("c", ModelBackend())])
    assert judge.judge(TEXT, "t.scn").kind == SAME


def test_the_outcome_names_the_first_pair_that_differs() -> None:
    judge = Judge([("model", ModelBackend()), ("kernel", ModelBackend()), ("c", _Bent())])
    o = judge.judge(TEXT, "t.scn")
    assert o.kind == DIFFERS
    assert o.side_names() == ("model", "c")
    assert [d.field for d in o.unexplained] == ["smaps Rss"]
    # kernel/c differs the same way: its signature is there too, under its own pair.
    assert any(s.startswith("kernel/c: ") for s in o.signature)
    assert any(s.startswith("model/c: ") for s in o.signature)
