"""batched-swap: swap-backed large folios unmapped a batch of PTEs at a time (Dev Jain, v4).

"Optimize anonymous large folio unmapping" (Dev Jain, v1 10 Mar 2026 ... v4
26 May 2026, https://lkml.iu.edu/2605.3/02495.html), final patch
"[PATCH v4 12/12] mm/rmap: enable batch unmapping of anonymous folios"
(https://lkml.iu.edu/2605.3/02509.html); linux-anon-reclaim.md §10.3:

- folio_unmap_pte_batch() no longer returns 1 for swap-backed anon folios
  (sparc64, with arch_unmap_one(), excepted); the batch is still bounded by the
  VMA and the page table and ends where write or soft-dirty bits differ;
- the cleared batch is converted in sub-batches of equal PageAnonExclusive
  (page_anon_exclusive_batch(), from cac1db8c3aad): per sub-batch the swap
  counts of all its slots are raised at once, an exclusive sub-batch is shared
  at once (failing if maybe pinned), and its swap PTEs are written at once;
- a failure part-way restores the PTEs not yet converted, undoes their swap
  counts, and accounts for the part converted (finish_folio_unmap() inside
  __ttu_anon_folio()) before the walk aborts.

The restore writes the one value get_and_clear_ptes() returned for the whole
batch (dirty and young OR-ed over it), as v4's try_to_unmap_one() does after
a failed ttu_anon_folio() (`set_ptes(mm, address, pvmw.pte, pteval,
nr_pages)`: the series' preparatory patches as mm-unstable carries them, with
"nr_pages > 1 not supported yet" at the swap-backed branch that 12/12 batches;
the 12/12 diff itself is not in the stored copies) and as 6.18 already does
for lazyfree batches: per-PTE values are kept nowhere, and
folio_unmap_pte_batch() (29f40594a281) keeps only the write and soft-dirty
bits uniform over a batch.  So this is NOT equivalent to linux-6.18: when
sharing an exclusive sub-batch fails (a FOLL_PIN on a swap-cache folio), the
clean PTEs of the batch come back dirty and young and the folio gains
PG_dirty, where 6.18 cleared one PTE and restored it as it was (docs/equiv.md,
"batched-swap: a finding against v4").  Everywhere else the end states equal
linux-6.18's; `foliosim cost` shows what it saves.
"""

from foliosim.model.internal import FPB_RESPECT_SOFT_DIRTY, FPB_RESPECT_WRITE, folio_pte_batch_flags
from foliosim.model.mm import folio_nr_pages
from foliosim.model.page_flags import folio_test_large
from foliosim.model.rmap import _discard, folio_try_share_anon_rmap_ptes, set_ptes
from foliosim.model.swap import swap_duplicate_nr, swap_free_nr
from foliosim.model.types import (
    MM_ANONPAGES,
    MM_SWAPENTS,
    PTE_SOFT_DIRTY,
    PTE_SWAP,
    PTE_SWP_EXCLUSIVE,
    PG_anon_exclusive,
)
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """folio_unmap_pte_batch() of v4: lazyfree and swap-backed large folios are batched."""
    if not folio_test_large(m, folio):
        return 1
    max_nr = min(vma.end, (vpn | 511) + 1) - vpn
    return folio_pte_batch_flags(
        t,
        i,
        t.pfn[i],
        folio,
        folio_nr_pages(m, folio),
        max_nr,
        FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY,
    )


def page_anon_exclusive_batch(m, page, max_nr):
    """page_anon_exclusive_batch(), mm/internal.h (v4): pages from `page` as exclusive as it."""
    flags = m.mem.flags
    exclusive = flags[page] & PG_anon_exclusive
    nr = 1
    while nr < max_nr and flags[page + nr] & PG_anon_exclusive == exclusive:
        nr += 1
    return nr


@replace
def _unmap_swapbacked_ptes(m, vma, folio, page, t, i, pteval, nr_pages):
    """The swap-backed branch as v4's __ttu_anon_folio(): sub-batches of equal exclusivity."""
    mm = vma.mm
    offset = int(m.mem.swap[folio]) + (page - folio)
    done = 0
    while done < nr_pages:
        nr = page_anon_exclusive_batch(m, page + done, nr_pages - done)
        exclusive = m.mem.flags[page + done] & PG_anon_exclusive
        swap_duplicate_nr(m, offset + done, nr)  # folio_dup_swap(folio, page, nr)
        if exclusive and not folio_try_share_anon_rmap_ptes(m, folio, page + done, nr):
            swap_free_nr(m, offset + done, nr)
            # Restore what is not converted yet, from the batch's merged pteval
            # (v4 keeps no per-PTE values); finish the unmap of what is.
            set_ptes(t, i + done, pteval, page + done, nr_pages - done)
            if done:
                mm.counters[MM_ANONPAGES] -= done
                mm.counters[MM_SWAPENTS] += done
                _discard(m, vma, folio, page, done)  # finish_folio_unmap()
            return False
        swp = PTE_SWAP | (PTE_SWP_EXCLUSIVE if exclusive else 0) | (pteval & PTE_SOFT_DIRTY)
        set_ptes(t, i + done, swp, offset + done, nr)  # swap PTEs, offsets advancing
        done += nr
    mm.counters[MM_ANONPAGES] -= nr_pages
    mm.counters[MM_SWAPENTS] += nr_pages
    return True
