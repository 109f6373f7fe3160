"""The suite's two gates: live-kernel tests (marker `kernel`) and herd7 tests (marker `herd7`).

A `kernel` test runs scenarios on this machine's live kernel: as root it
changes machine-wide settings (mTHP and THP policy, swap on zram, DAMON,
khugepaged) while it runs, and the kernel backend restores them.  Where the
kernel backend cannot run (not root, a feature missing) every such test is
skipped with the backend's own reason; FOLIOSIM_REQUIRE_KERNEL=1 makes that a
failure instead (CI on a machine that must test the kernel).  `herd7` tests
need the herd7 binary, and FOLIOSIM_REQUIRE_HERD=1 does the same for them.
`pytest -m "not kernel"` runs the model-only suite.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import pytest


@functools.cache
def kernel_unavailable_reason() -> str | None:
    """Why the live-kernel tests cannot run here (one line), or None."""
    from foliosim.kernel.backend import KernelBackend

    return KernelBackend.unavailable_reason()


@functools.cache
def herd7_unavailable_reason() -> str | None:
    """Why the herd7 tests cannot run here (one line), or None.

    None also when herd7 is not there yet but can be built from the vendored
    source (root): tests/race's herd7 fixture builds it into the cache.
    """
    from foliosim.race.herd import can_build, find_herd7

    return None if find_herd7() is not None else can_build()


@functools.cache
def guest_unavailable_reason() -> str | None:
    """Why the qemu guest tests cannot run here (one line), or None.

    As root with CI=true (CI's fresh machine), qemu-system-x86 (and cpio, which one test
    reads the initramfs back with) is installed with apt-get first; the kernel packages are downloaded by the tests themselves
    (foliosim.guest.kernels, once, into the cache).
    """
    import shutil
    import subprocess

    from foliosim.guest.qemu import QEMU, qemu_unavailable_reason

    if shutil.which(QEMU) is None and os.geteuid() == 0 and os.environ.get("CI") == "true":
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
            + ["qemu-system-x86", "cpio"],
        ):
            subprocess.run(argv, capture_output=True, check=False, env=env, timeout=900)
    reason = qemu_unavailable_reason()
    if reason:
        return reason
    if shutil.which("gcc") is None:
        return "no gcc to build the scenarios statically"
    return None


# marker -> (the variable that turns its skips into failures, why it cannot run)
GATES: dict[str, tuple[str, Callable[[], str | None]]] = {
    "kernel": ("FOLIOSIM_REQUIRE_KERNEL", kernel_unavailable_reason),
    "herd7": ("FOLIOSIM_REQUIRE_HERD", herd7_unavailable_reason),
    "guest": ("FOLIOSIM_REQUIRE_GUEST", guest_unavailable_reason),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (variable, unavailable_reason) in GATES.items():
        if item.get_closest_marker(marker) is None:
            continue
        reason = unavailable_reason()
        if reason is None:
            continue
        if os.environ.get(variable) == "1":
            pytest.fail(f"{variable}=1 but the {marker} tests cannot run: {reason}", pytrace=False)
        pytest.skip(f"{marker}: {reason}")
