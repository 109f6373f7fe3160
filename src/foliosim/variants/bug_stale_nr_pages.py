"""bug-stale-nr-pages: try_to_unmap_one() without nr_pages = 1 at the top of its walk loop.

CVE-2026-63950, fixed by "mm/rmap: initialize nr_pages to 1 at loop start in
try_to_unmap_one()" (affected v6.15 <= x < 6.18.35 and v6.19 <= x < 7.0.12;
linux-anon-reclaim.md §6.4 step 0, §11 bug 5).  Since 354dffd29575 (v6.15) a
present PTE sets nr_pages to its batch; a device-exclusive entry (the non-present
branch, pte_clear()) kept the previous iteration's value: after a batch of 15
PTEs, the 16th page's device-exclusive entry removed 15 rmaps, 15 references
and 15 RSS starting at page 15 (mapcount and refcount underflow, use after free).

The bug is a missing line, so this file holds the whole of the model's
try_to_unmap_one() with that line moved back to the declaration;
tests/variants/test_builtin.py checks that nothing else differs.  The state
needs a device-exclusive entry (rmap.make_device_exclusive(): HMM, no syscall).
"""

from foliosim.model import cost, huge_memory, mlock
from foliosim.model.mm import folio_maybe_dma_pinned, folio_nr_pages
from foliosim.model.page_flags import folio_test_large, folio_test_swapbacked, folio_test_swapcache
from foliosim.model.rmap import (
    TTU,
    _discard,
    _unmap_swapbacked_ptes,
    _unmap_swapbacked_run,
    flush_tlb_range,
    folio_unmap_pte_batch,
    get_and_clear_ptes,
    lazyfree_range,
    page_vma_mapped_walk,
    set_ptes,
    validate_pte_batch,
)
from foliosim.model.trace import folio_name
from foliosim.model.types import (
    PTE_DIRTY,
    VM_LOCKED,
    PG_anon,
    PG_dirty,
    PG_swapbacked,
    is_device_exclusive_entry,
    pte_maps_page,
)
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def try_to_unmap_one(m, folio, vma, index, flags):
    """try_to_unmap_one() before the CVE-2026-63950 fix: nr_pages set once, not per iteration."""
    mm = vma.mm
    mem = m.mem
    nr_pages = 1  # BUG: set once, at its declaration (unsigned long nr_pages = 1)
    pmd = mm.pmds.get(index >> 9) if mem.order[folio] == 9 else None
    if pmd is not None and pmd[1] == folio:
        if vma.flags & VM_LOCKED and not flags & TTU.IGNORE_MLOCK:
            return False  # PMD mapping: mlock_vma_folio() at once (model: stays mlocked)

        if not mem.flags[folio] & PG_swapbacked and m.profile.has("lazyfree_pmd_discard"):
            # Since Linux v6.11 ("mm/vmscan: avoid split lazyfree THP during
            # shrink_folio_list") a lazyfree PMD is discarded whole; the live
            # 6.18.44 build splits it instead (docs/kernel-notes.md).
            return huge_memory.unmap_huge_pmd_locked(m, vma, folio)
        if not flags & TTU.SPLIT_HUGE_PMD:
            return False
        huge_memory.split_huge_pmd_locked(m, vma, index >> 9)
    # The walk reads each PTE when it gets there: entries cleared by an earlier
    # batch of this walk are skipped.
    for vpn, t, i, page in page_vma_mapped_walk(m, folio, vma, index):
        if not pte_maps_page(t.bits[i]) or int(t.pfn[i]) != page:
            continue  # cleared by an earlier batch of this walk
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
            # A non-present entry: pte_clear(); nr_pages is the last batch's.
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
