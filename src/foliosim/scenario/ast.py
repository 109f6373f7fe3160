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


@dataclass(frozen=True)
class Scenario:
    """A whole parsed scenario: `path` names it in observations and errors."""

    path: str
    commands: tuple[Command, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]
