"""lazyfree_range(): the three outcomes of try_to_unmap_one()'s lazyfree branch."""

from __future__ import annotations

from foliosim.model.backend import ModelBackend
from foliosim.scenario.parser import parse_text


def final_page(text: str) -> tuple[dict, dict, list]:
    trace: list[tuple[int, str, str]] = []
    obs = ModelBackend(check=True).run(parse_text(text, "t.scn"), trace=lambda *t: trace.append(t))
    mapping = obs["final"]["procs"]["p0"]["maps"]["A"]
    return mapping["pages"][0], obs["final"]["vmstat"], trace


def decisions(trace: list) -> list[str]:
    return [msg for _, func, msg in trace if func == "try_to_unmap_one"]


def test_redirtied_lazyfree_folio_is_kept_and_swapbacked_again():
    page, vmstat, trace = final_page(
        "mmap A 1\nwrite A 0\nmadvise A 0 free\nwrite A 0 as new\nmadvise A 0 pageout\n"
    )
    assert page["state"] == "present" and "swapbacked" in page["flags"]
    assert vmstat["pglazyfreed"] == 0
    assert decisions(trace) == [
        "lazyfree folio p0 A 0 kept: dirty through the page table; swapbacked again"
    ]


def test_lazyfree_folio_dirtied_through_gup_is_kept():
    page, vmstat, trace = final_page(
        "mmap A 1\nwrite A 0\nmadvise A 0 free\nmadvise A 0 cold\npoke A 0 as new\n"
        "madvise A 0 pageout\n"
    )
    assert page["state"] == "present" and "dirty" in page["flags"]
    assert vmstat["pglazyfreed"] == 0
    assert "kept: dirty PG_dirty (a GUP write)" in decisions(trace)[0]


def test_extra_reference_keeps_the_folio_lazyfree():
    page, vmstat, trace = final_page(
        "mmap A 1\nwrite A 0\nmadvise A 0 free\ngup A 0 as R\nmadvise A 0 pageout\n"
    )
    assert page["state"] == "present" and "swapbacked" not in page["flags"]
    assert vmstat["pglazyfreed"] == 0
    assert "kept: extra reference (refcount 3 != 1 + mapcount 1)" in decisions(trace)[0]


def test_clean_lazyfree_folio_is_discarded():
    page, vmstat, trace = final_page("mmap A 1\nwrite A 0\nmadvise A 0 free\nmadvise A 0 pageout\n")
    assert page["state"] == "none"
    assert vmstat["pglazyfreed"] == 1
    assert decisions(trace) == ["lazyfree folio p0 A 0 discarded: clean, no extra reference"]


def test_a_droppable_folio_is_discarded_although_dirty():
    page, vmstat, trace = final_page("mmap A 1 droppable\nwrite A 0\nmadvise A 0 pageout\n")
    assert page["state"] == "none"
    assert vmstat["pglazyfreed"] == 0  # dirty on the file LRU: activated, then freed
    assert decisions(trace)[0].startswith("lazyfree folio p0 A 0 discarded")
