"""Find or build herd7 (herdtools7, the memory-model simulator) and the LKMM files.

herd7 comes from, in this order: $FOLIOSIM_HERD7 (a path to the binary), the
cache ~/.cache/foliosim/herd7-<sha256 prefix of the vendored tarball>/ that
`ensure_herd7(build=True)` fills with the vendored build script, or `herd7`
on PATH (`opam install herdtools7`).  The vendored material (tarball, build
script, LKMM files) is looked up in $FOLIOSIM_VENDOR, then in `vendor/` and
`shared/vendor/` beside every parent directory of this checkout, then in
/work/shared/vendor.

`python -m foliosim.race.herd` sets herd7 up (building it if it must) and
prints where it is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TARBALL = "herdtools7-7.58.tar.gz"
BUILD_SCRIPT = "build-herd7.sh"


class HerdUnavailable(Exception):
    """herd7 or the LKMM files cannot be found (or built): one line saying why and what would work."""


@dataclass(frozen=True)
class Herd:
    """A usable herd7: the binary, its model library, and the LKMM directory (None if absent)."""

    binary: Path
    libdir: Path | None
    lkmm: Path | None
    version: str


def vendor_dir() -> Path | None:
    """The directory holding the vendored herdtools7 tarball and lkmm/, or None."""
    env = os.environ.get("FOLIOSIM_VENDOR")
    if env:
        return Path(env) if (Path(env) / "lkmm").is_dir() else None
    here = Path(__file__).resolve()
    candidates = [c for p in here.parents for c in (p / "vendor", p / "shared" / "vendor")]
    # The project's machine keeps it in /work/shared/vendor, wherever the checkout is.
    candidates.append(Path("/work/shared/vendor"))
    for candidate in candidates:
        if (candidate / "lkmm" / "linux-kernel.cat").is_file():
            return candidate
    return None


def lkmm_dir() -> Path | None:
    """The LKMM files (linux-kernel.cfg, .cat, .bell, .def, litmus-tests/), or None."""
    env = os.environ.get("FOLIOSIM_LKMM")
    if env:
        return Path(env) if (Path(env) / "linux-kernel.cfg").is_file() else None
    vendor = vendor_dir()
    return vendor / "lkmm" if vendor is not None else None


def cache_root() -> Path:
    """~/.cache/foliosim (or $XDG_CACHE_HOME/foliosim): outside any source tree."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "foliosim"


@cache
def _tarball_key(tarball: Path) -> str:
    return hashlib.sha256(tarball.read_bytes()).hexdigest()[:12]


def cache_prefix() -> Path | None:
    """Where the vendored tarball's herd7 is (or would be) installed, keyed by its hash."""
    vendor = vendor_dir()
    if vendor is None or not (vendor / TARBALL).is_file():
        return None
    return cache_root() / f"herd7-{_tarball_key(vendor / TARBALL)}"


def _version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.split()[0].rstrip(",")


def _herd_from(binary: Path, libdir: Path | None) -> Herd | None:
    version = _version(binary)
    if version is None:
        return None
    return Herd(binary, libdir if libdir and libdir.is_dir() else None, lkmm_dir(), version)


def find_herd7() -> Herd | None:
    """The herd7 to use without building anything, or None."""
    env = os.environ.get("FOLIOSIM_HERD7")
    if env:
        binary = Path(env)
        return _herd_from(binary, binary.parent.parent / "share" / "herdtools7" / "herd")
    prefix = cache_prefix()
    if prefix is not None and (prefix / "bin" / "herd7").is_file():
        found = _herd_from(prefix / "bin" / "herd7", prefix / "share" / "herdtools7" / "herd")
        if found is not None:
            return found
    on_path = shutil.which("herd7")
    if on_path:
        # opam's herd7 knows its own library; nothing to add with -I.
        return _herd_from(Path(on_path), None)
    return None


def can_build() -> str | None:
    """None if ensure_herd7(build=True) could build herd7 here, else the reason it cannot."""
    vendor = vendor_dir()
    if vendor is None or not (vendor / BUILD_SCRIPT).is_file() or not (vendor / TARBALL).is_file():
        return (
            "herd7 is not installed and the vendored herdtools7 source is not found "
            "(set FOLIOSIM_VENDOR, or `opam install herdtools7`)"
        )
    if os.geteuid() != 0:
        return (
            "herd7 is not installed; building it from the vendored source needs root "
            f"(apt-get of its OCaml build dependencies): run `sudo {sys.executable} -m "
            "foliosim.race.herd`, or `opam install herdtools7`"
        )
    return None


def build_herd7(log=sys.stderr) -> Herd:
    """Build the vendored herd7 into the cache (once per machine; a lock serialises builders)."""
    reason = can_build()
    if reason is not None:
        raise HerdUnavailable(reason)
    vendor = vendor_dir()
    prefix = cache_prefix()
    assert vendor is not None and prefix is not None
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if not (prefix / "bin" / "herd7").is_file():
            print(
                f"foliosim: building herd7 from {vendor / TARBALL} into {prefix} "
                "(about 6 minutes, once per machine)",
                file=log,
                flush=True,
            )
            out = subprocess.run(
                ["bash", str(vendor / BUILD_SCRIPT), str(prefix)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                tail = (out.stdout + out.stderr).strip().splitlines()[-5:]
                raise HerdUnavailable(f"building herd7 failed: {' | '.join(tail)}")
    found = find_herd7()
    if found is None:
        raise HerdUnavailable(f"herd7 was built into {prefix} but does not run")
    return found


def ensure_herd7(build: bool = False) -> Herd:
    """A usable herd7: found, or (build=True) built from the vendored source."""
    found = find_herd7()
    if found is not None:
        return found
    if build:
        return build_herd7()
    raise HerdUnavailable(
        can_build() or "herd7 is not installed; run `python -m foliosim.race.herd`"
    )


def main() -> int:
    """Set herd7 up and say where it is; exit 1 with the reason if it cannot be."""
    try:
        herd = ensure_herd7(build=True)
    except HerdUnavailable as e:
        print(f"foliosim: {e}", file=sys.stderr)
        return 1
    print(f"herd7 {herd.version}: {herd.binary}")
    print(f"model library: {herd.libdir or '(herd7 built-in)'}")
    print(f"LKMM: {herd.lkmm or '(not found: set FOLIOSIM_LKMM)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
