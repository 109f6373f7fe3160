"""swapoff(2): try_to_unuse() of mm/swapfile.c, Linux 6.18.

Kept apart from swap.py because it maps pages (rmap, LRU) while swap.py sits
below those modules.
"""

from __future__ import annotations

from foliosim.model.lru import folio_get, folio_put
from foliosim.model.machine import Machine
from foliosim.model.rmap import folio_add_anon_rmap_ptes, folio_add_new_anon_rmap
from foliosim.model.swap import (
    SwapInfo,
    folio_free_swap,
    swap_cache_get_folio,
    swap_free_nr,
    swap_vma_readahead,
)
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_PRESENT,
    PTE_SOFT_DIRTY,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PG_anon,
)


def unuse_pte(m: Machine, vma, vpn: int, t, i: int, folio: int) -> None:
    """unuse_pte(), mm/swapfile.c, Linux 6.18: map the folio read-only and old."""
    old = int(t.bits[i])
    offset = int(t.pfn[i])
    exclusive = bool(old & PTE_SWP_EXCLUSIVE)
    vma.mm.counters[MM_SWAPENTS] -= 1
    vma.mm.counters[MM_ANONPAGES] += 1
    folio_get(m, folio)
    if not m.mem.flags[folio] & PG_anon:
        folio_add_new_anon_rmap(m, folio, vma, vpn, exclusive=exclusive)
    else:
        folio_add_anon_rmap_ptes(m, folio, folio, 1, vma, exclusive)
    # vm_page_prot of a private mapping is read-only: a later write takes a COW fault.
    t.bits[i] = PTE_PRESENT | (old & PTE_SOFT_DIRTY)
    t.pfn[i] = folio
    swap_free_nr(m, offset)


def swapoff(m: Machine) -> None:
    """try_to_unuse(): bring every swapped page back, then the device is gone."""
    for mm in list(m.mms.values()):
        for vma in list(mm.vmas):
            for vpn in range(vma.start, vma.end):
                t = mm.pte_table(vpn)
                if t is None or not int(t.bits[vpn & 511]) & PTE_SWAP:
                    continue
                offset = int(t.pfn[vpn & 511])
                # unuse_pte_range(), 6.18: a plain swap-cache lookup (a readahead
                # folio keeps PG_readahead), else swapin_readahead() around it.
                folio = swap_cache_get_folio(m, offset)
                if folio >= 0:
                    folio_get(m, folio)
                else:
                    folio = swap_vma_readahead(m, vma, vpn, offset)
                unuse_pte(m, vma, vpn, t, vpn & 511, folio)
                folio_free_swap(m, folio)
                folio_put(m, folio)
    si = m.swap
    for offset in range(1, si.max):
        folio = int(si.cache[offset])
        if folio >= 0:
            folio_free_swap(m, folio)


def sys_swapon(m: Machine, pages: int) -> None:
    """SYSCALL_DEFINE2(swapon), mm/swapfile.c, Linux 6.18: a swap device of `pages` slots."""
    m.swap = SwapInfo(pages)


def sys_swapoff(m: Machine) -> None:
    """SYSCALL_DEFINE1(swapoff), mm/swapfile.c, Linux 6.18: try_to_unuse(), then it is gone."""
    swapoff(m)
    m.swap = None
