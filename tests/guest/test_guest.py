"""foliosim.guest: exported scenarios in qemu guests of Debian's 6.1 and 6.12 kernels.

The `guest` tests boot each kernel once for a representative subset of the library
(one boot runs them all, in sequence) and compare every observation with the model
under the kernel's profile, as `foliosim run --kernel K --backend both` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from foliosim.check.diff import diff_observations, format_difference
from foliosim.cli.common import model_backend, read_scenario
from foliosim.cli.main import main as foliosim
from foliosim.guest import initramfs, qemu
from foliosim.guest.backend import GuestBackend, parse_console
from foliosim.guest.kernels import GuestError, resolve
from foliosim.model.profile import profile_for_kernel

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

# One scenario per behaviour that differs between the kernels, and two that do not.
SUBSET = {
    "6.12": (
        "lazyfree-redirty",  # the same on all three
        "swapout-write-fault",  # swap on zram, swap-in
        "mthp-lazyfree-redirty",  # per-PTE lazyfree unmap before v6.15
        "lazyfree-gup-release",  # swapbacked set for an extra reference before v6.15
        "droppable-mlock",  # MAP_DROPPABLE (v6.11) is there
    ),
    "6.1": (
        "lazyfree-redirty",
        "swapout-write-fault",
        "droppable-mlock",  # no MAP_DROPPABLE: mmap fails EINVAL on both
        "mthp-fault-orders",  # no mTHP sysfs: the mthp lines fail ENOENT on both
        "thp-lazyfree-discard",  # a lazyfree PMD is split before v6.11
    ),
}
TRIES = 3  # as the library tests: another process on the CPU can disturb a batch


def _guest(name: str) -> GuestBackend:
    try:
        return GuestBackend(resolve(name))
    except GuestError as e:
        if os.environ.get("FOLIOSIM_REQUIRE_GUEST") == "1":
            pytest.fail(f"FOLIOSIM_REQUIRE_GUEST=1 but guest {name} cannot run: {e}")
        pytest.skip(f"guest: {e}")


@pytest.fixture(scope="module", params=sorted(SUBSET), ids=lambda k: f"linux-{k}")
def guest_runs(request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Each subset scenario's differences from the model, after up to TRIES boots."""
    name = request.param
    scenarios = {s: read_scenario(str(SCENARIOS / f"{s}.scn")) for s in SUBSET[name]}
    left: dict[str, list[str]] = {s: ["not run"] for s in scenarios}
    for _ in range(TRIES):
        guest = _guest(name)
        profile = profile_for_kernel(guest.release, lambda p: False).name
        model = model_backend(profile)
        guest.run_many([scenarios[s] for s in left])
        for s in list(left):
            got: Any = guest.results[id(scenarios[s])]
            if isinstance(got, Exception):
                left[s] = [str(got)]
                continue
            diffs = diff_observations(model.run(scenarios[s]), got, scenarios[s])
            left[s] = [format_difference(d, profile, "guest") for d in diffs]
            if not diffs:
                del left[s]
        if not left:
            break
    return {s: left.get(s, []) for s in scenarios}


@pytest.mark.guest
def test_each_subset_scenario_in_the_guest_is_what_the_kernels_profile_says(guest_runs):
    failing = {s: d[:5] for s, d in guest_runs.items() if d}
    assert not failing, failing


def test_an_unknown_kernel_name_is_refused_in_one_line_naming_the_known_ones():
    with pytest.raises(GuestError) as e:
        resolve("5.10")
    assert "\n" not in str(e.value)
    assert "unknown kernel" in str(e.value) and "6.1, 6.12" in str(e.value)


def test_kernel_with_the_worker_backend_is_refused_as_usage(capsys):
    scn = str(SCENARIOS / "lazyfree-redirty.scn")
    assert foliosim(["run", "--kernel", "6.12", "--backend", "kernel", scn]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "worker harness" in err


def test_the_initramfs_unpacks_with_debians_cpio_into_init_modules_and_programs(tmp_path):
    if shutil.which("cpio") is None or initramfs.compiler() is None:
        pytest.skip("needs cpio and gcc")
    prog = tmp_path / "prog"
    prog.write_bytes(b"\x7fELF-ish")
    image = initramfs.build_initramfs([("a-scenario", prog)], [("zram", b"ko bytes")])
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=image, capture_output=True, check=True
    ).stdout.decode().split()
    assert {"init", "dev/console", "modules/00-zram.ko", "scn/0000-a-scenario"} <= set(listing)


def test_the_console_markers_give_each_programs_output_and_status():
    text = "\n".join(
        [
            "[    1.0] some early kernel line",
            "@@foliosim-guest release 6.12.117+deb12-amd64",
            "@@foliosim-module 00-zram.ko 0",
            "@@foliosim-begin 0000-a",
            '{"x": 1}',
            "@@foliosim-stderr 0000-a",
            "@@foliosim-end 0000-a 0",
            "@@foliosim-begin 0001-b",
            "@@foliosim-stderr 0001-b",
            "b: needs an unused zram0",
            "@@foliosim-end 0001-b 4",
        ]
    )
    runs = parse_console(text)
    assert runs.booted and not runs.done and runs.release == "6.12.117+deb12-amd64"
    assert runs.status == {"0000-a": 0, "0001-b": 4} and runs.stdout["0000-a"] == '{"x": 1}'
    assert runs.stderr["0001-b"] == "b: needs an unused zram0" and runs.modules["00-zram.ko"] == 0


@pytest.mark.guest
def test_a_guest_past_its_time_limit_is_killed_and_reaped():
    guest = _guest("6.12")
    image = initramfs.build_initramfs([], [])
    console = qemu.boot(guest.kernel, image, timeout=1.0)
    assert console.timed_out
    with pytest.raises(ProcessLookupError):
        os.kill(console.pid, 0)
