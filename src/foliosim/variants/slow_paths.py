"""slow-paths: linux-6.18 with the model's fast paths off (every page through its slow path).

No kernel change: the model's fast paths (docs/fast-paths.md) each do a run of
identical pages at once; this variant makes fast_paths_allowed() say no, so
`foliosim equiv linux-6.18 slow-paths` checks that they change nothing.
"""

from foliosim.variants import replace

BASE = "linux-6.18"


@replace
def fast_paths_allowed(m):
    """Never: every fault, LRU batch and reclaim goes the per-page way."""
    return False
