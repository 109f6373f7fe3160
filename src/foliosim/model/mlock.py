"""mlock/munlock and the per-CPU mlock batch: mm/mlock.c."""

from __future__ import annotations

from foliosim.model import gup, lru, mmap
from foliosim.model import vma as mm_vma
from foliosim.model.errors import SyscallError
from foliosim.model.machine import FOLIO_BATCH_SIZE, Machine
from foliosim.model.mm import folio_get, folio_nr_pages, folio_put
from foliosim.model.page_flags import (
    folio_clear,
    folio_set,
    folio_test_clear,
    folio_test_large,
    page_folio,
)
from foliosim.model.types import (
    PTE_PRESENT,
    PTE_SPECIAL,
    VM_DROPPABLE,
    VM_LOCKED,
    VM_LOCKONFAULT,
    Mm,
    PG_active,
    PG_lru,
    PG_mlocked,
    PG_unevictable,
    Vma,
)
from foliosim.model.vmstat import count_vm_events

MLOCK, MLOCK_NEW, MUNLOCK = 0, 1, 2


def __mlock_folio(m: Machine, folio: int) -> None:
    """__mlock_folio(), mm/mlock.c, Linux 6.18: the mlock batch moves a folio to the unevictable LRU."""
    if not folio_test_clear(m, folio, PG_lru):
        return  # nothing more we can do while it's off the LRU
    if not m.mem.flags[folio] & PG_unevictable and m.mem.flags[folio] & PG_mlocked:
        folio_clear(m, folio, PG_active)
        folio_set(m, folio, PG_unevictable)
        count_vm_events(m, "unevictable_pgs_culled", folio_nr_pages(m, folio))
    folio_set(m, folio, PG_lru)


def __mlock_new_folio(m: Machine, folio: int) -> None:
    """__mlock_new_folio(), mm/mlock.c, Linux 6.18: a new folio starts mlocked and unevictable."""
    if m.mem.flags[folio] & PG_mlocked:
        folio_set(m, folio, PG_unevictable)
        count_vm_events(m, "unevictable_pgs_culled", folio_nr_pages(m, folio))
    lru.lruvec_add_folio(m, folio)  # memcg (issue 13): the head of its list
    folio_set(m, folio, PG_lru)


def __munlock_folio(m: Machine, folio: int) -> None:
    """__munlock_folio(), mm/mlock.c, Linux 6.18: the batch takes back one mlock of the folio."""
    nr = folio_nr_pages(m, folio)
    isolated = folio_test_clear(m, folio, PG_lru)
    # Model: mlock_count is 1 (one locked mapping): this munlock is the last.
    if folio_test_clear(m, folio, PG_mlocked):
        if isolated or not m.mem.flags[folio] & PG_unevictable:
            count_vm_events(m, "unevictable_pgs_munlocked", nr)
        else:
            count_vm_events(m, "unevictable_pgs_stranded", nr)
    if isolated and m.mem.flags[folio] & PG_unevictable:
        folio_clear(m, folio, PG_unevictable)
        lru.lruvec_add_folio(m, folio)  # memcg (issue 13): the head of an evictable list
        count_vm_events(m, "unevictable_pgs_rescued", nr)
    if isolated:
        folio_set(m, folio, PG_lru)


def mlock_folio_batch(m: Machine) -> None:
    """mlock_folio_batch(), mm/mlock.c, Linux 6.18."""
    batch, m.mlock_fbatch = m.mlock_fbatch, []
    for folio, op in batch:
        if op == MLOCK:
            __mlock_folio(m, folio)
        elif op == MLOCK_NEW:
            __mlock_new_folio(m, folio)
        else:
            __munlock_folio(m, folio)
    for folio, _ in batch:
        folio_put(m, folio)


def mlock_drain_local(m: Machine) -> None:
    """mlock_drain_local(), mm/mlock.c, Linux 6.18."""
    if m.mlock_fbatch:
        mlock_folio_batch(m)


# mlock_folio_batch's add: take a reference, queue (folio, op), drain when full,
# for a large folio, or when forced (folio_batch_add() + mlock_folio_batch(), mm/mlock.c).
def _mlock_batch_add(m: Machine, folio: int, op: int, force: bool = False) -> None:
    folio_get(m, folio)
    m.mlock_fbatch.append((folio, op))
    if len(m.mlock_fbatch) >= FOLIO_BATCH_SIZE or folio_test_large(m, folio) or force:
        mlock_folio_batch(m)


def mlock_folio(m: Machine, folio: int) -> None:
    """mlock_folio(), mm/mlock.c, Linux 6.18."""
    if not m.mem.flags[folio] & PG_mlocked:  # folio_test_set_mlocked()
        count_vm_events(m, "unevictable_pgs_mlocked", folio_nr_pages(m, folio))
    folio_set(m, folio, PG_mlocked)
    _mlock_batch_add(m, folio, MLOCK)


def mlock_new_folio(m: Machine, folio: int) -> None:
    """mlock_new_folio(), mm/mlock.c, Linux 6.18: a new folio faulted into a VM_LOCKED VMA."""
    folio_set(m, folio, PG_mlocked)
    count_vm_events(m, "unevictable_pgs_mlocked", folio_nr_pages(m, folio))
    _mlock_batch_add(m, folio, MLOCK_NEW)


def munlock_folio(m: Machine, folio: int) -> None:
    """munlock_folio(), mm/mlock.c, Linux 6.18: evictable folios are moved at once."""
    _mlock_batch_add(m, folio, MUNLOCK, force=not m.mem.flags[folio] & PG_unevictable)


def munlock_vma_folio(m: Machine, folio: int, vma: Vma) -> None:
    """munlock_vma_folio(), mm/internal.h, Linux 6.18: a mapping in a locked VMA went away.

    Called where __folio_remove_rmap() calls it: the folio is munlocked (a
    later mlock_folio() from another locked mapping would lock it again).
    """
    if vma.flags & VM_LOCKED:
        munlock_folio(m, folio)


def mlock_vma_pages_range(m: Machine, vma: Vma, start: int, end: int, newflags: int) -> None:
    """mlock_vma_pages_range(), mm/mlock.c, Linux 6.18: set flags, then (un)mlock present folios."""

    vma.flags = newflags
    lru.lru_add_drain(m)
    # mlock_pte_range(): every present normal folio of the range.

    skip = start
    for vpn in range(start, end):
        if vpn < skip:
            continue
        t = vma.mm.pte_table(vpn)
        if t is None:
            pmd = vma.mm.pmds.get(vpn >> 9)
            if pmd is not None:
                # pmd_trans_huge_lock(): a PMD-mapped THP is (un)mlocked whole;
                # a VMA boundary inside it would have split the PMD
                # (vma_adjust_trans_huge()).  Never the huge zero page.
                skip = (vpn | 511) + 1
                if pmd[1] != m.huge_zero_pfn:
                    if newflags & VM_LOCKED:
                        mlock_folio(m, pmd[1])
                    else:
                        munlock_folio(m, pmd[1])
            continue
        i = vpn & 511
        bits = int(t.bits[i])
        if not bits & PTE_PRESENT or bits & PTE_SPECIAL:
            continue
        page = int(t.pfn[i])
        folio = page_folio(m, page)
        if m.mem.order[folio]:
            # allow_mlock_munlock(): mlock takes a large folio only when all of
            # it lies in the range and is mapped there (folio_mlock_step() covers
            # it); munlock takes it anyway, as it may have been mlocked before a
            # VMA split.
            nr = folio_nr_pages(m, folio)
            first = vpn - (page - folio)
            skip = first + nr
            if not newflags & VM_LOCKED:
                munlock_folio(m, folio)
                continue
            if first < start or first + nr > end:
                continue
            ft = vma.mm.pte_table(first)
            if any(
                not ft.bits[(first + k) & 511] & PTE_PRESENT
                or ft.pfn[(first + k) & 511] != folio + k
                for k in range(nr)
            ):
                continue
        if newflags & VM_LOCKED:
            mlock_folio(m, folio)
        else:
            munlock_folio(m, folio)
    lru.lru_add_drain(m)


def vma_is_mlockable(vma: Vma) -> bool:
    """Whether mlock_fixup(), mm/mlock.c, Linux 6.18, may set VM_LOCKED: not on VM_DROPPABLE VMAs (6.11+)."""
    return not vma.flags & VM_DROPPABLE


def mlock_fixup(m: Machine, vma: Vma, prev: Vma | None, start: int, end: int, newflags: int) -> Vma:
    """mlock_fixup(), mm/mlock.c, Linux 6.18: [start, end) of the VMA gets newflags; returns the new prev."""
    oldflags = vma.flags
    if newflags == oldflags or not vma_is_mlockable(vma):
        return vma  # VM_DROPPABLE never gets VM_LOCKED
    vma = mm_vma.vma_modify_flags(m, prev, vma, start, end, newflags)
    if newflags & VM_LOCKED and oldflags & VM_LOCKED:
        vma.flags = newflags  # no work to do, and mlocking twice would be wrong
    else:
        mlock_vma_pages_range(m, vma, start, end, newflags)
    return vma


def apply_vma_lock_flags(m: Machine, mm: Mm, start: int, end: int, flags: int) -> None:
    """apply_vma_lock_flags(), mm/mlock.c, Linux 6.18: mlock_fixup() on each VMA of the range."""
    # A hole at start, or anywhere in the range, is ENOMEM (vma_iter_load(), and
    # the vm_start != tmp check); the VMAs before a hole are done by then.
    vma: Vma | None = mm.find_vma(start)
    if vma is None:
        raise SyscallError("ENOMEM")
    prev = vma if start > vma.start else mm_vma.vma_prev(mm, vma)
    tmp = vma.start
    while vma is not None and vma.start < end:
        if vma.start != tmp:
            raise SyscallError("ENOMEM")
        newflags = (vma.flags & ~(VM_LOCKED | VM_LOCKONFAULT)) | flags
        prev = mlock_fixup(m, vma, prev, max(start, vma.start), min(end, vma.end), newflags)
        tmp = prev.end  # vma_iter_end(): a merge's end included
        vma = mm_vma.vma_next(mm, prev)
    if tmp < end:
        raise SyscallError("ENOMEM")


def do_mlock(m: Machine, mm: Mm, start: int, end: int, flags: int = VM_LOCKED) -> None:
    """do_mlock(), mm/mlock.c, Linux 6.18: mlock(2) (flags VM_LOCKED) and mlock2(2)
    (MLOCK_ONFAULT: VM_LOCKED | VM_LOCKONFAULT); lock, then populate."""
    # No lru_add_drain_all() (older kernels had one): in 6.18 only
    # mlock_vma_pages_range() drains, this CPU's batches, around its walk.
    apply_vma_lock_flags(m, mm, start, end, flags)
    try:
        __mm_populate(m, mm, start, end, ignore_errors=False)
    except SyscallError as e:
        # __mlock_posix_error_return(): EFAULT (a PROT_NONE VMA) is ENOMEM to the caller.
        raise SyscallError("ENOMEM" if e.errno == "EFAULT" else e.errno) from None


def __mm_populate(m: Machine, mm: Mm, start: int, end: int, ignore_errors: bool) -> None:
    """__mm_populate(), mm/gup.c, Linux 6.18: populate_vma_page_range() on each VMA of the range.

    Every VMA, locked or not (a droppable one too); populate_vma_page_range()
    itself does nothing for VM_LOCKONFAULT.  An error ends the walk unless
    `ignore_errors` (mm_populate()'s callers: mmap, mlockall), which goes on at
    the next VMA.  Model: no VM_IO or VM_PFNMAP VMA exists.
    """
    for vma in mmap.vmas_in_range(mm, start, end):
        try:
            gup.populate_vma_page_range(m, vma, max(start, vma.start), min(end, vma.end))
        except SyscallError:
            if not ignore_errors:
                raise


# -- mlockall(2), munlockall(2) --------------------------------------------------------

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4  # include/uapi/asm-generic/mman-common.h
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT


def apply_mlockall_flags(m: Machine, mm: Mm, flags: int) -> None:
    """apply_mlockall_flags(), mm/mlock.c, Linux 6.18: mm->def_flags for future mappings,
    and for MCL_CURRENT mlock_fixup() of every VMA (0: munlockall)."""
    mm.def_flags &= ~VM_LOCKED_MASK
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED
        if flags & MCL_ONFAULT:
            mm.def_flags |= VM_LOCKONFAULT
        if not flags & MCL_CURRENT:
            return
    to_add = 0
    if flags & MCL_CURRENT:
        to_add |= VM_LOCKED
        if flags & MCL_ONFAULT:
            to_add |= VM_LOCKONFAULT
    # for_each_vma(): the walk goes on after the VMA mlock_fixup() left as prev.
    prev: Vma | None = None
    vma: Vma | None = mm.vmas[0] if mm.vmas else None
    while vma is not None:
        newflags = (vma.flags & ~VM_LOCKED_MASK) | to_add
        prev = mlock_fixup(m, vma, prev, vma.start, vma.end, newflags)
        vma = mm_vma.vma_next(mm, prev)


def sys_mlockall(m: Machine, mm: Mm, flags: int) -> None:
    """SYSCALL_DEFINE1(mlockall), mm/mlock.c, Linux 6.18: apply the flags, then with
    MCL_CURRENT mm_populate(0, TASK_SIZE), every VMA.

    The parser refuses what mlockall() refuses with EINVAL (no flag, or only
    MCL_ONFAULT); root has CAP_IPC_LOCK, so RLIMIT_MEMLOCK never applies.
    """
    apply_mlockall_flags(m, mm, flags)
    if flags & MCL_CURRENT and mm.vmas:
        __mm_populate(m, mm, mm.vmas[0].start, mm.vmas[-1].end, ignore_errors=True)


def sys_munlockall(m: Machine, mm: Mm) -> None:
    """SYSCALL_DEFINE0(munlockall), mm/mlock.c, Linux 6.18: apply_mlockall_flags(0)."""
    apply_mlockall_flags(m, mm, 0)


def sys_munlock(m: Machine, mm: Mm, start: int, end: int) -> None:
    """SYSCALL_DEFINE2(munlock), mm/mlock.c, Linux 6.18: the munlock(2) entry point."""
    apply_vma_lock_flags(m, mm, start, end, 0)
