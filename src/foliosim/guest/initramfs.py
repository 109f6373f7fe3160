"""The guest's initramfs: a static /init, zram's modules and the scenario programs.

A newc cpio archive (the format the kernel unpacks, Documentation/driver-api/
early-userspace/buffer-format.rst), written here so that no cpio tool is needed.
"""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

from foliosim.cexport.backend import compiler
from foliosim.guest.kernels import GuestError, cache_dir

INIT_SOURCE = Path(__file__).with_name("init.c")


class Cpio:
    """A newc archive built in memory: directories, files and device nodes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = [
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0
        ]
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        blob = head + encoded
        blob += b"\0" * (-len(blob) % 4)
        blob += data
        blob += b"\0" * (-len(blob) % 4)
        self.parts.append(blob)

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def compile_static(source: str, name: str) -> Path:
    """A static binary of C `source` in the cache (built once per content)."""
    cc = compiler()
    if cc is None:
        raise GuestError("guest: no C compiler (gcc or cc)")
    flags = ["-static", "-O2", "-Wall", "-Wextra", "-Werror"]
    digest = hashlib.sha256((source + "\0" + " ".join(flags)).encode()).hexdigest()[:20]
    out = cache_dir().parent / "guest-bin" / f"{name[:40]}-{digest}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    tmp = out.with_suffix(".tmp")
    proc = subprocess.run(
        [cc, *flags, "-o", str(tmp), str(src)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
        first = (errors or proc.stderr.strip().splitlines() or ["unknown error"])[0]
        raise GuestError(f"guest: {name} does not compile statically: {first}")
    tmp.replace(out)
    return out


def build_initramfs(programs: list[tuple[str, Path]], modules: list[tuple[str, bytes]]) -> bytes:
    """The archive: /init, /modules/NN-NAME.ko in load order, /scn/NNNN-NAME programs."""
    init = compile_static(INIT_SOURCE.read_text(), "foliosim-init")
    cpio = Cpio()
    for d in ("dev", "proc", "sys", "run", "tmp", "modules", "scn"):
        cpio.directory(d)
    # The kernel opens /dev/console for init's stdin, stdout and stderr.
    cpio.chardev("dev/console", 5, 1)
    cpio.file("init", init.read_bytes(), 0o755)
    for i, (name, ko) in enumerate(modules):
        cpio.file(f"modules/{i:02d}-{name}.ko", ko)
    for i, (name, binary) in enumerate(programs):
        cpio.file(f"scn/{i:04d}-{name}", binary.read_bytes(), 0o755)
    return cpio.bytes()
