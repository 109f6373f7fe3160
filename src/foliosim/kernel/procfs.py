"""Readers of the /proc and /sys files the kernel backend observes through.

Nothing here touches a page of the observed process: pagemap, kpageflags and
kpagecount are read by pfn from outside, smaps is parsed as text.
"""

from __future__ import annotations

import os
import platform
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from foliosim.observation import KPF_BITS, SMAPS_KEYS
from foliosim.scenario.ast import MTHP_SIZES_KB

PAGE_SIZE = 4096
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")

PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PM_EXCLUSIVE = 1 << 56
PM_SOFT_DIRTY = 1 << 55
PM_PFN_MASK = (1 << 55) - 1

KPF_HEAD = 1 << KPF_BITS["compound_head"]
KPF_TAIL = 1 << KPF_BITS["compound_tail"]

Trace = Callable[[str, str], None]


def read_vmstat() -> dict[str, int]:
    """Every /proc/vmstat counter."""
    out: dict[str, int] = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, _, v = line.partition(" ")
            out[k] = int(v)
    return out


def read_mthp_stats(sizes_kb: tuple[int, ...]) -> dict[int, dict[str, int]]:
    """size kB -> {file: value} for every stats/ file except shmem_*."""
    out: dict[int, dict[str, int]] = {}
    for kb in sizes_kb:
        d = THP_DIR / f"hugepages-{kb}kB" / "stats"
        vals: dict[str, int] = {}
        for name in sorted(os.listdir(d)):
            if name.startswith("shmem_"):
                continue
            with open(d / name) as f:
                vals[name] = int(f.read())
        out[kb] = vals
    return out


def read_smaps(pid: int) -> list[tuple[int, int, dict[str, int]]]:
    """(start, end, {field: kB}) for every VMA of /proc/PID/smaps."""
    return [(v.start, v.end, v.fields) for v in read_smaps_vmas(pid)]


@dataclass
class SmapsVma:
    """One VMA of /proc/PID/smaps: its range, permissions column, kB fields and VmFlags."""

    start: int
    end: int
    prot: str
    fields: dict[str, int] = field(default_factory=dict)
    vmflags: list[str] = field(default_factory=list)


def read_smaps_vmas(pid: int) -> list[SmapsVma]:
    """Every VMA of /proc/PID/smaps, with its header's permissions and its VmFlags line."""
    vmas: list[SmapsVma] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head, _, rest = line.partition(" ")
            if "-" in head and not head.endswith(":"):
                s, _, e = head.partition("-")
                vmas.append(SmapsVma(int(s, 16), int(e, 16), rest.split()[0]))
            elif head == "VmFlags:" and vmas:
                vmas[-1].vmflags = rest.split()
            elif head.endswith(":") and vmas:
                key = head[:-1]
                if key in SMAPS_KEYS:
                    vmas[-1].fields[key] = int(rest.split()[0])
    return vmas


def vmas_for_range(vmas: list[SmapsVma], start: int, end: int) -> list[dict[str, object]]:
    """The contract's VMA list of one mapping: first and last page, perms and VmFlags."""
    return [
        {
            "first": (v.start - start) // PAGE_SIZE,
            "last": (v.end - start) // PAGE_SIZE - 1,
            "prot": v.prot,
            "flags": v.vmflags,
        }
        for v in vmas
        if v.start >= start and v.end <= end
    ]


def read_stat_faults(pid: int) -> tuple[int, int]:
    """(minflt, majflt) of /proc/PID/stat (fields 10 and 12, after the parenthesised comm)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): minflt is field 10, majflt field 12.
    return int(fields[7]), int(fields[9])


def smaps_for_range(
    vmas: list[tuple[int, int, dict[str, int]]], start: int, end: int
) -> dict[str, int]:
    """The contract's smaps dict of one mapping: every SMAPS_KEYS field summed over its VMAs."""
    total = dict.fromkeys(SMAPS_KEYS, 0)
    for s, e, fields in vmas:
        if s >= start and e <= end:
            for k, v in fields.items():
                total[k] += v
    return total


class PfnReader:
    """Cached reads of /proc/kpageflags and /proc/kpagecount by pfn, for one snapshot."""

    BLOCK = 512  # pfns per read; anonymous folios are at most order 9 and naturally aligned

    def __init__(self) -> None:
        self.flags_fd = os.open("/proc/kpageflags", os.O_RDONLY)
        self.count_fd = os.open("/proc/kpagecount", os.O_RDONLY)
        self._flags: dict[int, tuple[int, ...]] = {}
        self._order: dict[int, int] = {}

    def close(self) -> None:
        os.close(self.flags_fd)
        os.close(self.count_fd)

    def flags(self, pfn: int) -> int:
        blk = pfn // self.BLOCK
        words = self._flags.get(blk)
        if words is None:
            data = os.pread(self.flags_fd, self.BLOCK * 8, blk * self.BLOCK * 8)
            words = struct.unpack(f"<{len(data) // 8}Q", data)
            self._flags[blk] = words
        i = pfn - blk * self.BLOCK
        return words[i] if i < len(words) else 0

    def count(self, pfn: int) -> int:
        data = os.pread(self.count_fd, 8, pfn * 8)
        return struct.unpack("<Q", data)[0] if len(data) == 8 else 0

    def order(self, pfn: int) -> int:
        """Folio order of the page at pfn: walk back to compound_head, count tails forward."""
        f = self.flags(pfn)
        if not f & (KPF_HEAD | KPF_TAIL):
            return 0
        head = pfn
        while self.flags(head) & KPF_TAIL and not self.flags(head) & KPF_HEAD and head > 0:
            head -= 1
        if head in self._order:
            return self._order[head]
        n = 1
        while self.flags(head + n) & KPF_TAIL and not self.flags(head + n) & KPF_HEAD:
            n += 1
        order = max(n.bit_length() - 1, 0)
        self._order[head] = order
        return order


def read_pagemap(pid: int, addr: int, npages: int) -> list[int]:
    """Raw /proc/PID/pagemap entries of npages pages from addr."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        data = os.pread(fd, npages * 8, addr // PAGE_SIZE * 8)
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def live_kernel_unavailable_reason() -> str | None:
    """Why this machine's kernel cannot be observed as the contract needs (one line); None if it can.

    What both kernel harnesses (the worker and the exported C program) read:
    pfns from /proc/PID/pagemap (root), /proc/kpageflags and kpagecount, the
    THP and per-size mTHP sysfs.
    """
    if platform.system() != "Linux":
        return f"needs Linux, this is {platform.system()}"
    if os.geteuid() != 0:
        return (
            "needs root (pfns in /proc/PID/pagemap, /proc/kpageflags, "
            "THP and swap settings); running as uid " + str(os.geteuid())
        )
    if not os.path.exists("/proc/kpageflags") or not os.path.exists("/proc/kpagecount"):
        return "this kernel has no /proc/kpageflags or /proc/kpagecount"
    if not (THP_DIR / "enabled").exists():
        return "this kernel has no THP sysfs (/sys/kernel/mm/transparent_hugepage)"
    missing = [kb for kb in MTHP_SIZES_KB if not (THP_DIR / f"hugepages-{kb}kB" / "stats").is_dir()]
    if missing:
        return f"this kernel has no mTHP sysfs for {missing[0]}kB"
    return None
