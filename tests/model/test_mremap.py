"""model/mremap.py: mm/mremap.c's moves, page table by page table or PTE by PTE."""

import pytest

from foliosim.model import mremap
from foliosim.model.errors import SyscallError

from tests.model.helpers import Sim


def test_an_aligned_move_takes_the_page_table_itself():
    sim = Sim()
    sim.mmap("A", 512)
    sim.write("A", 0, 511)
    table = sim.mm.pte_table(sim.mm.mappings["A"].start)
    mremap.do_mremap(sim.m, sim.mm, "A", 512, move=True, offset=0)
    assert sim.mm.pte_table(sim.mm.mappings["A"].start) is table  # move_normal_pmd()


def test_a_misaligned_move_moves_ptes_and_rmap_finds_the_folio_at_its_new_address():
    sim = Sim(mthp_kb=16)
    sim.mmap("A", 4)
    sim.write("A", 0)
    old = sim.mm.mappings["A"].start
    mremap.do_mremap(sim.m, sim.mm, "A", 4, move=True, offset=510)
    new = sim.mm.mappings["A"].start
    assert new & 511 == 510 and new != old
    t0, t1 = sim.mm.pte_table(new), sim.mm.pte_table(new + 2)
    assert t0 is not t1  # the folio now straddles two page tables
    folio = t0.pfn[new & 511]
    from foliosim.model import rmap

    assert [v for _vma, v in rmap.rmap_walk_anon(sim.m, folio)] == [new]


def test_a_grow_in_place_needs_one_vma_ending_where_the_mapping_does():
    sim = Sim()
    sim.mmap("A", 4)
    start = sim.mm.mappings["A"].start
    sim.madvise("A", 0, 0, "nohugepage")  # two VMAs now
    with pytest.raises(SyscallError) as e:
        mremap.do_mremap(sim.m, sim.mm, "A", 8, move=False, offset=0)
    assert e.value.errno == "EFAULT"
    assert sim.mm.mappings["A"].start == start
