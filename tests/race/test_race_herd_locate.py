"""Finding herd7 and the vendored herdtools7, and refusing with a reason when they are not there."""

from __future__ import annotations

import hashlib

import pytest

from foliosim.race import herd as herd_mod
from foliosim.race.herd import (
    HerdUnavailable,
    cache_prefix,
    can_build,
    ensure_herd7,
    find_herd7,
    vendor_dir,
)


def test_cache_is_keyed_by_the_tarballs_sha256_outside_the_source_tree(monkeypatch, tmp_path):
    vendor = vendor_dir()
    if vendor is None:
        pytest.skip("the vendored herdtools7 is not found")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    digest = hashlib.sha256((vendor / herd_mod.TARBALL).read_bytes()).hexdigest()
    assert cache_prefix() == tmp_path / "foliosim" / f"herd7-{digest[:12]}"


def test_without_herd7_or_root_the_reason_says_what_would_work(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("PATH", str(tmp_path))  # no herd7 on PATH
    monkeypatch.delenv("FOLIOSIM_HERD7", raising=False)
    monkeypatch.setattr(herd_mod.os, "geteuid", lambda: 1000)
    assert find_herd7() is None
    reason = can_build()
    if vendor_dir() is not None:
        assert "needs root" in reason and "opam install herdtools7" in reason
    with pytest.raises(HerdUnavailable, match="herd7 is not installed"):
        ensure_herd7(build=True)


def test_without_the_vendored_source_nothing_can_be_built(monkeypatch, tmp_path):
    monkeypatch.setenv("FOLIOSIM_VENDOR", str(tmp_path))
    assert vendor_dir() is None and cache_prefix() is None
    assert "vendored herdtools7 source is not found" in can_build()


@pytest.mark.herd7
def test_foliosim_herd7_names_the_binary_to_use(herd7, monkeypatch):
    monkeypatch.setenv("FOLIOSIM_HERD7", str(herd7.binary))
    found = find_herd7()
    assert found is not None and found.binary == herd7.binary and found.version.startswith("7.58")
    monkeypatch.setenv("FOLIOSIM_HERD7", "/nonexistent/herd7")
    assert find_herd7() is None
