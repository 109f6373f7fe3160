"""The --check invariants catch a broken model and name the scenario line."""

from __future__ import annotations

import pytest

from foliosim.model import lru, rmap
from foliosim.model.backend import ModelBackend
from foliosim.model.errors import InvariantError
from foliosim.scenario.parser import parse_text

LAZYFREE = """\
swap 1M
mmap A 8
write A all as old
madvise A all free
write A 0 as new
madvise A all pageout
read A all
"""


def run(text: str, check: bool = True) -> dict:
    return ModelBackend(check=check).run(parse_text(text, "t.scn"))


def test_the_lazyfree_scenario_passes_every_invariant():
    obs = run(LAZYFREE)
    assert obs["events"][-1]["data"] == ["new"] + ["zero"] * 7


def test_a_lost_reference_is_reported_at_the_line_that_lost_it(monkeypatch):
    real = lru.folio_get

    def folio_get_forgets_the_batch(m, folio):
        if m.line == 4:  # only during the MADV_FREE line
            return
        real(m, folio)

    monkeypatch.setattr(lru, "folio_get", folio_get_forgets_the_batch)
    with pytest.raises(InvariantError) as e:
        run(LAZYFREE)
    msg = str(e.value)
    assert msg.startswith("t.scn:4: after 'madvise A all free': validate_folio_refcount:")
    assert "but mappings, swap cache, batches and GUP account for" in msg


def test_discarding_a_redirtied_folio_is_data_loss(monkeypatch):
    # A model that ignored PG_dirty would discard page 0, which was written again.
    monkeypatch.setattr(rmap, "folio_test_dirty", lambda m, folio: False)
    with pytest.raises(InvariantError) as e:
        run(LAZYFREE)
    assert "validate_no_data_loss: p0 A page 0" in str(e.value)
    assert "t.scn:6: after 'madvise A all pageout'" in str(e.value)


def test_without_check_the_same_bug_goes_unnoticed(monkeypatch):
    monkeypatch.setattr(rmap, "folio_test_dirty", lambda m, folio: False)
    obs = run(LAZYFREE, check=False)
    assert obs["events"][-1]["data"][0] == "zero"  # the data is gone, silently
