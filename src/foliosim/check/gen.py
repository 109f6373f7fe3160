"""Hypothesis strategies for random valid scenarios: what `foliosim fuzz` runs.

The generator keeps the same books the parser keeps (live processes, each
one's mappings and their sizes, held GUP references), so that every command
it draws is valid where it stands.  Scenarios stay small enough for a quick
live-kernel run: at most 4 mmaps of at most 64 pages, 2 forked children and
25 commands.  Without `mthp` only order-0 folios can happen: the THP settings
stay at the machine's defaults and no `madvise hugepage` is drawn (a mapping
of at most 64 pages never holds an aligned 2M range anyway).

Each command's `text` is its line as foliosim.scenario.printer writes it
(labels spelled out, sizes in K/M), the text the parser keeps for that line.

Every choice is drawn so that Hypothesis shrinks it towards a simpler
scenario: each command is one span (deleting it keeps the others aligned),
kinds shrink towards `observe`, ranges towards a single page, sizes towards
one page, labels towards the default.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import strategies as st

from foliosim.scenario import ast, printer

T = TypeVar("T")

MAX_COMMANDS = 25
MAX_MMAPS = 4
MAX_PAGES = 64
MAX_CHILDREN = 2
SLOT_PAGES = 512
MAP_NAMES = ("A", "B", "C", "D")
LABELS = ("a", "b", "c")
OBSERVE_LABELS = ("", "after", "before reclaim")
# Swap sizes in pages: 64K (full after 16 pages: swap-out fails) up to 16M.
SWAP_PAGES = (16, 64, 256, 1024, 4096)
# What a drawn `expect result` expects (a wrong guess is a failed expectation, the
# same on both sides: only a difference between the backends is a finding).
RESULTS = ("ok", "SIGSEGV", "EFAULT", "ENOMEM", "EINVAL")
# 1 in STOP_ODDS: the scenario ends after this command (mean ~ STOP_ODDS commands).
STOP_ODDS = 14

# Relative weight of each command kind when it is valid.  The order is the
# shrinking order: a drawn kind shrinks towards the front of the list.
KIND_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("observe", 3),
    ("read", 14),
    ("write", 20),
    ("madvise", 24),
    ("mmap", 5),
    ("munmap", 2),
    ("swap", 4),
    ("mlock", 3),
    ("munlock", 2),
    ("fork", 4),
    ("exit", 4),
    ("gup", 4),
    ("release", 5),
    ("poke", 4),
    ("mthp", 4),
    ("thp", 2),
    ("mlockall", 1),
    ("munlockall", 1),
    # protections, partial unmaps, mremap, results
    ("mprotect", 4),
    ("munmap_range", 2),
    ("mremap", 2),
    ("result", 2),
    # references (issue 12): long-term pins (writable: the kernel backend has no R/O
    # one), what a reference holds, process_madvise
    ("pin", 3),
    ("expect_ref_data", 3),
    ("process_madvise", 2),
    # memcg (issue 13), only with memcg=True: limits the model and the kernel meet at
    # the same line whatever the kernel memory in the cgroup's counter (docs/fuzzing.md)
    ("memcg_reclaim", 8),
    ("memcg_limit", 3),
    ("memcg_swappiness", 3),
)
MEMCG_KINDS = ("memcg_reclaim", "memcg_limit", "memcg_swappiness")
# `memcg limit`: no limit, or one no scenario of MAX_MMAPS x MAX_PAGES pages reaches.
MEMCG_LIMITS: tuple[int | None, ...] = (None, 262144)  # max, 1G
# `memcg reclaim 1G`: more than any usage, so the temporary limit is 0 and reclaim
# takes everything it can (EBUSY), the same on both sides.
MEMCG_RECLAIM_PAGES = 262144
MEMCG_SWAPPINESS = (0, 60, 100, 200)
COMMAND_KINDS = tuple(k for k, _ in KIND_WEIGHTS)

# Relative weight of each advice; pageout and free drive the reclaim paths modelled.
ADVICE_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("free", 5),
    ("pageout", 6),
    ("dontneed", 2),
    ("cold", 3),
    ("willneed", 2),
    ("nohugepage", 1),
    ("populate_read", 2),
    ("populate_write", 2),
    ("hugepage", 2),  # only with mthp
    # fork controls: VM_DONTCOPY, VM_WIPEONFORK
    ("dontfork", 1),
    ("dofork", 1),
    ("wipeonfork", 1),
    ("keeponfork", 1),
    ("collapse", 1),  # MADV_COLLAPSE
)
assert {a for a, _ in ADVICE_WEIGHTS} == set(ast.ADVICES)


@dataclass
class GenState:
    """The books kept while drawing: what exists at the current line."""

    mthp: bool
    memcg: bool = False
    memcg_drawn: bool = False  # a memcg command is in the scenario: no fork after it
    procs: dict[str, dict[str, int]] = field(default_factory=lambda: {"p0": {}})
    children_forked: int = 0
    mmaps_made: int = 0
    refs: list[str] = field(default_factory=list)
    refs_made: int = 0
    swap_pages: int | None = None
    labels: list[str] = field(default_factory=list)  # written so far, for `expect REF data`
    commands: list[ast.Command] = field(default_factory=list)
    # MADV_DONTFORK'd pages of each (process, mapping); a child forked while a
    # mapping has some is left without those VMAs, so the mapping is never drawn in
    # it (an access there is SIGSEGV, which the generator does not aim at).
    dontfork: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    hidden: set[tuple[str, str]] = field(default_factory=set)
    # process -> line of its last command with an outcome, for `expect result`
    last_line: dict[str, int] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return len(self.commands) + 1

    def mapped(self) -> list[tuple[str, str]]:
        """Every (process, mapping) pair alive now, in a stable order."""
        return [
            (p, m) for p in self.procs for m in sorted(self.procs[p]) if (p, m) not in self.hidden
        ]

    def children(self) -> list[str]:
        return [p for p in self.procs if p != "p0"]


def command_kind(cmd: ast.Command) -> str:
    """The kind of KIND_WEIGHTS `cmd` is: its command word ('write', 'madvise',
    'process_madvise', ...), with 'munmap_range' for a partial munmap and 'result' for
    `expect result`."""
    if isinstance(cmd, ast.Munmap) and cmd.runs is not None:
        return "munmap_range"
    if isinstance(cmd, ast.ExpectResult):
        return "result"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(cmd).__name__).lower()


# -- drawing -------------------------------------------------------------------------


def _weighted(draw: st.DrawFn, choices: list[tuple[str, int]]) -> str:
    # One integer draw over the cumulative weights: shrinks towards choices[0].
    total = sum(w for _, w in choices)
    n = draw(st.integers(0, total - 1))
    for name, w in choices:
        if n < w:
            return name
        n -= w
    raise AssertionError("unreachable")


def _pick(draw: st.DrawFn, items: Sequence[T]) -> T:
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def page_runs(draw: st.DrawFn, pages: int) -> ast.Runs:
    """A RANGE over a mapping of `pages` pages: one page, one run, several runs, or all."""
    kind = draw(st.integers(0, 3)) if pages > 1 else draw(st.sampled_from((0, 3)))
    if kind == 0:
        i = draw(st.integers(0, pages - 1))
        return ((i, i),)
    if kind == 1:
        first = draw(st.integers(0, pages - 1))
        last = first + draw(st.integers(0, pages - 1 - first))
        return ((first, last),)
    if kind == 2:
        runs: list[tuple[int, int]] = []
        pos = draw(st.integers(0, pages - 2))
        for _ in range(draw(st.integers(2, 3))):
            if pos >= pages:
                break
            length = draw(st.integers(1, min(8, pages - pos)))
            runs.append((pos, pos + length - 1))
            pos += length + draw(st.integers(1, 4))  # a gap: runs never touch
        return tuple(runs)
    return ((0, pages - 1),)


def _kind(draw: st.DrawFn, s: GenState) -> str:
    # The weights never depend on the state (only on `mthp`): a drawn number means
    # the same kind wherever it stands, so that the shrinker can delete the commands
    # before it.  A kind that is not valid here falls back to one that is; since
    # every mapping command falls back to `mmap` while nothing is mapped, the first
    # mapping comes early.
    kind = _weighted(
        draw,
        [
            (k, w)
            for k, w in KIND_WEIGHTS
            if (s.mthp or k not in ("mthp", "thp")) and (s.memcg or k not in MEMCG_KINDS)
        ],
    )
    mapped = bool(s.mapped())
    valid = {
        "read": mapped,
        "write": mapped,
        "madvise": mapped,
        "munmap": mapped,
        "mlock": mapped,
        "munlock": mapped,
        "gup": mapped,
        "poke": mapped,
        "mmap": s.mmaps_made < MAX_MMAPS,
        # A fork in a memcg scenario charges the worker's COW-broken harness memory to
        # the cgroup on the kernel (docs/pressure.md): never both in one scenario.
        "fork": s.children_forked < MAX_CHILDREN and not s.memcg_drawn,
        "memcg_reclaim": s.children_forked == 0,
        "memcg_limit": s.children_forked == 0,
        "memcg_swappiness": s.children_forked == 0,
        "exit": bool(s.children()),
        "release": bool(s.refs),
        "mprotect": mapped,
        "munmap_range": mapped,
        "mremap": mapped,
        "result": bool(s.last_line),
        "pin": mapped,
        "expect_ref_data": bool(s.refs),
        "process_madvise": mapped,
    }.get(kind, True)
    if valid:
        return kind
    if not mapped and s.mmaps_made < MAX_MMAPS:
        return "mmap"
    return "write" if mapped else "observe"


def _draw_label(draw: st.DrawFn, line: int) -> str:
    n = draw(st.integers(0, len(LABELS)))
    return f"w{line}" if n == 0 else LABELS[n - 1]


@st.composite
def _command(draw: st.DrawFn, s: GenState) -> ast.Command:
    # One valid command at s.line, applied to the books.
    kind = _kind(draw, s)
    line = s.line
    cmd: ast.Command
    if kind in ("read", "write", "madvise", "mlock", "munlock", "gup", "poke", "munmap"):
        proc, name = _pick(draw, s.mapped())
        pages = s.procs[proc][name]
        runs = draw(page_runs(pages)) if kind != "munmap" else ((0, pages - 1),)
        if kind == "read":
            cmd = ast.Read(line, proc, "", name=name, runs=runs)
        elif kind == "write":
            cmd = ast.Write(line, proc, "", name=name, runs=runs, label=_draw_label(draw, line))
            s.labels.append(cmd.label)
        elif kind == "poke":
            cmd = ast.Poke(line, proc, "", name=name, runs=runs, label=_draw_label(draw, line))
            s.labels.append(cmd.label)
        elif kind == "madvise":
            advices = [(a, w) for a, w in ADVICE_WEIGHTS if s.mthp or a != "hugepage"]
            cmd = ast.Madvise(line, proc, "", name=name, runs=runs, advice=_weighted(draw, advices))
            if cmd.advice in ("dontfork", "dofork"):
                pages_of = s.dontfork.setdefault((proc, name), set())
                for first, last in runs:
                    if cmd.advice == "dontfork":
                        pages_of.update(range(first, last + 1))
                    else:
                        pages_of.difference_update(range(first, last + 1))
        elif kind == "mlock":
            onfault = draw(st.integers(0, 2)) == 2  # mlock2(MLOCK_ONFAULT) one in three
            cmd = ast.Mlock(line, proc, "", name=name, runs=runs, onfault=onfault)
        elif kind == "munlock":
            cmd = ast.Munlock(line, proc, "", name=name, runs=runs)
        elif kind == "gup":
            s.refs_made += 1
            ref = f"r{s.refs_made}"
            s.refs.append(ref)
            cmd = ast.Gup(line, proc, "", name=name, runs=runs, ref=ref)
        else:
            del s.procs[proc][name]
            s.dontfork.pop((proc, name), None)
            cmd = ast.Munmap(line, proc, "", name=name)
    elif kind == "observe":
        proc = _pick(draw, list(s.procs))
        label = OBSERVE_LABELS[draw(st.integers(0, len(OBSERVE_LABELS) - 1))]
        cmd = ast.Observe(line, proc, "", label=label)
    elif kind == "mmap":
        proc = _pick(draw, list(s.procs))
        name = MAP_NAMES[s.mmaps_made]
        s.mmaps_made += 1
        pages = draw(st.integers(1, MAX_PAGES))
        droppable = draw(st.integers(0, 3)) == 3
        offset = 0
        if draw(st.integers(0, 3)) == 3:
            offset = draw(st.integers(1, SLOT_PAGES - pages))
        s.procs[proc][name] = pages
        cmd = ast.Mmap(line, proc, "", name=name, pages=pages, droppable=droppable, offset=offset)
    elif kind == "swap":
        choices = [None, *SWAP_PAGES] if s.swap_pages is not None else list(SWAP_PAGES)
        pages_or_off = choices[draw(st.integers(0, len(choices) - 1))]
        s.swap_pages = pages_or_off
        cmd = ast.Swap(line, "p0", "", pages=pages_or_off)
    elif kind == "fork":
        parent = _pick(draw, list(s.procs))
        s.children_forked += 1
        child = f"p{s.children_forked}"
        s.procs[child] = dict(s.procs[parent])
        for name in s.procs[child]:
            if s.dontfork.get((parent, name)) or (parent, name) in s.hidden:
                s.hidden.add((child, name))
        s.last_line.pop(child, None)
        cmd = ast.Fork(line, parent, "", child=child)
    elif kind == "exit":
        proc = _pick(draw, s.children())
        del s.procs[proc]
        s.last_line.pop(proc, None)
        cmd = ast.Exit(line, proc, "")
    elif kind == "release":
        ref = s.refs.pop(draw(st.integers(0, len(s.refs) - 1)))
        cmd = ast.Release(line, "p0", "", ref=ref)
    elif kind in ("pin", "expect_ref_data", "process_madvise"):
        cmd = _reference_command(draw, s, kind, line)
    elif kind == "mthp":
        size_kb = ast.MTHP_SIZES_KB[draw(st.integers(0, len(ast.MTHP_SIZES_KB) - 1))]
        mode = ast.MTHP_MODES[draw(st.integers(0, len(ast.MTHP_MODES) - 1))]
        cmd = ast.Mthp(line, "p0", "", size_kb=size_kb, mode=mode)
    elif kind == "thp":
        cmd = ast.Thp(line, "p0", "", mode=ast.THP_MODES[draw(st.integers(0, 2))])
    elif kind == "mlockall":
        proc = _pick(draw, list(s.procs))
        current, future = ((True, False), (False, True), (True, True))[draw(st.integers(0, 2))]
        onfault = draw(st.integers(0, 1)) == 1
        cmd = ast.Mlockall(line, proc, "", current=current, future=future, onfault=onfault)
    elif kind == "munlockall":
        cmd = ast.Munlockall(line, _pick(draw, list(s.procs)), "")
    elif kind in ("mprotect", "munmap_range", "mremap"):
        proc, name = _pick(draw, s.mapped())
        pages = s.procs[proc][name]
        if kind == "mprotect":
            prot = ast.PROTS[draw(st.integers(0, len(ast.PROTS) - 1))]
            cmd = ast.Mprotect(line, proc, "", name=name, runs=draw(page_runs(pages)), prot=prot)
        elif kind == "munmap_range":
            cmd = ast.Munmap(line, proc, "", name=name, runs=draw(page_runs(pages)))
        else:
            new = draw(st.integers(1, MAX_PAGES))
            move = draw(st.booleans())
            offset = draw(st.integers(0, SLOT_PAGES - new)) if move else 0
            s.procs[proc][name] = new
            cmd = ast.Mremap(line, proc, "", name=name, pages=new, move=move, offset=offset)
    elif kind == "result":
        proc = _pick(draw, sorted(s.last_line))
        value = RESULTS[draw(st.integers(0, len(RESULTS) - 1))]
        cmd = ast.ExpectResult(line, proc, "", value=value, of_line=s.last_line[proc])
    elif kind in MEMCG_KINDS:
        s.memcg_drawn = True
        if kind == "memcg_reclaim":
            cmd = ast.MemcgReclaim(line, "p0", "", pages=MEMCG_RECLAIM_PAGES)
        elif kind == "memcg_limit":
            pages = MEMCG_LIMITS[draw(st.integers(0, len(MEMCG_LIMITS) - 1))]
            cmd = ast.MemcgLimit(line, "p0", "", pages=pages)
        else:
            value = MEMCG_SWAPPINESS[draw(st.integers(0, len(MEMCG_SWAPPINESS) - 1))]
            cmd = ast.MemcgSwappiness(line, "p0", "", value=value)
    else:  # pragma: no cover - every kind of KIND_WEIGHTS is handled above
        raise AssertionError(kind)
    # As the parser keeps them: an `expect` line (of any kind) or `observe` has no
    # result of its own; an exited process has no result to expect.
    if not isinstance(cmd, (ast.Observe, ast.Exit)) and not type(cmd).__name__.startswith("Expect"):
        s.last_line[cmd.proc] = line
    return _with_text(cmd)


# Advices of process_madvise: those a remote mm accepts, and one it refuses (EINVAL).
PROCESS_MADVISE_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("pageout", 3),
    ("cold", 2),
    ("willneed", 1),
    ("free", 1),
)


def _reference_command(draw: st.DrawFn, s: GenState, kind: str, line: int) -> ast.Command:
    # pin, expect REF data and process_madvise (issue 12), applied to the books.
    if kind == "expect_ref_data":
        ref = _pick(draw, s.refs)
        values = [ast.DATA_ZERO, *dict.fromkeys(s.labels), ast.DATA_GARBAGE]
        proc = _pick(draw, list(s.procs))
        return ast.ExpectRefData(line, proc, "", ref=ref, value=_pick(draw, values))
    target, name = _pick(draw, s.mapped())
    runs = draw(page_runs(s.procs[target][name]))
    if kind == "pin":
        s.refs_made += 1
        ref = f"r{s.refs_made}"
        s.refs.append(ref)
        return ast.Pin(line, target, "", name=name, runs=runs, ref=ref)
    advice = _weighted(draw, list(PROCESS_MADVISE_WEIGHTS))
    return ast.ProcessMadvise(
        line, _pick(draw, list(s.procs)), "", target=target, name=name, runs=runs, advice=advice
    )


@st.composite
def _step(draw: st.DrawFn, s: GenState) -> bool:
    # One command and whether another follows, in one span: deleting the span
    # deletes the command and leaves every other choice where it was.
    s.commands.append(draw(_command(s)))
    return draw(st.integers(0, STOP_ODDS - 1)) != 0  # 0 ends: shrinks shorter


def _with_text(cmd: ast.Command) -> ast.Command:
    # Commands are frozen: rebuild with the line the printer writes, which is
    # the text the parser keeps.
    return dataclasses.replace(cmd, text=printer.line_text(cmd))


def scenarios(
    mthp: bool = False, path: str = "fuzz.scn", memcg: bool = False
) -> st.SearchStrategy[ast.Scenario]:
    """Random valid scenarios of at most MAX_COMMANDS commands (see the module docstring)."""

    @st.composite
    def _scenario(draw: st.DrawFn) -> ast.Scenario:
        s = GenState(mthp=mthp, memcg=memcg)
        while len(s.commands) < MAX_COMMANDS:
            if not draw(_step(s)):
                break
        return ast.Scenario(path=path, commands=tuple(s.commands))

    return _scenario()
