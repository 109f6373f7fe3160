"""MADV_DONTFORK / DOFORK / WIPEONFORK / KEEPONFORK in the model: madvise_vma_behavior() and dup_mmap()."""

from __future__ import annotations

from foliosim.model.backend import ModelBackend
from foliosim.model.types import VM_DONTCOPY, VM_WIPEONFORK
from foliosim.scenario.parser import parse_text


def run(text: str):
    backend = ModelBackend(check=True)
    obs = backend.run(parse_text(text, "t.scn"))
    return obs, backend.machine


def vmas(obs, proc: str, name: str) -> list[tuple[int, int, list[str]]]:
    return [
        (v["first"], v["last"], v["flags"])
        for v in obs["final"]["procs"][proc]["maps"][name]["vmas"]
    ]


PLAIN = ["rd", "wr", "mr", "mw", "me", "ac"]


def test_dontfork_splits_the_vma_and_the_child_gets_none_of_that_part():
    obs, m = run("mmap A 8\nwrite A all\nmadvise A 2-3 dontfork\nfork c\n")
    assert vmas(obs, "p0", "A") == [
        (0, 1, PLAIN),
        (2, 3, ["rd", "wr", "mr", "mw", "me", "dc", "ac"]),
        (4, 7, PLAIN),
    ]
    assert vmas(obs, "c", "A") == [(0, 1, PLAIN), (4, 7, PLAIN)]
    child = obs["final"]["procs"]["c"]["maps"]["A"]["pages"]
    assert [p["state"] for p in child[2:4]] == ["none", "none"]
    assert all(p["mapcount"] == 2 for p in child[:2] + child[4:])


def test_wipeonfork_gives_the_child_the_vma_without_pages_or_anon_vma():
    obs, m = run("mmap A 4\nwrite A all\nmadvise A all wipeonfork\nfork c\nc: read A all\n")
    (vma,) = m.mms["c"].vmas
    assert vma.flags & VM_WIPEONFORK
    assert obs["events"][0]["data"] == ["zero"] * 4
    assert vmas(obs, "c", "A") == [(0, 3, ["rd", "wr", "mr", "mw", "me", "ac", "wf"])]


def test_dofork_and_keeponfork_merge_the_vma_back():
    obs, m = run(
        "mmap A 8\nwrite A all\nmadvise A 2-3 dontfork\nmadvise A 5 wipeonfork\n"
        "madvise A 2-3 dofork\nmadvise A 5 keeponfork\n"
    )
    assert vmas(obs, "p0", "A") == [(0, 7, PLAIN)]
    assert not m.mms["p0"].vmas[0].flags & (VM_DONTCOPY | VM_WIPEONFORK)


def test_keeponfork_of_a_droppable_mapping_fails_with_einval():
    obs, _ = run("mmap D 4 droppable\nmadvise D all keeponfork\n")
    assert obs["events"] == [
        {"line": 2, "proc": "p0", "op": "madvise", "error": "EINVAL", "map": "D"}
    ]
