"""herd7 for the race tests: found, or built once per machine from the vendored source.

As root with the vendored herdtools7 present (CI), a missing herd7 is built
into the cache (~/.cache/foliosim/herd7-<hash>/, about 6 minutes, never again
once there); elsewhere the tests that need it skip with the reason, and
FOLIOSIM_REQUIRE_HERD=1 turns that skip into a failure (tests/conftest.py's
gate says so before this fixture runs; this fixture does the building).
"""

from __future__ import annotations

import os

import pytest

from foliosim.race.herd import Herd, HerdUnavailable, can_build, ensure_herd7


def pytest_configure(config: pytest.Config) -> None:
    # Harmless if pyproject.toml registers it too.
    config.addinivalue_line(
        "markers", "herd7: needs herd7 (built from the vendored source as root)"
    )


@pytest.fixture(scope="session")
def herd7() -> Herd:
    try:
        herd = ensure_herd7(build=can_build() is None)
    except HerdUnavailable as e:
        if os.environ.get("FOLIOSIM_REQUIRE_HERD") == "1":
            pytest.fail(f"FOLIOSIM_REQUIRE_HERD=1 but {e}")
        pytest.skip(str(e))
    if herd.lkmm is None:
        reason = "the LKMM files are not found (set FOLIOSIM_LKMM)"
        if os.environ.get("FOLIOSIM_REQUIRE_HERD") == "1":
            pytest.fail(f"FOLIOSIM_REQUIRE_HERD=1 but {reason}")
        pytest.skip(reason)
    return herd
