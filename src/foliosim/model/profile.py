"""Kernel profiles: which behaviours of which Linux build the model follows.

A profile is a named set of behaviour features (code asks `profile.has(...)`)
plus what identifies the kernel build it describes: its release string and
sysfs files it has or lacks.  `linux-6.18` is upstream 6.18.y as its source
says; a build with deviations of its own gets a profile on top of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from foliosim.observation import MTHP_STAT_KEYS

SYSFS = "/sys"


@dataclass(frozen=True)
class Profile:
    """A named set of behaviour features; code asks `profile.has(feature)`.

    `release` (a regular expression for the whole of `uname -r`) and the sysfs
    paths (relative to /sys) that the build has and lacks say which running
    kernels it describes; a profile without `release` describes none (a
    variant for `foliosim equiv`).
    """

    name: str
    features: frozenset[str]
    release: str | None = None
    sysfs_present: tuple[str, ...] = ()
    sysfs_absent: tuple[str, ...] = ()
    # Files of hugepages-<size>/stats/ (of MTHP_STAT_KEYS) this build does not have.
    mthp_stats_absent: frozenset[str] = frozenset()
    # /proc/vmstat counters (of observation.VMSTAT_KEYS) this build does not have.
    vmstat_absent: frozenset[str] = frozenset()

    def has(self, feature: str) -> bool:
        return feature in self.features

    def describes(self, release: str, exists: Callable[[str], bool]) -> bool:
        """Whether a kernel `release` whose sysfs has exactly the paths `exists` is this build."""
        if self.release is None or not re.fullmatch(self.release, release):
            return False
        return all(exists(p) for p in self.sysfs_present) and not any(
            exists(p) for p in self.sysfs_absent
        )

    @property
    def mthp_stat_keys(self) -> tuple[str, ...]:
        """The files of hugepages-<size>/stats/ this build has (shmem_* left out)."""
        return tuple(
            k
            for k in MTHP_STAT_KEYS
            if (k != "anon_fault_declined" or self.has("mthp_stat_anon_fault_declined"))
            and k not in self.mthp_stats_absent
        )


# Files that only the 6.18.44-fc build has (neither is in upstream 6.18.y's
# mm/huge_memory.c): a per-size stat and a top-level THP policy file.
_FC_SYSFS = (
    "kernel/mm/transparent_hugepage/hugepages-16kB/stats/anon_fault_declined",
    "kernel/mm/transparent_hugepage/anon_beside_full",
)

_LINUX_6_18 = frozenset(
    {
        # 9651fcedf7b9 ("mm: add MAP_DROPPABLE ...") (v6.11)
        "map_droppable",
        # Until Linux 7.0, do_swap_page() reads SWP_SYNCHRONOUS_IO devices
        # without the swap cache when the slot's count is 1.
        "swapin_bypass_swapcache",
        # b1f202060afe (v6.12): split remaps zero-filled subpages to the zero page
        "split_remap_zero_page",
        # Lance Yang's "mm/vmscan: avoid split lazyfree THP during
        # shrink_folio_list" (v6.11): try_to_unmap_one(), mm/rmap.c, meets the
        # PMD of a lazyfree THP before any split and discards it whole through
        # unmap_huge_pmd_locked(), mm/huge_memory.c.
        "lazyfree_pmd_discard",
        # 354dffd29575 ("mm: support batched unmap for lazyfree large folios during
        # reclamation") (v6.15): try_to_unmap_one() decides a lazyfree large folio's
        # PTEs as one batch (folio_unmap_pte_batch(), mm/rmap.c).
        "lazyfree_batched_unmap",
        # faeb2831b517 ("mm: set folio swapbacked iff folios are dirty in
        # try_to_unmap_one") (v6.15): a lazyfree folio kept for an extra reference
        # stays lazyfree.
        "swapbacked_iff_dirty",
        # Multi-size THP (v6.8, Ryan Roberts' series): the per-size
        # transparent_hugepage/hugepages-<size>kB/ directories and their policies.
        "mthp_sysfs",
        # do_huge_zero_wp_pmd(), mm/huge_memory.c (after 6.12; its commit not looked
        # up): a write fault on the huge zero page maps a new THP in its place.
        "huge_zero_wp_thp",
    }
)

# Debian 12's 6.12 (linux-image-6.12.*+deb12-amd64), as 6.18 less what came after it.
_LINUX_6_12 = (
    _LINUX_6_18
    # Before 354dffd29575 (v6.15): one PTE per try_to_unmap_one() iteration, so the
    # clean PTEs before a redirtied one are discarded (the per-pte variant).
    - {"lazyfree_batched_unmap"}
    # Before faeb2831b517 (v6.15): a lazyfree folio kept for an extra reference is
    # made swapbacked (the pre-6.15-swapbacked variant).
    - {"swapbacked_iff_dirty"}
    # No do_huge_zero_wp_pmd(): a write to the huge zero page splits its PMD.
    - {"huge_zero_wp_thp"}
) | {
    # Debian builds with CONFIG_MEM_SOFT_DIRTY=y (this machine's 6.18 without):
    # __mmap_region() gives every new VMA VM_SOFTDIRTY, so pagemap reports every page
    # of a VMA soft-dirty and smaps prints "sd".
    "mem_soft_dirty",
    # stable_page_flags(), fs/proc/page.c (6.12): `if (mapping & PAGE_MAPPING_KSM)`
    # tests one bit of PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE, so /proc/kpageflags
    # says ksm on every anonymous page (the check folio_test_ksm() makes is
    # `(mapping & PAGE_MAPPING_FLAGS) == PAGE_MAPPING_KSM`).  The 6.18.y tree has the
    # same line (FOLIO_MAPPING_KSM), yet this machine's 6.18.44 build reports no ksm
    # on anonymous pages: which change between them is not traced yet.
    "kpf_ksm_on_anon",
}

# Debian 12's 6.1 (linux-image-6.1.0-*-amd64), as 6.12 less what came after 6.1.
_LINUX_6_1 = (
    _LINUX_6_12
    # Before 9651fcedf7b9 (v6.11): no MAP_DROPPABLE; mmap(2) with it fails EINVAL.
    - {"map_droppable"}
    # Before b1f202060afe ("mm: remap unused subpages to shared zeropage when
    # splitting isolated thp") (v6.12): a split keeps zero-filled subpages.
    - {"split_remap_zero_page"}
    # Before Lance Yang's "mm/vmscan: avoid split lazyfree THP during
    # shrink_folio_list" (v6.11): a lazyfree PMD is split before it is decided.
    - {"lazyfree_pmd_discard"}
    # Before the 2024 rewrite of stable_page_flags() (after 6.1), KPF_KSM came from
    # PageKsm(): no ksm on ordinary anonymous pages.
    - {"kpf_ksm_on_anon"}
)

# hugepages-<size>/stats/ files that came after 6.12: Debian's 6.12.117 has none of
# them (its sysfs, read in the guest); 6.18 has all.  Their commits are not looked up.
_MTHP_STATS_SINCE_6_13 = frozenset(
    {"swpin", "swpin_fallback", "swpin_fallback_charge", "zswpout"}
)

PROFILES = {
    # Upstream 6.18.y, as read in a 6.18 stable tree (6.18.35).
    "linux-6.18": Profile(
        "linux-6.18",
        _LINUX_6_18,
        release=r"6\.18\.\d+.*",
        sysfs_absent=_FC_SYSFS,
    ),
    # This machine's build, 6.18.44-fc-v669 and later -v1045; its source is not
    # available, its deviations are those the library and the probes show
    # (docs/kernel-notes.md, "The machine itself").
    "linux-6.18.44-fc": Profile(
        "linux-6.18.44-fc",
        # try_to_unmap_one() splits a lazyfree PMD before deciding: its stack,
        # traced on this build, is shrink_folio_list() -> try_to_unmap() ->
        # try_to_unmap_one() -> __split_huge_pmd_locked()
        # (docs/probes/thp-lazyfree-split.c), where upstream takes
        # unmap_huge_pmd_locked().
        (_LINUX_6_18 - {"lazyfree_pmd_discard"})
        # hugepages-<size>/stats/anon_fault_declined: faults this build declined
        # to serve with a large folio (with its anon_beside_full policy).
        # Model: no such policy, so the count stays 0.
        | {"mthp_stat_anon_fault_declined"},
        release=r"6\.18\.44-fc-.*",
        sysfs_present=_FC_SYSFS,
    ),
    # Debian 12's linux-image-6.12.*+deb12-amd64 (checked on 6.12.117+deb12, in a
    # qemu guest: docs/guests.md).
    "linux-6.12": Profile(
        "linux-6.12",
        _LINUX_6_12,
        release=r"6\.12\.\d+\+deb12-amd64",
        mthp_stats_absent=_MTHP_STATS_SINCE_6_13,
    ),
    # Debian 12's linux-image-6.1.0-*-amd64 (checked on 6.1.0-57, 6.1.192, in a qemu
    # guest).  No mTHP (v6.8): no hugepages-<size>kB directory, so no stats, and an
    # `mthp` line fails with ENOENT on the kernel as in the model.
    "linux-6.1": Profile(
        "linux-6.1",
        _LINUX_6_1 - {"mthp_sysfs"},
        release=r"6\.1\.0-\d+-amd64",
        mthp_stats_absent=frozenset(MTHP_STAT_KEYS),
        # swpin_zero and swpout_zero came after 6.1 (6.12 has them; commit not
        # looked up): Debian's 6.1.0-57 /proc/vmstat has neither.
        vmstat_absent=frozenset({"swpin_zero", "swpout_zero"}),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; KeyError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None


class NoProfileError(Exception):
    """No profile (or more than one) describes the running kernel; str() is one line."""


def _sysfs_exists(path: str) -> bool:
    return os.path.exists(os.path.join(SYSFS, path))


def profile_for_kernel(
    release: str | None = None, exists: Callable[[str], bool] = _sysfs_exists
) -> Profile:
    """The profile describing the running kernel (or `release` with sysfs `exists`).

    Raises NoProfileError, saying which release and which profiles were tried,
    when none or several match.
    """
    if release is None:
        release = os.uname().release
    found = [p for p in PROFILES.values() if p.describes(release, exists)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(p.name for p in PROFILES.values() if p.release is not None)
    if not found:
        raise NoProfileError(
            f"no model profile describes kernel {release} (known builds: {known}); "
            "name one with --profile"
        )
    raise NoProfileError(
        f"several model profiles describe kernel {release} "
        f"({', '.join(p.name for p in found)}); name one with --profile"
    )
