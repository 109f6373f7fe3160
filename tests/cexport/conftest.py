"""Live tests of the exported C programs skip with one reason unless FOLIOSIM_REQUIRE_KERNEL=1."""

from __future__ import annotations

import os

import pytest

from foliosim.cexport.backend import CBackend

REASON = CBackend.unavailable_reason()


@pytest.fixture
def live_kernel() -> None:
    if REASON is None:
        return
    if os.environ.get("FOLIOSIM_REQUIRE_KERNEL") == "1":
        pytest.fail(f"FOLIOSIM_REQUIRE_KERNEL=1 but {REASON}")
    pytest.skip(REASON)
