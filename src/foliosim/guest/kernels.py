"""Guest kernels: Debian's packages by name, downloaded once, unpacked into a cache.

`--kernel 6.12`, `--kernel 6.1`, a package name (`linux-image-6.12.117+deb12-amd64`),
a `.deb` file, or a bare `vmlinuz` (then no modules: no zram, so no swap scenarios).
Packages come from apt (`apt-get download`), unpacked with `dpkg -x` into
$FOLIOSIM_CACHE/kernels (default ~/.cache/foliosim/kernels), outside the tree.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from foliosim.kernel.errors import KernelBackendError

# The kernels of Debian 12 (bookworm) by their short names: the packages pinned here
# are the ones the profiles were checked against (docs/guests.md).
KERNELS = {
    "6.1": "linux-image-6.1.0-57-amd64",
    "6.12": "linux-image-6.12.117+deb12-amd64",
}

# Swap scenarios swap to zram0 (prelude.c); these modules are loaded, dependencies first.
ZRAM_MODULES = ("zram",)


class GuestError(KernelBackendError):
    """A guest kernel that cannot be had or booted; str() is one line."""


def cache_dir() -> Path:
    """Where kernels are kept: $FOLIOSIM_CACHE/kernels, else ~/.cache/foliosim/kernels."""
    env = os.environ.get("FOLIOSIM_CACHE")
    if env:
        return Path(env) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "foliosim" / "kernels"


@dataclass(frozen=True)
class GuestKernel:
    """A bootable kernel image and its unpacked modules tree (None for a bare vmlinuz)."""

    name: str
    vmlinuz: Path
    modules: Path | None = None
    release: str | None = None
    module_files: dict[str, Path] = field(default_factory=dict, compare=False)

    def modules_for(self, wanted: tuple[str, ...] = ZRAM_MODULES) -> list[tuple[str, bytes]]:
        """(name, uncompressed .ko) of `wanted` and their dependencies, dependencies first."""
        if self.modules is None:
            return []
        index = _module_index(self.modules)
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order or name not in index:
                return
            for dep in _module_depends(_module_bytes(index[name])):
                visit(dep)
            order.append(name)

        for name in wanted:
            visit(name)
        return [(name, _module_bytes(index[name])) for name in order]


def _module_index(modules: Path) -> dict[str, Path]:
    # modules.dep is written by depmod at install time, not shipped: index by file name.
    index: dict[str, Path] = {}
    for path in modules.rglob("*.ko*"):
        stem = path.name.split(".ko")[0]
        index[stem.replace("-", "_")] = path
    return index


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        raise GuestError(f"guest: {path}: zstd-compressed modules are not supported")
    return data


def _module_depends(ko: bytes) -> list[str]:
    # The .modinfo section holds NUL-separated key=value strings; "depends=a,b".
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", ko)
    if not m or not m.group(1):
        return []
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d]


def _unpacked(deb: Path) -> Path:
    """The dpkg -x tree of `deb` in the cache, unpacked once."""
    target = cache_dir() / "x" / deb.name.removesuffix(".deb")
    if (target / "boot").is_dir():
        return target
    if shutil.which("dpkg") is None:
        raise GuestError(f"guest: cannot unpack {deb}: no dpkg")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run(
            ["dpkg", "-x", str(deb), tmp], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["dpkg -x failed"])[-1]
            raise GuestError(f"guest: cannot unpack {deb}: {last}")
        os.replace(tmp, target)
        # TemporaryDirectory's cleanup of the moved name is a no-op.
        Path(tmp).mkdir()
    return target


def _from_tree(name: str, tree: Path) -> GuestKernel:
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    if not images:
        raise GuestError(f"guest: {name}: the package has no boot/vmlinuz-*")
    release = images[0].name.removeprefix("vmlinuz-")
    modules = next(iter(sorted((tree / "lib" / "modules").glob("*"))), None)
    if modules is None:
        modules = next(iter(sorted((tree / "usr" / "lib" / "modules").glob("*"))), None)
    return GuestKernel(name, images[0], modules, release)


def download(package: str) -> Path:
    """The .deb of `package` in the cache, fetched with `apt-get download` if missing."""
    debs = cache_dir() / "deb"
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise GuestError(f"guest: cannot download {package}: no apt-get on this machine")
    debs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["apt-get", "download", "-q", package],
        cwd=debs,
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(debs.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not found:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
        why = (errors or proc.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
        raise GuestError(f"guest: cannot download {package}: {why}")
    return found[-1]


def resolve(spec: str) -> GuestKernel:
    """The kernel `--kernel SPEC` names: 6.1, 6.12, a package name, a .deb or a vmlinuz."""
    if spec in KERNELS:
        return _from_tree(spec, _unpacked(download(KERNELS[spec])))
    path = Path(spec)
    if spec.endswith(".deb"):
        if not path.is_file():
            raise GuestError(f"guest: --kernel {spec}: no such file")
        return _from_tree(spec, _unpacked(path))
    if path.is_file():
        return GuestKernel(spec, path)
    if re.fullmatch(r"linux-image-[0-9][A-Za-z0-9.+~_-]*", spec):
        return _from_tree(spec, _unpacked(download(spec)))
    raise GuestError(
        f"guest: --kernel {spec}: unknown kernel (known: {', '.join(KERNELS)}; "
        "or a Debian package name linux-image-..., a .deb file, or a vmlinuz file)"
    )
