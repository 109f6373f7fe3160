"""The parsed form of a scenario: what every backend executes.

The parser resolves everything that can be known before running: `all` becomes
the mapping's page runs, sizes become page counts, default labels are filled
in.  A backend never re-parses text and never needs to know the file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_SIZE = 4096

# Per-size mTHP policy files, in kB, as /sys/kernel/mm/transparent_hugepage/hugepages-<N>kB.
MTHP_SIZES_KB = (16, 32, 64, 128, 256, 512, 1024, 2048)
MTHP_MODES = ("never", "always", "inherit", "madvise")
THP_MODES = ("never", "always", "madvise")
ADVICES = (
    "free",
    "dontneed",
    "pageout",
    "cold",
    "willneed",
    "hugepage",
    "nohugepage",
    "populate_read",
    "populate_write",
    # fork controls: VM_DONTCOPY, VM_WIPEONFORK
    "dontfork",
    "dofork",
    "wipeonfork",
    "keeponfork",
    # MADV_COLLAPSE: synchronous THP collapse (madvise_collapse(), mm/khugepaged.c)
    "collapse",
)
# /proc/PID/smaps fields reported per mapping in STATE, in kB, summed over
# its VMAs; `expect NAME smaps FIELD KB` takes one of them.
SMAPS_KEYS = (
    "AnonHugePages",
    "Anonymous",
    "LazyFree",
    "Locked",
    "Private_Clean",
    "Private_Dirty",
    "Pss",
    "Rss",
    "Shared_Clean",
    "Shared_Dirty",
    "Swap",
    "SwapPss",
)

PAGE_STATES = ("present", "swap", "none")

# /proc/kpageflags bit -> name (include/uapi/linux/kernel-page-flags.h), lower case.
# Bit 34 (KPF_MAPPEDTODISK, PG_owner_2) is PageAnonExclusive on anonymous pages.
# Defined here, where the parser checks `expect NAME RANGE flags +FLAG` against it;
# foliosim.observation re-exports it with the rest of the schema.
KPF_NAMES = {
    0: "locked",
    1: "error",
    2: "referenced",
    3: "uptodate",
    4: "dirty",
    5: "lru",
    6: "active",
    7: "slab",
    8: "writeback",
    9: "reclaim",
    10: "buddy",
    11: "mmap",
    12: "anon",
    13: "swapcache",
    14: "swapbacked",
    15: "compound_head",
    16: "compound_tail",
    17: "huge",
    18: "unevictable",
    19: "hwpoison",
    20: "nopage",
    21: "ksm",
    22: "thp",
    23: "offline",
    24: "zero_page",
    25: "idle",
    26: "pgtable",
    32: "reserved",
    33: "mlocked",
    34: "anon_exclusive",
    35: "private",
    36: "private_2",
    37: "owner_private",
    38: "arch",
    39: "uncached",
    40: "softdirty",
    41: "arch_2",
}
# Never reported: other activity on a shared machine changes them.
KPF_NEVER_REPORTED = frozenset({"lru", "idle"})
# mprotect's and mmap's protections: PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE.
PROTS = ("none", "read", "readwrite")
# Values of `read` results and `expect ... data` besides labels.
DATA_ZERO = "zero"
DATA_GARBAGE = "garbage"

Runs = tuple[tuple[int, int], ...]  # inclusive (first, last) page runs, in range order


def runs_pages(runs: Runs) -> list[int]:
    """Every page index of the runs, in range order."""
    return [i for first, last in runs for i in range(first, last + 1)]


def runs_count(runs: Runs) -> int:
    """How many pages the runs cover."""
    return sum(last - first + 1 for first, last in runs)


@dataclass(frozen=True)
class Command:
    """One scenario line.  `line`/`col` locate it; `proc` is the process that runs it."""

    line: int
    proc: str
    text: str  # the source line without comment, stripped


@dataclass(frozen=True)
class Mthp(Command):
    size_kb: int
    mode: str


@dataclass(frozen=True)
class Thp(Command):
    mode: str


@dataclass(frozen=True)
class Swap(Command):
    pages: int | None  # None: `swap off`


@dataclass(frozen=True)
class Mmap(Command):
    name: str
    pages: int
    droppable: bool = False
    offset: int = 0  # pages into the 2M slot
    prot: str = "readwrite"  # one of PROTS


@dataclass(frozen=True)
class Munmap(Command):
    name: str
    runs: Runs | None = None  # None: the whole mapping, whose name then goes


@dataclass(frozen=True)
class Write(Command):
    name: str
    runs: Runs
    label: str


@dataclass(frozen=True)
class Read(Command):
    name: str
    runs: Runs


@dataclass(frozen=True)
class Madvise(Command):
    name: str
    runs: Runs
    advice: str


@dataclass(frozen=True)
class Mlock(Command):
    name: str
    runs: Runs
    onfault: bool = False  # mlock2(MLOCK_ONFAULT): VM_LOCKONFAULT, no population


@dataclass(frozen=True)
class Munlock(Command):
    name: str
    runs: Runs


@dataclass(frozen=True)
class Fork(Command):
    child: str


@dataclass(frozen=True)
class Exit(Command):
    pass


@dataclass(frozen=True)
class Gup(Command):
    name: str
    runs: Runs
    ref: str


@dataclass(frozen=True)
class Release(Command):
    ref: str


@dataclass(frozen=True)
class Poke(Command):
    name: str
    runs: Runs
    label: str


@dataclass(frozen=True)
class Observe(Command):
    label: str = ""


@dataclass(frozen=True)
class ExpectData(Command):
    """expect NAME RANGE data LABEL|zero|garbage: reads the range, then compares."""

    name: str
    runs: Runs
    value: str


@dataclass(frozen=True)
class ExpectState(Command):
    """expect NAME RANGE present|swap|none: compares pagemap states, touches nothing."""

    name: str
    runs: Runs
    state: str


@dataclass(frozen=True)
class ExpectSmaps(Command):
    name: str
    field: str
    kb: int


@dataclass(frozen=True)
class ExpectVmstat(Command):
    counter: str
    value: int


# -- mlockall, munlockall ----------------------------------------------------------


@dataclass(frozen=True)
class Mlockall(Command):
    """mlockall [current] [future] [onfault]: MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT."""

    current: bool
    future: bool
    onfault: bool = False


@dataclass(frozen=True)
class Munlockall(Command):
    pass


# -- page expectations: order, mapcount, exclusive, flags ---------------------------


@dataclass(frozen=True)
class ExpectOrder(Command):
    """expect NAME RANGE order N: every page present, in a folio of order N."""

    name: str
    runs: Runs
    order: int


@dataclass(frozen=True)
class ExpectMapcount(Command):
    """expect NAME RANGE mapcount N: every page present, /proc/kpagecount N."""

    name: str
    runs: Runs
    mapcount: int


@dataclass(frozen=True)
class ExpectExclusive(Command):
    """expect NAME RANGE exclusive yes|no: pagemap bit 56 (PM_MMAP_EXCLUSIVE) of every page."""

    name: str
    runs: Runs
    exclusive: bool


@dataclass(frozen=True)
class ExpectFlags(Command):
    """expect NAME RANGE flags +FLAG -FLAG...: every page present, with each + flag, without each -."""

    name: str
    runs: Runs
    flags: tuple[str, ...]  # "+dirty", "-mlocked", ... as written
# -- protections, partial unmaps, mremap, results -----------------------------------


@dataclass(frozen=True)
class Mprotect(Command):
    """mprotect NAME RANGE none|read|readwrite: one mprotect(2) per run."""

    name: str
    runs: Runs
    prot: str  # one of PROTS


@dataclass(frozen=True)
class Mremap(Command):
    """mremap NAME PAGES [move [offset PAGES]]: resize in place, or move to a fresh 2M slot."""

    name: str
    pages: int  # the new size
    move: bool = False  # MREMAP_MAYMOVE | MREMAP_FIXED to a fresh slot
    offset: int = 0  # pages into that slot (move only)


@dataclass(frozen=True)
class ExpectResult(Command):
    """expect result ok|ERRNAME: the outcome of the process's command at line `of_line`."""

    value: str  # "ok", an errno name or a signal name
    of_line: int
# -- references: long-term pins, what a reference holds, process_madvise (issue 12) ----

@dataclass(frozen=True)
class Pin(Command):
    """pin NAME RANGE as REF [readonly]: a long-term pin (FOLL_PIN | FOLL_LONGTERM)."""

    name: str
    runs: Runs
    ref: str
    readonly: bool = False


@dataclass(frozen=True)
class ExpectRefData(Command):
    """expect REF data LABEL|zero|garbage: every page the reference holds has that content."""

    ref: str
    value: str


@dataclass(frozen=True)
class ProcessMadvise(Command):
    """PROC: process_madvise OTHER NAME RANGE ADVICE: madvise of OTHER's mapping via a pidfd."""

    target: str
    name: str
    runs: Runs
    advice: str
# --- memcg (issue 13) ---------------------------------------------------------------

# `expect memcg FIELD N`: memory.stat keys (v1 names) and the cgroup's files, kB but
# failcnt (a count).  STATE["memcg"] holds MEMCG_STATE_KEYS; usage and failcnt count
# kernel memory and the per-CPU charge stock, so only `expect` asks for them.
MEMCG_STAT_KEYS = (
    "rss",
    "cache",
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "swap",
)
MEMCG_STATE_KEYS = ("limit",) + MEMCG_STAT_KEYS
MEMCG_FIELDS = MEMCG_STATE_KEYS + ("usage", "failcnt")
MEMCG_SWAPPINESS_MAX = 200  # MAX_SWAPPINESS, include/linux/swap.h


@dataclass(frozen=True)
class MemcgLimit(Command):
    """memcg limit SIZE|max: the scenario cgroup's limit (memory.limit_in_bytes)."""

    pages: int | None  # None: max


@dataclass(frozen=True)
class MemcgReclaim(Command):
    """memcg reclaim SIZE: reclaim about SIZE from the scenario cgroup now."""

    pages: int


@dataclass(frozen=True)
class MemcgSwappiness(Command):
    """memcg swappiness N: the cgroup's memory.swappiness (0-200)."""

    value: int


@dataclass(frozen=True)
class ExpectMemcg(Command):
    """expect memcg FIELD N|max: one field of the scenario cgroup (kB; failcnt a count)."""

    field: str
    value: int | None  # None: max (limit only)


@dataclass(frozen=True)
class ExpectOomKill(Command):
    """expect oom_kill PROC|none: the memcg OOM killer's victims so far include PROC (none: no kill)."""

    victim: str | None  # None: `none`


# Lines of a process the OOM killer chose that still run: they read no one process's
# state (observe takes the whole STATE).
RUN_AFTER_OOM_KILL = (ExpectMemcg, ExpectOomKill, ExpectVmstat, Observe)


def scenario_uses_memcg(commands: tuple[Command, ...]) -> bool:
    """Whether a scenario has a memcg command: only then STATE has "memcg"."""
    return any(
        isinstance(c, MemcgLimit | MemcgReclaim | MemcgSwappiness | ExpectMemcg | ExpectOomKill)
        for c in commands
    )


# --- end memcg -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A whole parsed scenario: `path` names it in observations and errors."""

    path: str
    commands: tuple[Command, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]
