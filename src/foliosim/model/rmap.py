"""Reverse mapping of anonymous folios and try_to_unmap: mm/rmap.c."""

from __future__ import annotations

from enum import Flag, auto

import numpy as np

from foliosim.model import cost, huge_memory, mlock, swap
from foliosim.model import vma as mm_vma
from foliosim.model.fastpath import is_fast_run
from foliosim.model.barrier import smp_mb, smp_rmb
from foliosim.model.errors import InvariantError
from foliosim.model.internal import (
    FPB_RESPECT_SOFT_DIRTY,
    FPB_RESPECT_WRITE,
    folio_pte_batch_flags,
)
from foliosim.model.machine import Machine
from foliosim.model.mm import (
    folio_get,
    folio_mapcount,
    folio_mapped,
    folio_maybe_dma_pinned,
    folio_nr_pages,
    folio_put_refs,
)
from foliosim.model.page_flags import (
    folio_test_dirty,
    folio_test_large,
    folio_test_swapbacked,
    folio_test_swapcache,
    page_folio,
)
from foliosim.model.page_ref import folio_ref_count
from foliosim.model.trace import folio_name, vpn_name
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_DEVICE_EXCLUSIVE,
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PTE_WRITE,
    PTE_YOUNG,
    VM_DROPPABLE,
    VM_LOCKED,
    AnonVma,
    PageTable,
    PG_anon,
    PG_anon_exclusive,
    PG_dirty,
    PG_swapbacked,
    PG_swapcache,
    Vma,
    is_device_exclusive_entry,
    pte_maps_page,
)
from foliosim.model.vmstat import count_mthp_stat


class TTU(Flag):
    """enum ttu_flags, include/linux/rmap.h."""

    NONE = 0
    SPLIT_HUGE_PMD = auto()
    IGNORE_MLOCK = auto()
    SYNC = auto()
    HWPOISON = auto()
    BATCH_FLUSH = auto()


def anon_vma_alloc(m: Machine) -> AnonVma:
    """anon_vma_alloc(), mm/rmap.c, Linux 6.18: a new, empty anon_vma."""
    m._anon_vma_ids += 1
    av = m.anon_vmas[m._anon_vma_ids] = AnonVma(m._anon_vma_ids)
    return av


def anon_vma_chain_link(vma: Vma, av: AnonVma) -> None:
    """anon_vma_chain_link(), mm/rmap.c, Linux 6.18: link the VMA into the anon_vma."""
    vma.chain.append(av)
    # anon_vma_interval_tree_insert(): ordered by vm_pgoff, an equal key after
    # the ones already there.
    i = len(av.vmas)
    while i and av.vmas[i - 1].pgoff > vma.pgoff:
        i -= 1
    av.vmas.insert(i, vma)


def anon_vma_clone(dst: Vma, src: Vma) -> None:
    """anon_vma_clone(), mm/rmap.c, Linux 6.18: dst joins every anon_vma src is linked into."""
    for av in src.chain:
        if av not in dst.chain:
            anon_vma_chain_link(dst, av)


def unlink_anon_vmas(vma: Vma) -> None:
    """unlink_anon_vmas(), mm/rmap.c, Linux 6.18: the VMA leaves every anon_vma it is linked into."""
    for av in vma.chain:
        av.vmas.remove(vma)
    vma.chain = []
    vma.anon_vma = None


def anon_vma_prepare(m: Machine, vma: Vma) -> None:
    """__anon_vma_prepare(), mm/rmap.c, Linux 6.18: give the VMA an anon_vma on its first anonymous fault."""
    if vma.anon_vma is None:
        # A neighbour's, when a later merge could join the two VMAs again.
        av = mm_vma.find_mergeable_anon_vma(vma)
        if av is None:
            av = anon_vma_alloc(m)
        vma.anon_vma = av
        anon_vma_chain_link(vma, av)


def folio_mms(m: Machine, folio: int) -> set[int]:
    """The mms that map some page of the folio.

    Model: what the _mm_ids of struct folio track (CONFIG_MM_ID, include/linux/mm_types.h,
    Linux 6.18), found by the rmap walk.
    """
    mms: set[int] = set()
    for vma, index in rmap_walk_anon(m, folio):
        mm = vma.mm
        if id(mm) in mms:
            continue
        pmd = mm.pmds.get(index >> 9)
        if pmd is not None and pmd[1] == folio:
            mms.add(id(mm))
            continue
        for vpn, _t, _i, _page in page_vma_mapped_walk(m, folio, vma, index):
            mms.add(id(mm))
            break
    return mms


def folio_maybe_mapped_shared(m: Machine, folio: int) -> bool:
    """folio_maybe_mapped_shared(), include/linux/mm.h, Linux 6.18 (CONFIG_MM_ID)."""
    mapcount = folio_mapcount(m, folio)
    if not m.mem.order[folio]:
        return mapcount > 1
    if mapcount <= 1:
        return False
    # Model: the MM-id slots are exact while at most two mms map the folio;
    # the model asks the rmap which mms map it.
    return len(folio_mms(m, folio)) > 1


def folio_add_new_anon_rmap(
    m: Machine, folio: int, vma: Vma, vpn: int, exclusive: bool = True, pmd: bool = False
) -> None:
    """folio_add_new_anon_rmap(), mm/rmap.c, Linux 6.18 (RMAP_EXCLUSIVE unless told).

    pmd: RMAP_LEVEL_PMD, one entire mapping; PageAnonExclusive on the head only.
    """
    mem = m.mem
    nr = folio_nr_pages(m, folio)
    anon_vma_prepare(m, vma)
    flags = PG_anon
    # Since 9651fcedf7b9 (v6.11) droppable folios are never swap-backed.
    if not (vma.flags & VM_DROPPABLE and m.profile.has("map_droppable")):
        flags |= PG_swapbacked
    mem.flags[folio] |= flags
    mem.anon_vma[folio] = vma.anon_vma.id
    mem.index[folio] = linear_page_index(vma, vpn)
    if pmd:
        m.entire_mapcount[folio] = 1
        if exclusive:
            mem.flags[folio] |= PG_anon_exclusive
    else:
        for page in range(folio, folio + nr):
            mem.mapcount[page] = 1
            if exclusive:
                mem.flags[page] |= PG_anon_exclusive
    if nr > 1:
        count_mthp_stat(m, int(mem.order[folio]), "nr_anon", 1)


def folio_add_anon_rmap_ptes(
    m: Machine, folio: int, page: int, nr: int, vma: Vma, exclusive: bool
) -> None:
    """folio_add_anon_rmap_ptes(), mm/rmap.c, Linux 6.18."""
    mem = m.mem
    for p in range(page, page + nr):
        mem.mapcount[p] += 1
        if exclusive:
            mem.flags[p] |= PG_anon_exclusive


def folio_remove_rmap_ptes(m: Machine, folio: int, page: int, nr: int) -> None:
    """folio_remove_rmap_ptes(), mm/rmap.c, Linux 6.18 (CONFIG_PAGE_MAPCOUNT)."""
    mem = m.mem
    mapcount = mem.mapcount
    if not mem.order[folio]:
        cost.count("mapcount_atomic")
        mapcount[page] -= 1
        return
    # Each page's _mapcount, then the folio's _large_mapcount and _nr_pages_mapped.
    cost.count("mapcount_atomic", nr + 2)
    last = 0
    for p in range(page, page + nr):
        mapcount[p] -= 1
        last += not mapcount[p]
    # Queue an anon large folio for deferred split when at least one page got
    # unmapped and at least one is still PTE-mapped (_nr_pages_mapped; a PMD
    # mapping keeps the ENTIRELY_MAPPED bias, so nothing is "newly unmapped").
    if (
        last
        and not mem.flags[folio] & PG_swapcache  # deferred_split_folio() ignores them
        and not m.entire_mapcount.get(folio)
        and mem.flags[folio] & PG_anon
        and not m.deferred_split.get(folio)
        and any(mapcount[folio : folio + (1 << mem.order[folio])])
    ):
        huge_memory.deferred_split_folio(m, folio, partially_mapped=True)


def folio_remove_rmap_pmd(m: Machine, folio: int) -> None:
    """folio_remove_rmap_pmd(), mm/rmap.c, Linux 6.18."""
    mem = m.mem
    entire = m.entire_mapcount.get(folio, 0) - 1
    if entire:
        m.entire_mapcount[folio] = entire
        return
    m.entire_mapcount.pop(folio, None)
    nr = folio_nr_pages(m, folio)
    # Pages still mapped by PTEs stay mapped: partially mapped if some but not all.
    still = sum(1 for p in range(folio, folio + nr) if mem.mapcount[p])
    if 0 < still < nr and mem.flags[folio] & PG_anon and not m.deferred_split.get(folio):
        huge_memory.deferred_split_folio(m, folio, partially_mapped=True)


def folio_try_dup_anon_rmap_pte(m: Machine, folio: int, page: int, src: Vma) -> bool:
    """folio_try_dup_anon_rmap_pte() -> __folio_try_dup_anon_rmap(), include/linux/rmap.h, Linux 6.18: False: must copy (maybe pinned)."""
    mem = m.mem
    if mem.flags[page] & PG_anon_exclusive:
        # folio_needs_cow_for_dma(): a pinned exclusive page is copied for the child.
        if src.mm.has_pinned and folio_maybe_dma_pinned(m, folio):
            return False
        mem.flags[page] &= ~PG_anon_exclusive
    mem.mapcount[page] += 1
    return True


def folio_try_share_anon_rmap_pte(m: Machine, folio: int, page: int) -> bool:
    """folio_try_share_anon_rmap_pte(), include/linux/rmap.h, Linux 6.18: clear PageAnonExclusive unless maybe pinned."""
    cost.count("anon_share")
    if folio_maybe_dma_pinned(m, folio):
        return False
    m.mem.flags[page] &= ~PG_anon_exclusive
    return True


def make_device_exclusive(m: Machine, vma: Vma, vpn: int) -> None:
    """make_device_exclusive(), mm/rmap.c, Linux 6.18: the present PTE at vpn becomes device-exclusive.

    The folio stays mapped (mapcount and RSS unchanged); a dirty PTE's bit moves
    to the folio.  Model: called from Python only (HMM's test driver in Linux).
    """
    t = vma.mm.pte_table(vpn)
    assert t is not None
    i = vpn & 511
    bits = int(t.bits[i])
    assert bits & PTE_PRESENT and not bits & PTE_SPECIAL, "make_device_exclusive: not a page"
    if bits & PTE_DIRTY:
        m.mem.flags[page_folio(m, int(t.pfn[i]))] |= PG_dirty  # folio_mark_dirty()
    t.bits[i] = PTE_DEVICE_EXCLUSIVE | (bits & (PTE_WRITE | PTE_SOFT_DIRTY))


def folio_try_share_anon_rmap_ptes(m: Machine, folio: int, page: int, nr: int) -> bool:
    """folio_try_share_anon_rmap_ptes(): share nr exclusive pages at once unless maybe pinned.

    Not in Linux 6.18: introduced by Dev Jain's "Optimize anonymous large folio
    unmapping" (v1 patch 8/9, March 2026) for the batched swap unmap; one
    barrier and one pin check for the batch.
    """
    cost.count("anon_share")
    if folio_maybe_dma_pinned(m, folio):
        return False
    flags = m.mem.flags
    for p in range(page, page + nr):
        flags[p] &= ~PG_anon_exclusive
    return True


def folio_move_anon_rmap(m: Machine, folio: int, vma: Vma) -> None:
    """folio_move_anon_rmap(), mm/rmap.c, Linux 6.18: the folio now belongs to this VMA's anon_vma only."""
    anon_vma_prepare(m, vma)
    m.mem.anon_vma[folio] = vma.anon_vma.id


def linear_page_index(vma: Vma, vpn: int) -> int:
    """linear_page_index(), include/linux/pagemap.h, Linux 6.18: the page's index, by vm_pgoff."""
    return vma.pgoff + (vpn - vma.start)


def vma_address_of(vma: Vma, index: int) -> int:
    """The vpn where page `index` would be in the VMA: vma_address(), mm/internal.h, Linux 6.18
    (unclamped: a large folio may start below the VMA).  Equal to index until mremap() moves a VMA."""
    return vma.start + (index - vma.pgoff)


def rmap_walk_anon(m: Machine, folio: int):
    """The (vma, vpn of the folio's first page there) pairs that may map the folio, in anon_vma tree order.

    rmap_walk_anon(), mm/rmap.c, Linux 6.18.
    """
    av = m.anon_vmas.get(int(m.mem.anon_vma[folio]))
    if av is None:
        return
    index = int(m.mem.index[folio])
    nr = folio_nr_pages(m, folio)
    for vma in list(av.vmas):
        # anon_vma_interval_tree_foreach(): the VMAs whose pgoff range meets the folio's.
        if vma.pgoff < index + nr and index < vma.pgoff + (vma.end - vma.start):
            cost.count("rmap_vma")
            yield vma, vma_address_of(vma, index)


def page_vma_mapped_walk(m: Machine, folio: int, vma: Vma, index: int):
    """The PTEs of this VMA that map pages of the folio: (vpn, table, slot, page).

    page_vma_mapped_walk(), mm/page_vma_mapped.c, Linux 6.18.
    """
    nr = folio_nr_pages(m, folio)
    pgtables = vma.mm.pgtables
    if nr == 1:
        t = pgtables.get(index >> 9)
        if t is not None and vma.start <= index < vma.end:
            i = index & 511
            cost.count("ptep_get")  # check_pte()
            if pte_maps_page(t.bits[i]) and t.pfn[i] == folio:
                cost.count("pvmw_step")
                yield index, t, i, folio
        return
    t = None
    for vpn in range(max(index, vma.start), min(index + nr, vma.end)):
        i = vpn & 511
        if t is None or not i:
            t = pgtables.get(vpn >> 9)
        if t is None:
            continue
        cost.count("ptep_get")  # check_pte()
        page = folio + (vpn - index)
        # check_pte(): a present PTE, or a device-exclusive entry, of this page.
        if pte_maps_page(t.bits[i]) and t.pfn[i] == page:
            cost.count("pvmw_step")
            yield vpn, t, i, page


def try_to_unmap(m: Machine, folio: int, flags: TTU) -> None:
    """try_to_unmap(), mm/rmap.c, Linux 6.18: unmap from every VMA until not mapped."""
    for vma, index in rmap_walk_anon(m, folio):
        if not try_to_unmap_one(m, folio, vma, index, flags):
            break
        if not folio_mapped(m, folio):  # .done = folio_not_mapped
            break


def folio_unmap_pte_batch(m: Machine, folio: int, vma: Vma, vpn: int, t: PageTable, i: int) -> int:
    """folio_unmap_pte_batch(), mm/rmap.c, Linux 6.18.y: 1 unless a lazyfree large folio."""
    if not folio_test_large(m, folio) or folio_test_swapbacked(m, folio):
        return 1
    # Large lazyfree folios: the PTE run mapping consecutive pages, bounded by the
    # VMA and the page table (ddd05742b45b, v6.16).
    max_nr = min(vma.end, (vpn | 511) + 1) - vpn
    # Since Linux commit 29f40594a281 ("mm/rmap: fix incorrect pte restoration
    # for lazyfree folios") (v7.0-rc, in 6.18.y: the stable tree at 6.18.35 has
    # it), write and soft-dirty differences end the batch, so a restore of the
    # batch never makes a read-only PTE writable; before it they did not (the
    # bug-pte-restore variant).
    return folio_pte_batch_flags(
        t,
        i,
        t.pfn[i],
        folio,
        folio_nr_pages(m, folio),
        max_nr,
        FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY,
    )


def validate_pte_batch(m: Machine, folio: int, vma: Vma, vpn: int, nr: int) -> None:
    """Raise InvariantError if a batch of nr PTEs from vpn leaves its VMA or page table.

    In Linux such a batch reads (and clears) memory past the page-table page,
    or another VMA's PTEs (the bug ddd05742b45b fixed); the model refuses it.
    """
    end = min(vma.end, (vpn | 511) + 1)
    if vpn + nr > end:
        what = "the VMA's end" if vma.end < (vpn | 511) + 1 else "the page table's end"
        raise InvariantError(
            f"validate_pte_batch: folio {folio_name(m, folio)}: a batch of {nr} PTEs from "
            f"{vpn_name(vma.mm, vpn)} crosses {what} ({end - vpn} PTEs left)"
        )


def get_and_clear_ptes(t: PageTable, i: int, nr: int) -> int:
    """get_and_clear_ptes(), include/linux/pgtable.h, Linux 6.18: clear nr PTEs, return the first with young/dirty OR-ed in."""
    bits = int(t.bits[i])
    for j in range(i + 1, i + nr):
        bits |= int(t.bits[j]) & (PTE_DIRTY | PTE_YOUNG)
    t.bits_v[i : i + nr] = 0
    cost.count("pte_clear", nr)
    return bits


def flush_tlb_range(vma: Vma, vpn: int, nr: int) -> None:
    """The TLB flush try_to_unmap_one() asks for after clearing nr PTEs (mm/rmap.c, 6.18).

    set_tlb_ubc_flush_pending() under TTU_BATCH_FLUSH, else flush_tlb_range().
    Model: no TLB is modelled; the request is counted (`foliosim cost`).
    """
    cost.count("tlb_flush")
    cost.count("tlb_flush_pages", nr)


def set_ptes(t: PageTable, i: int, bits: int, pfn: int, nr: int) -> None:
    """set_ptes(), include/linux/pgtable.h, Linux 6.18: nr PTEs from one value, the pfn advancing by one per entry."""
    t.bits_v[i : i + nr] = bits
    t.pfn_v[i : i + nr] = np.arange(pfn, pfn + nr)
    cost.count("pte_write", nr)


def lazyfree_range(
    m: Machine, vma: Vma, folio: int, t: PageTable, i: int, pteval: int, pfn: int, nr_pages: int
) -> bool:
    """Decide a lazyfree folio whose nr_pages PTEs were just cleared: True if discarded.
    The lazyfree branch of try_to_unmap_one(), mm/rmap.c, Linux 6.18.

    The lazyfree branch of try_to_unmap_one(), mm/rmap.c, Linux 6.18, written as
    the seed review asked (lazyfree_range() returning bool).  False: the PTEs
    were restored and the folio must be kept (redirtied, or an extra reference).
    """
    mm = vma.mm
    # smp_mb(): clear PTE; barrier; read refcount -- pairs with GUP-fast's
    # inc refcount; barrier; read PTE.  `foliosim race` checks the orders.
    smp_mb()
    ref_count = folio_ref_count(m, folio)
    map_count = folio_mapcount(m, folio)
    # smp_rmb(): order the refcount read before the PG_dirty read (__remove_mapping).
    smp_rmb()
    if folio_test_dirty(m, folio) and not vma.flags & VM_DROPPABLE:
        # Redirtied either through the page table or a previously taken GUP reference.
        set_ptes(t, i, pteval, pfn, nr_pages)
        m.mem.flags[folio] |= PG_swapbacked
        if m.tracing:
            how = "through the page table" if pteval & PTE_DIRTY else "PG_dirty (a GUP write)"
            m.trace(
                "try_to_unmap_one",
                f"lazyfree folio {folio_name(m, folio)} kept: dirty {how}; swapbacked again",
            )
        return False
    if ref_count != 1 + map_count:
        # An extra reference (GUP or speculative): act as if nothing happened; a
        # later pass sees whether the holder dirtied it.
        set_ptes(t, i, pteval, pfn, nr_pages)
        # Since faeb2831b517 ("mm: set folio swapbacked iff folios are dirty in
        # try_to_unmap_one") (v6.15) PG_swapbacked stays clear here; before it
        # was set (the pre-6.15-swapbacked variant).
        if m.tracing:
            m.trace(
                "try_to_unmap_one",
                f"lazyfree folio {folio_name(m, folio)} kept: extra "
                f"reference (refcount {ref_count} != 1 + mapcount {map_count})",
            )
        return False
    mm.counters[MM_ANONPAGES] -= nr_pages
    if m.tracing:
        m.trace(
            "try_to_unmap_one",
            f"lazyfree folio {folio_name(m, folio)} discarded: clean, no extra reference",
        )
    return True


# The swap-backed branch of try_to_unmap_one() for one PTE already read as pteval:
# folio_dup_swap() (swap_duplicate()), share the page, write the swap PTE.  False
# if the page is exclusive and maybe pinned: the slot reference is dropped again
# and the caller restores the PTE.
def _set_swap_pte(
    m: Machine, folio: int, page: int, t: PageTable, i: int, pteval: int, offset: int
) -> bool:
    swap.swap_duplicate(m, offset)
    exclusive = bool(m.mem.flags[page] & PG_anon_exclusive)
    if exclusive and not folio_try_share_anon_rmap_pte(m, folio, page):
        swap.swap_free_nr(m, offset)
        return False
    t.bits[i] = PTE_SWAP | (PTE_SWP_EXCLUSIVE if exclusive else 0) | (pteval & PTE_SOFT_DIRTY)
    t.pfn[i] = offset  # set_pte_at()
    cost.count("pte_write")
    return True


def _set_swap_ptes(m: Machine, page: int, t: PageTable, i: int, offset: int, nr: int) -> int:
    """_set_swap_pte() for nr pages of a folio that is not maybe pinned (sharing cannot fail):
    swap_duplicate() of each slot, each page shared, the swap PTEs written; the OR of the old PTEs."""
    m.swap.swap_map_v[offset : offset + nr] += 1
    flags = m.mem.view("flags")[page : page + nr]
    exclusive = (flags & PG_anon_exclusive) != 0
    flags &= np.uint32(0xFFFFFFFF ^ PG_anon_exclusive)  # folio_try_share_anon_rmap_pte()
    old = t.bits_v[i : i + nr].copy()
    t.bits_v[i : i + nr] = PTE_SWAP | np.where(exclusive, PTE_SWP_EXCLUSIVE, 0) | (old & PTE_SOFT_DIRTY)
    t.pfn_v[i : i + nr] = np.arange(offset, offset + nr, dtype=np.int32)
    return int(np.bitwise_or.reduce(old))


def _unmap_swapbacked_run(
    m: Machine, vma: Vma, folio: int, vpn: int, t: PageTable, i: int, page: int
) -> int:
    """The swap-backed branch of try_to_unmap_one() for a run of a large folio's PTEs.

    Model: Linux 6.18 converts one PTE per iteration (folio_unmap_pte_batch()
    returns 1 for swap-backed folios); without a pin no iteration can fail, so
    the run up to the VMA or page-table end is converted at once, with the
    same result.  Returns the number of PTEs converted.
    """
    mem = m.mem
    mm = vma.mm
    end = min(vma.end, (vpn | 511) + 1, vpn + folio + folio_nr_pages(m, folio) - page) - vpn
    bits, pfns = t.bits, t.pfn
    nr = 1
    while nr < end:
        b = bits[i + nr]
        if not b & PTE_PRESENT or b & PTE_SPECIAL or pfns[i + nr] != page + nr:
            break
        nr += 1
    offset = mem.swap[folio] + (page - folio)
    dirty = 0
    if is_fast_run(m, nr):
        # _set_swap_pte() on each PTE of the run at once (numpy on the same arrays).
        dirty = _set_swap_ptes(m, page, t, i, offset, nr)
    else:
        for k in range(nr):
            pteval = bits[i + k]
            dirty |= pteval
            # Not maybe pinned (the caller checked): sharing cannot fail.
            _set_swap_pte(m, folio, page + k, t, i + k, pteval, offset + k)
    if dirty & PTE_DIRTY:
        mem.flags[folio] |= PG_dirty  # folio_mark_dirty()
    mm.counters[MM_ANONPAGES] -= nr
    mm.counters[MM_SWAPENTS] += nr
    if m.tracing:
        m.trace(
            "try_to_unmap_one",
            f"folio {folio_name(m, folio)} pages {page - folio}-{page - folio + nr - 1}"
            f" -> swap slots {offset}-{offset + nr - 1}",
        )
    _discard(m, vma, folio, page, nr)
    return nr


def _unmap_swapbacked_ptes(
    m: Machine, vma: Vma, folio: int, page: int, t: PageTable, i: int, pteval: int, nr_pages: int
) -> bool:
    """The swap-backed branch of try_to_unmap_one(), mm/rmap.c, Linux 6.18: swap PTEs written.

    Inline in Linux 6.18, where nr_pages is always 1 here (folio_unmap_pte_batch()
    does not batch swap-backed folios).  False: maybe pinned, the PTE restored
    (walk_abort).  Dev Jain's batching series turns it into ttu_anon_folio().
    """
    mm = vma.mm
    offset = int(m.mem.swap[folio]) + (page - folio)
    if not _set_swap_pte(m, folio, page, t, i, pteval, offset):
        set_ptes(t, i, pteval, page, nr_pages)
        if m.tracing:
            m.trace("try_to_unmap_one", f"folio {folio_name(m, folio)} maybe pinned: not unmapped")
        return False
    mm.counters[MM_ANONPAGES] -= 1
    mm.counters[MM_SWAPENTS] += 1
    if m.tracing:
        exclusive = " exclusive" if t.bits[i] & PTE_SWP_EXCLUSIVE else ""
        m.trace(
            "try_to_unmap_one",
            f"folio {folio_name(m, folio)} page {page - folio} -> swap slot {offset}{exclusive}",
        )
    return True


# The `discard:` label of try_to_unmap_one(): drop the rmap and the references
# of the nr_pages just unmapped (and the mlock batch in a VM_LOCKED VMA).
def _discard(m: Machine, vma: Vma, folio: int, page: int, nr: int) -> None:
    folio_remove_rmap_ptes(m, folio, page, nr)
    if vma.flags & VM_LOCKED:
        mlock.mlock_drain_local(m)
    folio_put_refs(m, folio, nr)


def try_to_unmap_one(m: Machine, folio: int, vma: Vma, index: int, flags: TTU) -> bool:
    """try_to_unmap_one(), mm/rmap.c, Linux 6.18 (anonymous folios, PTE-mapped)."""
    mm = vma.mm
    mem = m.mem
    pmd = mm.pmds.get(index >> 9) if mem.order[folio] == 9 else None
    if pmd is not None and pmd[1] == folio:
        if vma.flags & VM_LOCKED and not flags & TTU.IGNORE_MLOCK:
            return False  # PMD mapping: mlock_vma_folio() at once (model: stays mlocked)

        if not mem.flags[folio] & PG_swapbacked and m.profile.has("lazyfree_pmd_discard"):
            # Since Linux v6.11 ("mm/vmscan: avoid split lazyfree THP during
            # shrink_folio_list") a lazyfree PMD is discarded whole; the
            # 6.18.44-fc build splits it (profile linux-6.18.44-fc).
            return huge_memory.unmap_huge_pmd_locked(m, vma, folio)
        if not flags & TTU.SPLIT_HUGE_PMD:
            return False
        huge_memory.split_huge_pmd_locked(m, vma, index >> 9)
    # The walk reads each PTE when it gets there: entries cleared by an earlier
    # batch of this walk are skipped.
    for vpn, t, i, page in page_vma_mapped_walk(m, folio, vma, index):
        if not pte_maps_page(t.bits[i]) or int(t.pfn[i]) != page:
            continue  # cleared by an earlier batch of this walk
        nr_pages = 1  # reset every iteration (CVE-2026-63950 fix)
        if vma.flags & VM_LOCKED and not flags & TTU.IGNORE_MLOCK:
            if not folio_test_large(m, folio):
                mlock.mlock_folio(m, folio)
            if m.tracing:
                m.trace(
                    "try_to_unmap_one",
                    f"folio {folio_name(m, folio)} in a VM_LOCKED VMA: mlocked, not unmapped",
                )
            return False
        if (
            mem.order[folio]
            and mem.flags[folio] & PG_swapbacked
            and folio_test_swapcache(m, folio)
            and not folio_maybe_dma_pinned(m, folio)
            and cost.shortcuts_allowed()
        ):
            # Model: the result of this loop's swap-backed iterations at once
            # (not while counting or under a variant: cost.shortcuts_allowed()).
            nr_pages = _unmap_swapbacked_run(m, vma, folio, vpn, t, i, page)
            if nr_pages == folio_nr_pages(m, folio):
                break  # walk_done
            continue
        cost.count("ptep_get")  # pteval = ptep_get(pvmw.pte)
        if is_device_exclusive_entry(t.bits[i]):
            # A non-present entry: pte_clear(), nr_pages as set above.
            pteval = get_and_clear_ptes(t, i, 1)
        else:
            nr_pages = folio_unmap_pte_batch(m, folio, vma, vpn, t, i)
            validate_pte_batch(m, folio, vma, vpn, nr_pages)
            pteval = get_and_clear_ptes(t, i, nr_pages)
            flush_tlb_range(vma, vpn, nr_pages)
        if pteval & PTE_DIRTY:
            mem.flags[folio] |= PG_dirty  # folio_mark_dirty()
        if mem.flags[folio] & PG_anon:
            swapbacked = folio_test_swapbacked(m, folio)
            if swapbacked != folio_test_swapcache(m, folio):
                # WARN_ON_ONCE: a swapbacked folio must be in the swap cache here.
                set_ptes(t, i, pteval, page, nr_pages)
                return False
            if not swapbacked:
                if not lazyfree_range(m, vma, folio, t, i, pteval, page, nr_pages):
                    return False  # walk_abort
            elif not _unmap_swapbacked_ptes(m, vma, folio, page, t, i, pteval, nr_pages):
                return False  # walk_abort
        _discard(m, vma, folio, page, nr_pages)
        if nr_pages == folio_nr_pages(m, folio):
            break  # walk_done
    return True


__all__ = [
    "TTU",
    "folio_get",
    "lazyfree_range",
    "try_to_unmap",
    "try_to_unmap_one",
]


# --- memcg reclaim (issue 13) -------------------------------------------------------


def folio_referenced(m: Machine, folio: int) -> tuple[int, int]:
    """The mappings in which a PTE (or PMD) of the folio was young, and their vm_flags.

    folio_referenced() and folio_referenced_one(), mm/rmap.c, Linux 6.18 (non-MGLRU):
    every young bit the walk meets is cleared (ptep_clear_flush_young_notify()),
    and a VMA counts once however many of its PTEs were young.  Model: every VMA
    belongs to the target memcg (invalid_folio_referenced_vma() skips none), no
    VMA has VM_SEQ_READ/VM_RAND_READ, and PG_young (page idle tracking) is never set.
    """
    if not folio_mapped(m, folio):
        return 0, 0
    referenced = 0
    vm_flags = 0
    for vma, index in rmap_walk_anon(m, folio):
        if vma.flags & VM_LOCKED:
            # folio_referenced_one() mlocks the folio and ends the walk: the
            # caller activates it (the model leaves the mlock to the mlock paths).
            return referenced, vm_flags | VM_LOCKED
        young = 0
        pmd = vma.mm.pmds.get(index >> 9)
        if pmd is not None and pmd[1] == folio:
            if pmd[0] & PTE_YOUNG:
                pmd[0] &= ~PTE_YOUNG  # pmdp_clear_flush_young_notify()
                young += 1
        else:
            for _vpn, t, i, _page in page_vma_mapped_walk(m, folio, vma, index):
                if t.bits[i] & PTE_YOUNG:
                    t.bits[i] &= ~PTE_YOUNG
                    young += 1
        if young:
            referenced += 1
            vm_flags |= vma.flags & ~VM_LOCKED
    return referenced, vm_flags


# --- end memcg ----------------------------------------------------------------------
