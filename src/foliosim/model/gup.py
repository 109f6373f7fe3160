"""get_user_pages and friends: mm/gup.c (and the callers the scenario language uses)."""

from __future__ import annotations

from foliosim.model import lru, memory
from foliosim.model.errors import AccessError, SyscallError
from foliosim.model.machine import Machine
from foliosim.model.mm import GUP_PIN_COUNTING_BIAS, folio_put_refs
from foliosim.model.page_flags import page_folio
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_WRITE,
    PTE_YOUNG,
    VM_READ,
    VM_WRITE,
    ZERO_PFN,
    Mm,
    PG_dirty,
    PG_head,
    PG_referenced,
    PG_tail,
    PG_zero,
    Vma,
)


# find_vma() for GUP: a page outside every VMA fails the call with EFAULT.
def _vma_of(mm: Mm, vpn: int) -> Vma:
    vma = mm.find_vma(vpn)
    if vma is None:
        raise AccessError("EFAULT", vpn)
    return vma


def check_vma_flags(vma: Vma, write: bool, force: bool = False) -> bool:
    """check_vma_flags(), mm/gup.c, Linux 6.18, of a private anonymous VMA: True if GUP may go on
    (the kernel's 0); a write needs VM_WRITE, a read VM_READ, unless FOLL_FORCE."""
    if force:
        return True  # a COW mapping, VM_MAYREAD and VM_MAYWRITE: always here
    if write:
        return bool(vma.flags & VM_WRITE)
    return bool(vma.flags & VM_READ)


def _pte_protnone(mm: Mm, vpn: int) -> bool:
    # pte_protnone() / pmd_protnone(): a present entry of a VMA without access
    # (change_protection() made every entry there PROT_NONE).
    vma = mm.find_vma(vpn)
    return vma is None or not vma.flags & (VM_READ | VM_WRITE)


def follow_page_pte(m: Machine, vma: Vma, vpn: int, write: bool, touch: bool) -> int:
    """follow_page_pte(), mm/gup.c, Linux 6.18: the mapped page, or -1 if a fault is needed."""
    t = vma.mm.pte_table(vpn)
    i = vpn & 511
    if t is None:
        pmd = vma.mm.pmds.get(vpn >> 9)  # follow_pmd_mask(): a leaf PMD
        if pmd is None:
            return -1
        return follow_huge_pmd(m, vma, pmd, i, write, touch)
    bits = int(t.bits[i])
    pfn = int(t.pfn[i])
    if not bits & PTE_PRESENT:
        return -1
    if write and not bits & PTE_WRITE:
        return -1  # can_follow_write_pte(): break COW first
    if bits & PTE_SPECIAL:
        return ZERO_PFN
    if touch:
        folio = page_folio(m, pfn)
        if write and not bits & PTE_DIRTY and not m.mem.flags[folio] & PG_dirty:
            m.mem.flags[folio] |= PG_dirty  # folio_mark_dirty()
        lru.folio_mark_accessed(m, folio)
    return pfn


def follow_huge_pmd(m: Machine, vma: Vma, pmd: list[int], i: int, write: bool, touch: bool) -> int:
    """follow_huge_pmd(), mm/gup.c, Linux 6.18: page i of a PMD-mapped THP (or the huge zero page), or -1.

    FOLL_TOUCH only makes the PMD young (and dirty for a write): touch_pmd(),
    mm/huge_memory.c.  Unlike follow_page_pte(), no folio_mark_accessed().
    """
    bits = pmd[0]
    if write and not bits & PTE_WRITE:
        return -1  # can_follow_write_pmd(): break COW (or the huge zero page) first
    if touch:
        pmd[0] |= PTE_YOUNG | (PTE_DIRTY if write else 0)  # touch_pmd()
    return pmd[1] + i


def try_grab_folio(m: Machine, pfn: int, refs: int) -> None:
    """try_grab_folio(), mm/gup.c, Linux 6.18: refs on the page's folio; the zero pages are not counted."""
    if not m.mem.flags[pfn] & PG_zero:
        m.mem.refcount[page_folio(m, pfn)] += refs


def __get_user_pages(m: Machine, mm: Mm, vpn: int, write: bool, force: bool = False) -> int:
    """One page of __get_user_pages(), mm/gup.c, Linux 6.18, with FOLL_TOUCH: fault until it can be followed.

    No VMA, or one check_vma_flags() refuses: AccessError("EFAULT") at vpn.
    """
    vma = _vma_of(mm, vpn)
    if not check_vma_flags(vma, write, force):
        raise AccessError("EFAULT", vpn)
    for _ in range(3):
        page = follow_page_pte(m, vma, vpn, write, touch=True)
        if page >= 0:
            return page
        memory.handle_mm_fault(m, vma, vpn, write)  # faultin_page()
    raise AssertionError("fault did not map the page")


def faultin_page_range(m: Machine, mm: Mm, start: int, end: int, write: bool) -> None:
    """faultin_page_range(), mm/gup.c, Linux 6.18 (MADV_POPULATE_READ/WRITE), then a drain.

    FOLL_MADV_POPULATE: no VMA is ENOMEM, one check_vma_flags() refuses EINVAL
    (madvise_populate() returns either); the pages before it are populated.
    """
    error = None
    vma = None
    for vpn in range(start, end):
        if vma is None or vpn >= vma.end:
            vma = mm.find_vma(vpn)  # vma_lookup()
            if vma is None:
                error = "ENOMEM"
                break
            if not check_vma_flags(vma, write):
                error = "EINVAL"
                break
        __get_user_pages(m, mm, vpn, write)
    # faultin_page_range() ends with lru_add_drain(): the activations FOLL_TOUCH
    # queued are applied before the call returns.
    lru.lru_add_drain(m)
    if error is not None:
        raise SyscallError(error)


def populate_vma_page_range(m: Machine, vma: Vma, start: int, end: int) -> None:
    """populate_vma_page_range(), mm/gup.c, Linux 6.18: mlock's population, then a drain.

    A PROT_NONE VMA is never populated: SyscallError("EFAULT").
    """
    if not vma.flags & (VM_READ | VM_WRITE):  # !vma_is_accessible()
        raise SyscallError("EFAULT")
    write = bool(vma.flags & VM_WRITE)  # FOLL_WRITE for private writable VMAs, else FOLL_FORCE
    for vpn in range(start, end):
        __get_user_pages(m, vma.mm, vpn, write, force=not write)
    lru.lru_add_drain(m)


def get_user_pages_fast(m: Machine, mm: Mm, start: int, end: int) -> list[int]:
    """get_user_pages_fast(FOLL_GET) -> gup_fast_fallback(), mm/gup.c, Linux 6.18.

    GUP-fast takes pages in order until the first one it cannot (not present,
    or the zero page); the slow path, with FOLL_TOUCH, does all the rest.
    """
    pages = []
    vpn = start
    while vpn < end:  # gup_fast_pte_range()
        t = mm.pte_table(vpn)
        pmd = mm.pmds.get(vpn >> 9) if t is None else None
        if (pmd is not None or t is not None) and _pte_protnone(mm, vpn):
            break  # pte_protnone() / pmd_protnone(): the slow path decides
        if pmd is not None:
            # gup_fast_pmd_leaf(): the pages of a THP up to the PMD's end (or
            # end), one reference each; never the huge zero page (pmd_special).
            if pmd[0] & PTE_SPECIAL:
                break
            stop = min(end, (vpn | 511) + 1)
            pfn = pmd[1] + (vpn & 511)
            try_grab_folio(m, pfn, stop - vpn)
            m.mem.flags[pmd[1]] |= PG_referenced  # folio_set_referenced()
            pages.extend(range(pfn, pfn + stop - vpn))
            vpn = stop
            continue
        bits = int(t.bits[vpn & 511]) if t is not None else 0
        if not bits & PTE_PRESENT or bits & PTE_SPECIAL:
            break
        pfn = int(t.pfn[vpn & 511])
        try_grab_folio(m, pfn, 1)
        m.mem.flags[page_folio(m, pfn)] |= PG_referenced  # folio_set_referenced()
        pages.append(pfn)
        vpn += 1
    for slow in range(vpn, end):  # __gup_longterm_locked(.. | FOLL_TOUCH)
        try:
            pfn = __get_user_pages(m, mm, slow, write=False)
        except AccessError as e:
            e.pages = pages  # the references taken so far stay taken
            raise
        try_grab_folio(m, pfn, 1)
        pages.append(pfn)
    return pages


def pin_user_pages_remote(m: Machine, mm: Mm, start: int, end: int) -> list[int]:
    """pin_user_pages_remote(FOLL_WRITE | FOLL_TOUCH), mm/gup.c, Linux 6.18."""
    mm.has_pinned = True  # mm_set_has_pinned_flag()
    pages: list[int] = []
    for vpn in range(start, end):
        try:
            pfn = __get_user_pages(m, mm, vpn, write=True)
        except AccessError as e:
            e.pages = pages
            raise
        # try_grab_folio(FOLL_PIN): a small folio takes the pin bias; a large one
        # takes one reference (and _pincount, which the model does not keep).
        if m.mem.flags[pfn] & (PG_head | PG_tail):
            folio = page_folio(m, pfn)
            m.pincount[folio] = m.pincount.get(folio, 0) + 1
            try_grab_folio(m, pfn, 1)
        else:
            try_grab_folio(m, pfn, GUP_PIN_COUNTING_BIAS)
        pages.append(pfn)
    return pages


def unpin_user_pages_dirty_lock(m: Machine, pages: list[int]) -> None:
    """unpin_user_pages_dirty_lock(make_dirty=true), mm/gup.c, Linux 6.18."""
    for pfn in pages:
        folio = page_folio(m, pfn)
        if not m.mem.flags[folio] & PG_dirty:
            m.mem.flags[folio] |= PG_dirty  # folio_mark_dirty()
        if m.mem.order[folio]:
            m.pincount[folio] -= 1
            folio_put_refs(m, folio, 1)
        else:
            folio_put_refs(m, folio, GUP_PIN_COUNTING_BIAS)
