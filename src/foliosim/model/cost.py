"""What the kernel would do, counted: one hook per model primitive (`foliosim cost`).

Each primitive of the unmap path (ptep_get, get_and_clear_ptes, set_ptes, the
TLB flush request, folio_get/folio_put_refs, folio_remove_rmap_ptes, the rmap
walks, swap_duplicate/swap_free_nr, folio_try_share_anon_rmap_pte) calls
`count()` with what the Linux primitive does.  Counting is off (COUNTS is
None) except inside `counting()`, so the hooks cost one test when idle.

Where the model takes a shortcut (one computation standing for a loop of
primitives, with the loop's result), it asks shortcuts_allowed() first: not
while counting, and not while a variant replaces model functions, so that
the counts are the loop's and a variant's replacement is really run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

# The counts, in display order: key -> what it counts (the Linux operation).
KEYS = {
    "ptep_get": "PTE reads: ptep_get",
    "pte_clear": "PTEs cleared: get_and_clear_ptes",
    "pte_write": "PTEs written: set_ptes, set_pte_at",
    "tlb_flush": "TLB flush requests",
    "tlb_flush_pages": "  pages they cover",
    "refcount_atomic": "refcount atomics: folio_ref_*",
    "mapcount_atomic": "mapcount atomics: rmap removal",
    "anon_share": "anon-exclusive shares",
    "rmap_vma": "rmap walk: VMAs",
    "pvmw_step": "rmap walk: PTE mappings found",
    "swap_op": "swap-slot operations",
    "swap_slot": "  slots they touch",
}

COUNTS: Counter[str] | None = None


def count(key: str, n: int = 1) -> None:
    """Add n to the count `key` while counting."""
    if COUNTS is not None:
        COUNTS[key] += n


# Variants applied now (Variant.applied() raises and lowers it).
VARIANTS_APPLIED = 0


def shortcuts_allowed() -> bool:
    """True unless counting or a variant is applied: a shortcut may stand for its loop."""
    return COUNTS is None and not VARIANTS_APPLIED


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
