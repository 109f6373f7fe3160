"""VMA split and merge: mm/vma.c.

Model: private anonymous VMAs only, so no file, mempolicy, userfaultfd
context or anon_vma_name can differ; VM_SPECIAL is never set and no VMA has
a close hook.  The VMA tree is mm.vmas, sorted by start.
"""

from __future__ import annotations

from foliosim.model import huge_memory, rmap
from foliosim.model.machine import Machine
from foliosim.model.types import VM_READ, VM_SOFTDIRTY, VM_WRITE, AnonVma, Mm, Vma

# VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC), include/linux/mm.h: of these
# the model keeps VM_READ and VM_WRITE.
VM_ACCESS_FLAGS = VM_READ | VM_WRITE


def vma_prev(mm: Mm, vma: Vma) -> Vma | None:
    """vma_prev(), include/linux/mm.h, Linux 6.18: the VMA before this one, adjacent or not."""
    i = mm.vmas.index(vma)
    return mm.vmas[i - 1] if i else None


def vma_next(mm: Mm, vma: Vma) -> Vma | None:
    """vma_next(), include/linux/mm.h, Linux 6.18: the VMA after this one, adjacent or not."""
    i = mm.vmas.index(vma) + 1
    return mm.vmas[i] if i < len(mm.vmas) else None


def __split_vma(m: Machine, vma: Vma, at: int) -> Vma:
    """__split_vma(new_below=0), mm/vma.c, Linux 6.18: cut the VMA at `at`; returns the new upper part."""
    new = Vma(
        vma.mm,
        at,
        vma.end,
        vma.flags,
        vma.name,
        vma.anon_vma,
        [],
        vma.swap_readahead_info,
        pgoff=vma.pgoff + (at - vma.start),
    )
    rmap.anon_vma_clone(new, vma)
    # Get rid of huge pages straddling the split boundary.
    huge_memory.vma_adjust_trans_huge(m, vma, vma.start, at, None)
    vma.end = at
    vma.mm.vmas.insert(vma.mm.vmas.index(vma) + 1, new)
    return new


def vma_is_fork_child(vma: Vma | None) -> bool:
    """vma_is_fork_child(), mm/vma.c, Linux 6.18: the VMA has an anon_vma and more than one anon_vma_chain entry."""
    return vma is not None and vma.anon_vma is not None and len(vma.chain) != 1


def is_mergeable_vma(tgt: Vma, vm_flags: int) -> bool:
    """is_mergeable_vma(), mm/vma.c, Linux 6.18: same flags, VM_SOFTDIRTY aside."""
    return not (tgt.flags ^ vm_flags) & ~VM_SOFTDIRTY


def is_mergeable_anon_vma(tgt: Vma, src: Vma) -> bool:
    """is_mergeable_anon_vma(), mm/vma.c, Linux 6.18, for an existing VMA src merging into tgt."""
    if tgt.anon_vma is None and src.anon_vma is not None:
        return not vma_is_fork_child(src)  # dup_anon_vma() from src into tgt
    if tgt.anon_vma is not None and src.anon_vma is None:
        return not vma_is_fork_child(tgt)  # src simply uses tgt's
    return tgt.anon_vma is src.anon_vma


def can_vma_merge_before(nxt: Vma, src: Vma, vm_flags: int, start: int, end: int, pgoff: int) -> bool:
    """can_vma_merge_before(), mm/vma.c, Linux 6.18: [start, end) at pgoff can go in front of nxt."""
    return (
        is_mergeable_vma(nxt, vm_flags)
        and is_mergeable_anon_vma(nxt, src)
        and nxt.pgoff == pgoff + (end - start)
    )


def can_vma_merge_after(prev: Vma, src: Vma, vm_flags: int, pgoff: int) -> bool:
    """can_vma_merge_after(), mm/vma.c, Linux 6.18: a range at pgoff can go after prev."""
    return (
        is_mergeable_vma(prev, vm_flags)
        and is_mergeable_anon_vma(prev, src)
        and prev.pgoff + (prev.end - prev.start) == pgoff
    )


def dup_anon_vma(dst: Vma, src: Vma) -> None:
    """dup_anon_vma(), mm/vma.c, Linux 6.18: an unfaulted dst takes src's anon_vma on merge."""
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        rmap.anon_vma_clone(dst, src)


# vma_complete()'s removal of a merged-away VMA: anon_vma_merge() (its
# anon_vma is the survivor's) unlinks it, then it leaves the VMA tree.
def _vma_remove_merged(vma: Vma) -> None:
    rmap.unlink_anon_vmas(vma)
    vma.mm.vmas.remove(vma)


def vma_merge_existing_range(
    m: Machine, prev: Vma | None, middle: Vma, start: int, end: int, vm_flags: int
) -> Vma | None:
    """vma_merge_existing_range(), mm/vma.c, Linux 6.18: merge [start, end) of middle, given
    its new flags, into prev and/or next; the merged VMA, or None."""
    mm = middle.mm
    left_side = start == middle.start
    right_side = end == middle.end
    if not left_side and not right_side:
        return None
    pgoff = middle.pgoff + (start - middle.start)
    # can_vma_merge_left()
    merge_left = (
        left_side
        and prev is not None
        and prev.end == start
        and can_vma_merge_after(prev, middle, vm_flags, pgoff)
    )
    nxt = vma_next(mm, middle) if right_side else None
    # can_vma_merge_right(): with prev too, prev's and next's anon_vmas must agree.
    merge_right = (
        nxt is not None
        and end == nxt.start
        and can_vma_merge_before(nxt, middle, vm_flags, start, end, pgoff)
        and (
            not merge_left
            or prev.anon_vma is None
            or nxt.anon_vma is None
            or prev.anon_vma is nxt.anon_vma
        )
    )
    if not merge_left and not merge_right:
        return None
    remove_middle = left_side and right_side
    if merge_left and merge_right:
        #   prev   middle   next: prev extends over both, they go.
        assert prev is not None and nxt is not None
        dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
        huge_memory.vma_adjust_trans_huge(m, prev, prev.start, nxt.end, None)  # commit_merge()
        prev.end = nxt.end
        _vma_remove_merged(middle)
        _vma_remove_merged(nxt)
        return prev
    if merge_left:
        #   prev extends up to end; middle shrinks from below or goes.
        assert prev is not None
        dup_anon_vma(prev, middle)
        huge_memory.vma_adjust_trans_huge(
            m, prev, prev.start, end, None if remove_middle else middle
        )
        prev.end = end
        if remove_middle:
            _vma_remove_merged(middle)
        else:
            middle.pgoff += end - middle.start  # vmg_adjust_set_range()
            middle.start = end
        return prev
    #   next extends down to start; middle shrinks from above or goes.
    assert nxt is not None
    dup_anon_vma(nxt, middle)
    if remove_middle:
        huge_memory.vma_adjust_trans_huge(m, nxt, start, nxt.end, None)
        _vma_remove_merged(middle)
    else:
        # __adjust_next_start: commit_merge() adjusts middle, to [middle.start, start).
        huge_memory.vma_adjust_trans_huge(m, middle, middle.start, start, None)
        middle.end = start
    nxt.pgoff -= nxt.start - start
    nxt.start = start
    return nxt


def vma_modify_flags(
    m: Machine, prev: Vma | None, vma: Vma, start: int, end: int, vm_flags: int
) -> Vma:
    """vma_modify_flags() -> vma_modify(), mm/vma.c, Linux 6.18: the VMA that is to cover
    [start, end) with vm_flags: merged into a neighbour, or split off; the caller sets the flags."""
    merged = vma_merge_existing_range(m, prev, vma, start, end, vm_flags)
    if merged is not None:
        return merged
    if vma.start < start:
        vma = __split_vma(m, vma, start)  # split_vma(vmi, vma, start, 1)
    if vma.end > end:
        __split_vma(m, vma, end)
    return vma


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """anon_vma_compatible(), mm/vma.c, Linux 6.18: a is just below b, with flags and pgoff that fit."""
    return (
        a.end == b.start
        and not (a.flags ^ b.flags) & ~VM_ACCESS_FLAGS
        and b.pgoff == a.pgoff + (b.start - a.start)
    )


def reusable_anon_vma(old: Vma, a: Vma, b: Vma) -> AnonVma | None:
    """reusable_anon_vma(), mm/vma.c, Linux 6.18: old's anon_vma, if a and b fit and old never forked."""
    if anon_vma_compatible(a, b) and old.anon_vma is not None and len(old.chain) == 1:
        return old.anon_vma
    return None


def find_mergeable_anon_vma(vma: Vma) -> AnonVma | None:
    """find_mergeable_anon_vma(), mm/vma.c, Linux 6.18: a neighbour's anon_vma for anon_vma_prepare()."""
    mm = vma.mm
    nxt = vma_next(mm, vma)
    if nxt is not None:
        av = reusable_anon_vma(nxt, vma, nxt)
        if av is not None:
            return av
    prev = vma_prev(mm, vma)
    if prev is not None:
        return reusable_anon_vma(prev, prev, vma)
    return None


__all__ = [
    "find_mergeable_anon_vma",
    "vma_merge_existing_range",
    "vma_modify_flags",
    "vma_next",
    "vma_prev",
]
