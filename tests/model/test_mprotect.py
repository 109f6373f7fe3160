"""model/mprotect.py: mm/mprotect.c's protection changes, PTE by PTE and batch by batch."""

from foliosim.model import fork, mprotect
from foliosim.model.types import PTE_DIRTY, PTE_WRITE, PTE_YOUNG, VM_ACCOUNT, VM_READ, VM_WRITE

from tests.model.helpers import Sim

RW = VM_READ | VM_WRITE


def _bits(sim, name, k):
    vpn = sim.mm.mappings[name].start + k
    return sim.mm.pte_table(vpn).bits[vpn & 511]


def test_readwrite_again_makes_exclusive_ptes_writable_without_a_fault():
    sim = Sim()
    sim.mmap("A", 4)
    sim.write("A", 0, 1, 2, 3)
    start = sim.mm.mappings["A"].start
    mprotect.do_mprotect_pkey(sim.m, sim.mm, start, start + 4, VM_READ)
    assert not any(_bits(sim, "A", k) & PTE_WRITE for k in range(4))
    mprotect.do_mprotect_pkey(sim.m, sim.mm, start, start + 4, RW)
    assert all(_bits(sim, "A", k) & PTE_WRITE for k in range(4))
    assert len(sim.mm.vmas) == 1  # split by the first call, merged back by the second


def test_pages_shared_after_fork_stay_read_only_when_made_writable_again():
    sim = Sim()
    sim.mmap("A", 2)
    sim.write("A", 0, 1)
    fork.kernel_clone(sim.m, sim.mm, "c")
    start = sim.mm.mappings["A"].start
    mprotect.do_mprotect_pkey(sim.m, sim.mm, start, start + 2, RW)
    assert not _bits(sim, "A", 0) & PTE_WRITE  # not anon-exclusive: the write must fault


def test_a_large_folio_batch_shares_its_young_and_dirty_bits():
    sim = Sim(mthp_kb=16)
    sim.mmap("A", 4)
    sim.write("A", 0)  # one 16K folio; only page 0 dirty and young by the store
    start = sim.mm.mappings["A"].start
    t = sim.mm.pte_table(start)
    i = start & 511
    for k in range(1, 4):
        t.bits[i + k] &= ~(PTE_DIRTY | PTE_YOUNG)
    mprotect.do_mprotect_pkey(sim.m, sim.mm, start, start + 4, VM_READ)
    # modify_prot_start_ptes() gathered the batch's bits; commit wrote them to all four.
    assert all(t.bits[i + k] & PTE_DIRTY and t.bits[i + k] & PTE_YOUNG for k in range(4))


def test_a_read_only_mapping_made_writable_is_charged():
    sim = Sim()
    mp = sim.mmap("A", 2)
    mp.flags &= ~(VM_WRITE | VM_ACCOUNT)  # as mmap(PROT_READ) makes it
    mprotect.do_mprotect_pkey(sim.m, sim.mm, mp.start, mp.start + 1, RW)
    assert sim.mm.find_vma(mp.start).flags & VM_ACCOUNT
    assert not sim.mm.find_vma(mp.start + 1).flags & VM_ACCOUNT
