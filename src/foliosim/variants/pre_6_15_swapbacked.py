"""pre-6.15-swapbacked: an extra reference makes a lazyfree folio swapbacked (before faeb2831b517).

Before Linux commit faeb2831b517 ("mm: set folio swapbacked iff folios are dirty
in try_to_unmap_one") (v6.15), try_to_unmap_one() set PG_swapbacked whenever it
kept a lazyfree folio: redirtied, or held by an extra (GUP or speculative)
reference.  A clean folio kept only for a transient reference became ordinary
anon memory and was swapped out (or never freed without swap) on the next
reclaim (linux-anon-reclaim.md §6.6 outcome B, §11 bug 2).
"""

from foliosim.model.rmap import lazyfree_range as lazyfree_range_6_18
from foliosim.model.types import PG_swapbacked
from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def lazyfree_range(m, vma, folio, t, i, pteval, pfn, nr_pages):
    """The lazyfree branch of try_to_unmap_one() before v6.15: every kept folio is swapbacked."""
    discarded = lazyfree_range_6_18(m, vma, folio, t, i, pteval, pfn, nr_pages)
    if not discarded:
        # folio_set_swapbacked() before the walk_abort, on both keep outcomes.
        m.mem.flags[folio] |= PG_swapbacked
    return discarded
