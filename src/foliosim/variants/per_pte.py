"""per-pte: try_to_unmap_one() unmaps lazyfree large folios one PTE at a time (before v6.15).

Before Linux commit 354dffd29575 ("mm: support batched unmap for lazyfree large
folios during reclamation") (v6.15), each iteration of try_to_unmap_one()'s
page_vma_mapped_walk loop cleared and decided one PTE, for lazyfree large folios
as for every other folio.  So the clean PTEs met before a redirtied one were
already discarded when the dirty one aborted the walk; since v6.15 the whole
batch is kept (linux-anon-reclaim.md §6.5, §10.4).
"""

from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def folio_unmap_pte_batch(m, folio, vma, vpn, t, i):
    """folio_unmap_pte_batch() as Linux before v6.15 had it, in effect: one PTE."""
    return 1
