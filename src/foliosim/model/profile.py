"""Kernel profiles: which behaviours of which Linux release the model follows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """A named set of behaviour features; code asks `profile.has(feature)`."""

    name: str
    features: frozenset[str]

    def has(self, feature: str) -> bool:
        return feature in self.features


PROFILES = {
    "linux-6.18": Profile(
        "linux-6.18",
        frozenset(
            {
                # 9651fcedf7b9 ("mm: add MAP_DROPPABLE ...") (v6.11)
                "map_droppable",
                # Until Linux 7.0, do_swap_page() reads SWP_SYNCHRONOUS_IO devices
                # without the swap cache when the slot's count is 1.
                "swapin_bypass_swapcache",
                # b1f202060afe (v6.12): split remaps zero-filled subpages to the zero page
                "split_remap_zero_page",
                # Deliberately absent: "lazyfree_pmd_discard" (Lance Yang, "mm/vmscan:
                # avoid split lazyfree THP during shrink_folio_list", v6.11). The
                # live 6.18.44 build splits a lazyfree PMD before deciding, in
                # every run (thp-lazyfree-reclaim, thp-lazyfree-discard).
            }
        ),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; KeyError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
