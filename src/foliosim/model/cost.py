"""What the kernel would do, counted: one hook per model primitive (`foliosim cost`).

Each primitive of the unmap path (ptep_get, get_and_clear_ptes, set_ptes, the
TLB flush request, folio_get/folio_put_refs, folio_remove_rmap_ptes, the rmap
walks, swap_duplicate/swap_free_nr, folio_try_share_anon_rmap_pte) calls
`count()` with what the Linux primitive does.  Counting is off (COUNTS is
None) except inside `counting()`, so the hooks cost one test when idle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

# The counts, in display order: key -> what it counts (the Linux operation).
KEYS = {
    "ptep_get": "PTE reads (ptep_get)",
    "pte_clear": "PTEs cleared (get_and_clear_ptes)",
    "pte_write": "PTEs written (set_ptes, set_pte_at)",
    "tlb_flush": "TLB flush requests",
    "tlb_flush_pages": "pages those flushes cover",
    "refcount_atomic": "refcount atomics (folio_ref_add/sub)",
    "mapcount_atomic": "mapcount atomics (folio_remove_rmap_ptes)",
    "anon_share": "anon-exclusive shares (folio_try_share_anon_rmap)",
    "rmap_vma": "rmap walk: VMAs visited (rmap_walk_anon)",
    "pvmw_step": "rmap walk: mappings found (page_vma_mapped_walk)",
    "swap_op": "swap-slot operations (swap_duplicate, swap_free_nr)",
    "swap_slot": "swap slots those operations touch",
}

COUNTS: Counter[str] | None = None


def count(key: str, n: int = 1) -> None:
    """Add n to the count `key` while counting."""
    if COUNTS is not None:
        COUNTS[key] += n


def is_counting() -> bool:
    """True inside counting(): model shortcuts that skip primitives must not run."""
    return COUNTS is not None


@contextmanager
def counting(into: Counter[str]) -> Iterator[Counter[str]]:
    """Count every primitive called inside the block into `into`."""
    global COUNTS
    saved = COUNTS
    COUNTS = into
    try:
        yield into
    finally:
        COUNTS = saved
