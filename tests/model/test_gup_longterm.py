"""Long-term pins (FOLL_PIN | FOLL_LONGTERM): mm/gup.c, io_uring/rsrc.c, Linux 6.18.

R/O long-term pins cannot be taken on this machine's kernel (io_uring always
pins FOLL_WRITE; no gup_test), so their rules are checked here on the model,
each against the kernel code that makes it.
"""

from __future__ import annotations

import pytest

from foliosim.model import io_uring_rsrc
from foliosim.model.backend import ModelBackend
from foliosim.model.errors import SyscallError
from foliosim.model.mm import folio_maybe_dma_pinned
from foliosim.model.page_flags import page_folio
from foliosim.model.types import PTE_WRITE, VM_WRITE
from foliosim.scenario.parser import parse_text


def _run(text: str) -> tuple[ModelBackend, dict]:
    b = ModelBackend(check=True)
    return b, b.run(parse_text(text, "t.scn"))


def _expects(obs: dict) -> dict[int, list[str]]:
    return {e["line"]: e["got"] for e in obs["events"] if e["op"] == "expect"}


def test_readonly_pin_of_a_page_shared_after_fork_unshares_it_so_parent_writes_reach_the_pin():
    """gup_must_unshare() (mm/internal.h): a R/O pin of a non-exclusive anon page faults
    with FAULT_FLAG_UNSHARE; do_wp_page() cannot reuse a page the child maps, so
    wp_page_copy() gives the parent an exclusive copy (not writable), which is
    pinned.  The parent's next write reuses it (PageAnonExclusive): the pin sees it."""
    _b, obs = _run(
        "mmap A 16K\nwrite A all as old\nfork c\npin A 0-3 as R readonly\n"
        "expect R data old\nwrite A all as new\nexpect R data new\nc: expect A all data old\n"
    )
    got = _expects(obs)
    assert got[5] == ["old"] * 4
    assert got[7] == ["new"] * 4
    assert got[8] == ["old"] * 4
    pages = obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]
    assert all(p["exclusive"] and p["mapcount"] == 1 for p in pages)


def test_unshare_copy_is_neither_writable_nor_reused_until_written():
    """wp_page_copy() with FAULT_FLAG_UNSHARE, mm/memory.c: the new PTE is not
    writable (BUG_ON(unshare && pte_write(entry)))."""
    b, _obs = _run("mmap A 4K\nwrite A 0 as old\nfork c\npin A 0 as R readonly\n")
    mm = b.m.mms["p0"]
    vpn = mm.mappings["A"].start
    t = mm.pte_table(vpn)
    assert t is not None and not int(t.bits[vpn & 511]) & PTE_WRITE
    assert folio_maybe_dma_pinned(b.m, page_folio(b.m, int(t.pfn[vpn & 511])))


def test_readonly_pin_of_an_exclusive_page_pins_it_in_place():
    """gup_must_unshare() is false for a PageAnonExclusive page: GUP-fast pins it."""
    b, obs = _run("mmap A 8K\nwrite A all as a\npin A all as R readonly\n")
    mm = b.m.mms["p0"]
    start = mm.mappings["A"].start
    t = mm.pte_table(start)
    mapped = [int(t.pfn[(start & 511) + i]) for i in range(2)]
    (imu,) = b.m.pins["R"]
    assert imu.pages == mapped  # the very pages mapped: nothing was copied
    assert mm.has_pinned
    assert all(folio_maybe_dma_pinned(b.m, p) for p in mapped)


def test_readonly_longterm_pin_of_the_zero_page_replaces_it_with_an_anon_page():
    """gup_must_unshare(): a non-anon page (the shared zero page) in a COW mapping must
    be unshared for FOLL_LONGTERM; wp_page_copy() of the zero page allocates a
    zeroed anon page (MM_ANONPAGES + 1)."""
    _b, obs = _run("mmap A 8K\nread A all\npin A all as R readonly\nexpect R data zero\n")
    assert _expects(obs)[4] == ["zero", "zero"]
    pages = obs["final"]["procs"]["p0"]["maps"]["A"]["pages"]
    assert all("zero_page" not in p["flags"] and "anon" in p["flags"] for p in pages)
    assert obs["final"]["procs"]["p0"]["maps"]["A"]["smaps"]["Anonymous"] == 8


def test_readonly_longterm_pin_of_the_huge_zero_page_gets_a_new_thp():
    """follow_huge_pmd(): gup_must_unshare() on the huge zero page -> unshare fault ->
    do_huge_pmd_wp_page() -> do_huge_zero_wp_pmd(): a whole new THP, no split."""
    _b, obs = _run(
        "mmap A 2M\nmadvise A all hugepage\nread A 0\npin A 0-1 as R readonly\n"
        "expect vmstat thp_fault_alloc 1\nexpect vmstat thp_split_pmd 0\n"
    )
    assert all(e["ok"] for e in obs["events"] if e["op"] == "expect")


def test_pin_of_an_unmapped_page_fails_with_efault_and_keeps_no_pin():
    """io_pin_pages(), io_uring/memmap.c: a partial pin_user_pages_fast() is undone
    (unpin_user_pages()) and the registration fails with -EFAULT."""
    b, _obs = _run("mmap A 8K\nwrite A all as a\n")
    m, mm = b.m, b.m.mms["p0"]
    start = mm.mappings["A"].start
    folio = page_folio(m, int(mm.pte_table(start).pfn[start & 511]))
    ref = int(m.mem.refcount[folio])
    with pytest.raises(SyscallError) as e:
        io_uring_rsrc.io_sqe_buffer_register(m, mm, start, start + 3)  # page 2 is unmapped
    assert e.value.errno == "EFAULT"
    assert int(m.mem.refcount[folio]) == ref
    assert not folio_maybe_dma_pinned(m, folio)


def test_write_pin_of_a_vma_without_vm_write_fails_with_efault():
    """check_vma_flags(), mm/gup.c: FOLL_WRITE on a VMA without VM_WRITE is -EFAULT."""
    b, _obs = _run("mmap A 8K\nwrite A all as a\n")
    m, mm = b.m, b.m.mms["p0"]
    start = mm.mappings["A"].start
    mm.find_vma(start).flags &= ~VM_WRITE
    # GUP-fast refuses the writable PTEs only by pte_write(); make them R/O as
    # mprotect(PROT_READ) would.
    t = mm.pte_table(start)
    for i in range(2):
        t.bits[(start & 511) + i] &= ~PTE_WRITE
    with pytest.raises(SyscallError, match="EFAULT"):
        io_uring_rsrc.io_sqe_buffer_register(m, mm, start, start + 2)


def test_a_coalesced_thp_buffer_holds_one_pin_for_the_folio():
    """io_coalesce_buffer(), io_uring/rsrc.c: "Drop all but one ref, the entire folio
    will remain pinned": _pincount 1 for a 2M buffer in one THP."""
    b, _obs = _run("mmap A 2M\nmadvise A all hugepage\nwrite A all as a\npin A all as R\n")
    (imu,) = b.m.pins["R"]
    assert len(imu.pages) == 512 and len(imu.bvec) == 1
    assert b.m.pincount[imu.bvec[0]] == 1
