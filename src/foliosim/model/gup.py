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
    VM_LOCKONFAULT,
    VM_READ,
    VM_WRITE,
    ZERO_PFN,
    Mm,
    PG_anon,
    PG_anon_exclusive,
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
    # "Rightly or wrongly, the VM_LOCKONFAULT case has never used faultin_page()
    # to break COW, so it has no work to do here" -- and no lru_add_drain() either.
    if vma.flags & VM_LOCKONFAULT:
        return
    if not vma.flags & (VM_READ | VM_WRITE):  # !vma_is_accessible(): no FOLL_FORCE
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


# -- long-term pins: pin_user_pages_fast(FOLL_PIN | FOLL_LONGTERM) (issue 12) -----------
#
# Model: every page is long-term pinnable.  folio_is_longterm_pinnable()
# (include/linux/mm.h) refuses only CMA / isolated pageblocks, ZONE_MOVABLE,
# device-coherent and fsdax folios, and this machine has no CMA and an empty
# ZONE_MOVABLE (/proc/zoneinfo: "zone Movable present 0", "cma 0" everywhere),
# so check_and_migrate_movable_pages() never migrates and try_grab_folio_fast()
# never refuses.


def gup_must_unshare(m: Machine, vma: Vma | None, write: bool, longterm: bool, pfn: int) -> bool:
    """gup_must_unshare(), mm/internal.h, Linux 6.18: a R/O pin must unshare this page first.

    Called for FOLL_PIN only, on a non-writable entry.  An anonymous page must
    be PageAnonExclusive; a non-anonymous one (the shared zero pages) only for
    FOLL_LONGTERM, and GUP-fast (vma None) cannot tell, so it falls back.
    Model: every VMA is a private anonymous (COW) mapping: is_cow_mapping().
    """
    if write:
        return False
    if not m.mem.flags[page_folio(m, pfn)] & PG_anon:
        if not longterm:
            return False
        return True  # vma None (GUP-fast): "We really need the vma"; else is_cow_mapping()
    return not m.mem.flags[pfn] & PG_anon_exclusive


def try_grab_folio_pin(m: Machine, pfn: int, refs: int) -> None:
    """try_grab_folio(FOLL_PIN) / try_grab_folio_fast(), mm/gup.c, Linux 6.18.

    A large folio takes `refs` references and `refs` on _pincount; a small one
    refs * GUP_PIN_COUNTING_BIAS references.  The zero pages are never pinned.
    """
    if m.mem.flags[pfn] & PG_zero:
        return
    folio = page_folio(m, pfn)
    if m.mem.order[folio]:  # folio_has_pincount()
        m.mem.refcount[folio] += refs
        m.pincount[folio] = m.pincount.get(folio, 0) + refs
    else:
        m.mem.refcount[folio] += refs * GUP_PIN_COUNTING_BIAS


def unpin_user_folio(m: Machine, folio: int, refs: int) -> None:
    """unpin_user_folio() -> gup_put_folio(FOLL_PIN), mm/gup.c, Linux 6.18: no dirtying."""
    if m.mem.flags[folio] & PG_zero:
        return
    if m.mem.order[folio]:
        m.pincount[folio] -= refs
        if not m.pincount[folio]:
            del m.pincount[folio]
        folio_put_refs(m, folio, refs)
    else:
        folio_put_refs(m, folio, refs * GUP_PIN_COUNTING_BIAS)


def _gup_fast_pin(m: Machine, mm: Mm, start: int, end: int, write: bool) -> list[int]:
    # gup_fast() -> gup_fast_pte_range() / gup_fast_pmd_leaf() with FOLL_PIN: in
    # order, until the first entry it cannot take (not present, not writable for
    # a write pin, special, or a R/O pin of a page that must be unshared).
    pages: list[int] = []
    vpn = start
    while vpn < end:
        t = mm.pte_table(vpn)
        pmd = mm.pmds.get(vpn >> 9) if t is None else None
        if pmd is not None:
            bits, head = pmd
            if write and not bits & PTE_WRITE or bits & PTE_SPECIAL:
                break  # pmd_access_permitted(), pmd_special(): the huge zero page
            if not bits & PTE_WRITE and gup_must_unshare(m, None, write, True, head):
                break
            stop = min(end, (vpn | 511) + 1)
            try_grab_folio_pin(m, head, stop - vpn)
            m.mem.flags[head] |= PG_referenced  # folio_set_referenced()
            first = head + (vpn & 511)
            pages.extend(range(first, first + stop - vpn))
            vpn = stop
            continue
        bits = int(t.bits[vpn & 511]) if t is not None else 0
        if not bits & PTE_PRESENT or bits & PTE_SPECIAL or write and not bits & PTE_WRITE:
            break  # pte_access_permitted(), pte_special()
        pfn = int(t.pfn[vpn & 511])  # type: ignore[union-attr]
        if not bits & PTE_WRITE and gup_must_unshare(m, None, write, True, pfn):
            break
        try_grab_folio_pin(m, pfn, 1)
        m.mem.flags[page_folio(m, pfn)] |= PG_referenced  # folio_set_referenced()
        pages.append(pfn)
        vpn += 1
    return pages


def _follow_page_pin(m: Machine, vma: Vma, vpn: int, write: bool) -> int:
    # follow_page_mask() for FOLL_PIN | FOLL_LONGTERM | FOLL_TOUCH: the page; -1 if a
    # fault is needed; -2 for -EMLINK (gup_must_unshare(): an unshare fault first).
    mm = vma.mm
    t = mm.pte_table(vpn)
    i = vpn & 511
    if t is None:
        pmd = mm.pmds.get(vpn >> 9)
        if pmd is None:
            return -1
        bits, head = pmd
        if write and not bits & PTE_WRITE:
            return -1
        if not bits & PTE_WRITE and gup_must_unshare(m, vma, write, True, head):
            return -2  # follow_huge_pmd()
        return follow_huge_pmd(m, vma, pmd, i, write, touch=True)
    bits = int(t.bits[i])
    if not bits & PTE_PRESENT or write and not bits & PTE_WRITE:
        return -1
    pfn = ZERO_PFN if bits & PTE_SPECIAL else int(t.pfn[i])
    if not bits & PTE_WRITE and gup_must_unshare(m, vma, write, True, pfn):
        return -2  # follow_page_pte()
    return follow_page_pte(m, vma, vpn, write, touch=True)


def pin_user_pages_fast(m: Machine, mm: Mm, start: int, end: int, write: bool) -> list[int]:
    """pin_user_pages_fast(FOLL_PIN | FOLL_LONGTERM [| FOLL_WRITE]) -> gup_fast_fallback(), mm/gup.c, Linux 6.18.

    Returns the pinned pages, one per page of [start, end).  GUP-fast first; the
    rest by __gup_longterm_locked(.. | FOLL_TOUCH), faulting (FAULT_FLAG_UNSHARE
    where gup_must_unshare() says so: faultin_page()).  A page outside every
    VMA, or a write pin of a VMA without VM_WRITE (check_vma_flags()), ends the
    call: the caller gets the pages pinned so far and EFAULT.
    """
    mm.has_pinned = True  # mm_set_has_pinned_flag()
    pages = _gup_fast_pin(m, mm, start, end, write)
    for vpn in range(start + len(pages), end):
        vma = mm.find_vma(vpn)
        if vma is None or write and not vma.flags & VM_WRITE:
            raise PartialPin(pages)
        for _ in range(4):
            pfn = _follow_page_pin(m, vma, vpn, write)
            if pfn >= 0:
                break
            memory.handle_mm_fault(m, vma, vpn, write, unshare=pfn == -2)  # faultin_page()
        else:
            raise AssertionError("fault did not make the page pinnable")
        try_grab_folio_pin(m, pfn, 1)
        pages.append(pfn)
    return pages


class PartialPin(SyscallError):
    """-EFAULT from a pin that took only `pages` (the caller unpins them)."""

    def __init__(self, pages: list[int]) -> None:
        super().__init__("EFAULT")
        self.pages = pages

