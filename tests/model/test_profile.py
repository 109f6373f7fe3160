"""Kernel profiles: one per kernel build, chosen by release string and sysfs files."""

from __future__ import annotations

import pytest

from foliosim.model.backend import ModelBackend
from foliosim.model.profile import (
    PROFILES,
    NoProfileError,
    get_profile,
    profile_for_kernel,
)
from foliosim.scenario.parser import parse_text

FC_FILES = {
    "kernel/mm/transparent_hugepage/hugepages-16kB/stats/anon_fault_declined",
    "kernel/mm/transparent_hugepage/anon_beside_full",
}


def test_an_upstream_6_18_kernel_is_described_by_linux_6_18():
    assert profile_for_kernel("6.18.35", lambda p: False).name == "linux-6.18"


def test_the_fc_build_is_described_by_its_own_profile():
    assert profile_for_kernel("6.18.44-fc-v1045", FC_FILES.__contains__).name == "linux-6.18.44-fc"


def test_a_6_18_release_without_the_fc_sysfs_files_is_upstream():
    # The sysfs decides: a build without the fc files behaves as upstream's source.
    assert profile_for_kernel("6.18.44-fc-v2000", lambda p: False).name == "linux-6.18"


def test_a_6_18_kernel_with_only_one_fc_file_matches_no_build():
    with pytest.raises(NoProfileError) as e:
        profile_for_kernel("6.18.44-fc-v1045", lambda p: p.endswith("anon_beside_full"))
    assert "\n" not in str(e.value) and "6.18.44-fc-v1045" in str(e.value)


def test_another_release_is_refused_in_one_line_naming_the_known_builds():
    with pytest.raises(NoProfileError) as e:
        profile_for_kernel("6.19.2", lambda p: False)
    text = str(e.value)
    assert "\n" not in text
    assert "6.19.2" in text and "linux-6.18.44-fc" in text and "--profile" in text


def test_no_profile_but_the_builds_describes_a_kernel():
    # The variants of `foliosim equiv` are files now (foliosim.variants), not profiles.
    assert [p.name for p in PROFILES.values() if p.release is not None] == [
        "linux-6.18",
        "linux-6.18.44-fc",
        "linux-6.12",
        "linux-6.1",
    ]


def test_a_debian_6_12_release_is_the_linux_6_12_profile():
    assert profile_for_kernel("6.12.117+deb12-amd64", lambda p: False).name == "linux-6.12"


def test_linux_6_12_lacks_the_v6_15_lazyfree_changes_and_has_soft_dirty():
    old, new = get_profile("linux-6.12"), get_profile("linux-6.18")
    assert new.features - old.features == {
        "lazyfree_batched_unmap",
        "swapbacked_iff_dirty",
        "huge_zero_wp_thp",
    }
    assert profile_for_kernel("6.1.0-57-amd64", lambda p: False).name == "linux-6.1"
    assert old.features - new.features == {"mem_soft_dirty", "kpf_ksm_on_anon"}
    assert "swpin" not in old.mthp_stat_keys and "swpin" in new.mthp_stat_keys


def test_the_fc_profile_is_upstream_but_for_the_lazyfree_pmd_discard():
    up, fc = get_profile("linux-6.18"), get_profile("linux-6.18.44-fc")
    assert up.has("lazyfree_pmd_discard") and not fc.has("lazyfree_pmd_discard")
    assert up.features - fc.features == {"lazyfree_pmd_discard"}


@pytest.mark.parametrize(
    ("profile", "declined"), [("linux-6.18", False), ("linux-6.18.44-fc", True)]
)
def test_anon_fault_declined_is_reported_only_by_the_build_that_has_it(profile, declined):
    obs = ModelBackend(profile=profile).run(parse_text("mmap A 4K\nwrite A 0\n", "t.scn"))
    for size, stats in obs["final"]["mthp"].items():
        assert ("anon_fault_declined" in stats) is declined, size
        assert "anon_fault_alloc" in stats and "split_deferred" in stats
