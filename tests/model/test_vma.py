"""VMA split and merge in the model (mm/vma.c): PMD splits at new boundaries, merges, anon_vma rules."""

from __future__ import annotations

from foliosim.model.backend import ModelBackend
from foliosim.model import rmap
from foliosim.model.types import VM_HUGEPAGE, VM_LOCKED, VM_NOHUGEPAGE, VM_WRITE
from foliosim.scenario.parser import parse_text


def run(text: str):
    backend = ModelBackend(check=True)
    obs = backend.run(parse_text(text, "t.scn"))
    return obs, backend.machine


def spans(m, proc: str = "p0") -> list[tuple[int, int]]:
    mm = m.mms[proc]
    base = min(v.start for v in mm.vmas)
    return [(v.start - base, v.end - base) for v in mm.vmas]


def test_vma_split_inside_a_pmd_mapped_thp_splits_the_pmd_and_not_the_folio():
    obs, m = run("thp madvise\nmmap A 2M\nmadvise A all hugepage\nwrite A 0\nmadvise A 1 nohugepage\n")
    assert spans(m) == [(0, 1), (1, 2), (2, 512)]
    assert not m.mms["p0"].pmds
    assert obs["final"]["vmstat"]["thp_split_pmd"] == 1
    assert {p.get("order") for p in obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]} == {9}


def test_vma_split_on_a_2m_boundary_leaves_both_pmds():
    obs, m = run(
        "thp madvise\nmmap A 4M\nmadvise A all hugepage\nwrite A 0\nwrite A 512\n"
        "madvise A 512-1023 nohugepage\n"
    )
    assert spans(m) == [(0, 512), (512, 1024)]
    assert len(m.mms["p0"].pmds) == 2
    assert obs["final"]["vmstat"]["thp_split_pmd"] == 0


def test_flags_changed_back_merge_the_three_vmas_into_the_first():
    _, m = run(
        "thp madvise\nmthp 64K madvise\nmmap A 64K\nmadvise A all hugepage\nwrite A all\n"
        "madvise A 1 nohugepage\nmadvise A 1 hugepage\n"
    )
    (vma,) = m.mms["p0"].vmas
    assert spans(m) == [(0, 16)]
    assert vma.pgoff == vma.start
    assert vma.flags & VM_HUGEPAGE and not vma.flags & VM_NOHUGEPAGE
    assert vma.anon_vma is not None and vma.anon_vma.vmas == [vma]


def test_a_merge_at_one_side_shrinks_the_vma_it_takes_pages_from():
    # Page 0 goes back to VM_HUGEPAGE: [0,1) merges into nothing on the left, so
    # vma_modify_flags() splits; then pages 1-2: [1,2) merges left (prev), and
    # [2,3) is taken by prev from the front of the last VMA (__adjust_middle_start).
    _, m = run(
        "thp madvise\nmmap A 64K\nmadvise A all hugepage\nmadvise A 1-15 nohugepage\n"
        "madvise A 1-2 hugepage\n"
    )
    mm = m.mms["p0"]
    assert spans(m) == [(0, 3), (3, 16)]
    assert mm.vmas[1].pgoff == mm.vmas[1].start


def test_unfaulted_neighbours_take_the_anon_vma_of_the_vma_merged_into_them():
    _, m = run(
        "thp madvise\nmthp 64K madvise\nmmap A 64K\nmadvise A all hugepage\n"
        "mlock A 1\nmunlock A 1\n"
    )
    (vma,) = m.mms["p0"].vmas
    assert not vma.flags & VM_LOCKED
    assert vma.anon_vma is not None and vma.chain == [vma.anon_vma]
    assert vma.anon_vma.vmas == [vma]


def test_vmas_with_different_anon_vmas_do_not_merge():
    _, m = run(
        "thp madvise\nmmap A 2M\nmadvise A all hugepage\nmadvise A 1 nohugepage\n"
        "write A all\nmadvise A 1 hugepage\n"
    )
    mm = m.mms["p0"]
    assert spans(m) == [(0, 1), (1, 2), (2, 512)]
    assert len({id(v.anon_vma) for v in mm.vmas}) == 3
    assert len({v.flags for v in mm.vmas}) == 1


def test_a_page_faulted_while_its_neighbour_was_locked_keeps_its_own_anon_vma():
    # VM_LOCKED is not one of VM_ACCESS_FLAGS: anon_vma_compatible() says no, so
    # the two faulted VMAs get two anon_vmas and munlock cannot merge them.
    _, m = run("thp madvise\nmmap A 64K\nmlock A 0\nwrite A 1-15\nmunlock A 0\n")
    mm = m.mms["p0"]
    assert spans(m) == [(0, 1), (1, 16)]
    assert mm.vmas[0].anon_vma is not mm.vmas[1].anon_vma


def test_a_first_fault_reuses_the_anon_vma_of_a_neighbour_differing_only_in_access_flags():
    _, m = run("thp madvise\nmmap A 64K\nmlock A 0\nmunlock A 0\nmadvise A 1-15 nohugepage\n")
    low, high = m.mms["p0"].vmas
    rmap.unlink_anon_vmas(high)  # as if the split-off VMA had never faulted
    high.flags = low.flags | VM_NOHUGEPAGE
    rmap.anon_vma_prepare(m, high)
    assert high.anon_vma is not low.anon_vma
    rmap.unlink_anon_vmas(high)
    high.flags = low.flags ^ VM_WRITE  # as mprotect would leave them
    rmap.anon_vma_prepare(m, high)
    assert high.anon_vma is low.anon_vma
    assert low.anon_vma.vmas == [low, high]


def test_a_fork_child_keeps_its_vmas_apart_from_an_unfaulted_neighbour():
    # The child's faulted VMA has two anon_vma_chain entries (vma_is_fork_child()):
    # an unfaulted neighbour may not take its anon_vma.
    _, m = run(
        "thp madvise\nmmap A 64K\nmadvise A all hugepage\nmadvise A 1-15 nohugepage\n"
        "write A 1-15\nfork p1\np1: madvise A 1-15 hugepage\nmadvise A 1-15 hugepage\n"
    )
    child = m.mms["p1"].vmas
    assert spans(m, "p1") == [(0, 1), (1, 16)]
    assert child[0].flags == child[1].flags and len(child[1].chain) == 2
    assert spans(m, "p0") == [(0, 16)]  # the parent's VMA has one anon_vma: merged


def test_mlock_locks_a_pmd_mapped_thp_whole():
    obs, _ = run("thp madvise\nmmap A 2M\nmadvise A all hugepage\nwrite A 0\nmlock A all\n")
    flags = {tuple(p["flags"]) for p in obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]}
    assert all("mlocked" in f and "unevictable" in f for f in flags)


def test_gup_through_a_huge_pmd_does_not_mark_the_thp_accessed():
    obs, m = run("thp madvise\nmmap A 2M\nmadvise A all hugepage\npoke A 0\npoke A 1\n")
    flags = {tuple(p["flags"]) for p in obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]}
    assert not any("referenced" in f or "active" in f for f in flags)
    (pmd,) = m.mms["p0"].pmds.values()
    assert pmd[0] & 0b1000  # PTE_YOUNG: touch_pmd()
