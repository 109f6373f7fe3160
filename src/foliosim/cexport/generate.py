"""Export a parsed scenario as one standalone C program (a second kernel harness).

The program performs the scenario with one real process per scenario process,
each running its own lines as straight-line code, every line under a comment
that quotes it.  An orchestrator on the other CPUs says whose turn it is, reads
/proc and /sys, and prints the observation JSON of the contract; with
`assert_mode` it prints TAP checks instead (kselftest style).  The runtime the
lines call is prelude.c, next to this file.  See docs/export-c.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foliosim.dispatch import HANDLERS
from foliosim.observation import (
    KPF_BITS,
    KPF_NAMES,
    KPF_NEVER_REPORTED,
    KPF_NOT_ON_ZERO_PAGE,
    SMAPS_KEYS,
    VMSTAT_KEYS,
    mthp_size_name,
)
from foliosim.scenario.ast import (
    MTHP_SIZES_KB,
    PAGE_SIZE,
    Command,
    Exit,
    ExpectData,
    ExpectExclusive,
    ExpectFlags,
    ExpectMapcount,
    ExpectOrder,
    ExpectResult,
    ExpectRefData,
    ExpectSmaps,
    ExpectState,
    ExpectVmstat,
    MemcgLimit,
    MemcgReclaim,
    MemcgSwappiness,
    ExpectMemcg,
    ExpectOomKill,
    Fork,
    Gup,
    Madvise,
    Mlock,
    Mlockall,
    Mmap,
    Mprotect,
    Mremap,
    Mthp,
    Munlock,
    Munlockall,
    Munmap,
    Observe,
    Pin,
    Poke,
    ProcessMadvise,
    Read,
    Release,
    Runs,
    Scenario,
    Swap,
    Thp,
    Write,
    runs_count,
)
from foliosim.scenario.errors import ScenarioError

PRELUDE = Path(__file__).with_name("prelude.c")

ASSERT_MODES = ("scenario", "model")

# The placement of the contract, as both kernel harnesses do it: 2M-aligned slots, each
# followed by a 2M gap, far from the heap, the libraries and the stack.
SLOT_ALIGN = 2 << 20
SLOT_BASE = 0x200000000000
# Below the 47-bit user address space of x86-64, with room for the last gap.
SLOT_LIMIT = 0x7F0000000000

MADV_NAMES = {
    "free": "MADV_FREE",
    "dontneed": "MADV_DONTNEED",
    "pageout": "MADV_PAGEOUT",
    "cold": "MADV_COLD",
    "willneed": "MADV_WILLNEED",
    "hugepage": "MADV_HUGEPAGE",
    "nohugepage": "MADV_NOHUGEPAGE",
    "populate_read": "MADV_POPULATE_READ",
    "populate_write": "MADV_POPULATE_WRITE",
    "dontfork": "MADV_DONTFORK",
    "dofork": "MADV_DOFORK",
    "wipeonfork": "MADV_WIPEONFORK",
    "keeponfork": "MADV_KEEPONFORK",
    "collapse": "MADV_COLLAPSE",
}
STATE_CODES = {"none": 0, "present": 1, "swap": 2}
PAGE_EXPECTS = (ExpectOrder, ExpectMapcount, ExpectExclusive, ExpectFlags)
PROT_NAMES = {"none": "PROT_NONE", "read": "PROT_READ", "readwrite": "PROT_READ | PROT_WRITE"}
MAX_PROCS = 64  # two pipes each, inherited by every process: fds stay well under 1024


def c_string(text: str) -> str:
    """`text` as a C string literal (bytes of its UTF-8, escaped)."""
    out = []
    for b in text.encode():
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= b < 127 and ch != "?":  # '?': no trigraphs
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_json(value: Any) -> str:
    """A C string literal holding `value` as JSON (how Python's json.dumps writes it)."""
    return c_string(json.dumps(value))


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


def _ident(prefix: str, name: str, taken: set[str]) -> str:
    base = prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


def _runs_text(runs: Runs) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@dataclass
class _MapObj:
    name: str
    ident: str
    addr: int
    pages: int
    droppable: bool
    prot: str = "readwrite"


@dataclass
class _Proc:
    name: str
    ident: str
    index: int
    maps: dict[str, int] = field(default_factory=dict)  # name -> mapping object index
    code: list[str] = field(default_factory=list)


class CProgram:
    """Writes the C program of a scenario: one cmd_<keyword> handler per command emits
    that line's code (the handlers of foliosim.dispatch, run by `program()`)."""

    def __init__(self) -> None:
        self.reset(Scenario("none.scn"), None, None, None)

    def reset(
        self, scenario: Scenario, source: str | None, assert_mode: str | None, model: Any
    ) -> None:
        self.sc = scenario
        self.source = source
        self.mode = assert_mode
        self.model = model
        self.idents: set[str] = set()
        self.procs: dict[str, _Proc] = {}
        self.proc_order: list[_Proc] = []
        self.maps: list[_MapObj] = []
        self.labels: list[str] = sorted(
            {c.label for c in scenario.commands if isinstance(c, (Write, Poke))}
        )
        self.refs: dict[str, tuple[str, int]] = {}  # ref -> (ident, pipe size)
        # References (issue 12): the rings of pins, made at the start, one per pinned run;
        # a held pin's rings (ring, mapping object, first, last); a gup's pages in its pipe.
        self.nrings = 0
        self.pins: dict[str, list[tuple[int, int, int, int]]] = {}
        self.gup_pages: dict[str, list[tuple[int, int]]] = {}
        self.helper: list[str] = []
        self.script: list[str] = []
        self.checks = 0
        self.max_read = 1
        self.next_slot = SLOT_BASE
        self.model_events: dict[int, list[dict[str, Any]]] = {}
        if model is not None:
            for ev in model["events"]:
                self.model_events.setdefault(ev["line"], []).append(ev)

    # -- names --------------------------------------------------------------------

    def proc(self, name: str) -> _Proc:
        p = self.procs.get(name)
        if p is None:
            p = _Proc(name, _ident("P_", name, self.idents), len(self.proc_order))
            self.procs[name] = p
            self.proc_order.append(p)
        return p

    def map_of(self, cmd: Command, name: str) -> _MapObj:
        return self.maps[self.procs[cmd.proc].maps[name]]

    def label(self, label: str) -> str:
        return f"L_{self.labels.index(label)}"

    def refuse(self, cmd: Command, reason: str, word: int = 0) -> None:
        # The column of the command's `word`th word in the source line, when we have it.
        col, pos = 1, 0
        if self.source is not None:
            raw = self.source.split("\n")[cmd.line - 1]
            for i, w in enumerate(cmd.text.split()[: word + 1]):
                at = raw.find(w, pos)
                if at < 0:
                    break
                col, pos = at + 1, at + len(w)
        raise ScenarioError(self.sc.path, cmd.line, col, f"export-c: {reason}")

    # -- one line -----------------------------------------------------------------

    def emit(self, lines: list[str], code: list[str]) -> None:
        lines.extend("\t" + c for c in code)

    def per_run(self, call: str, runs: Runs, guarded: bool = False) -> list[str]:
        # One syscall per contiguous run, in order; the first failure ends the line.
        out = []
        for i, (first, last) in enumerate(runs):
            c = call.format(first=first, last=last)
            out += [f"r = {c};"] if i == 0 and not guarded else ["if (!r)", f"\tr = {c};"]
        return out

    def line(self, cmd: Command, mine: list[str], orch: list[str]) -> list[dict[str, Any]]:
        """Emit one scenario line: `mine` into the process that performs it, `orch` into
        the orchestrator's script, each under the line as a comment.  The EVENTs are the
        program's to report when it runs, so none here."""
        head = f"\t/* {cmd.line}: {_comment(cmd.text)} */"
        if mine:
            p = self.procs[cmd.proc]
            p.code.append(head)
            self.emit(p.code, mine)
        self.script.append(head)
        self.emit(self.script, orch + self.line_checks(cmd))
        return []

    def P(self, cmd: Command) -> str:
        return self.procs[cmd.proc].ident

    # -- one handler per command (the dispatch of foliosim.dispatch) --------------

    def cmd_thp(self, cmd: Thp) -> list[dict[str, Any]]:
        return self.line(cmd, [], [f'fs_thp({cmd.line}, {self.P(cmd)}, "{cmd.mode}");'])

    def cmd_mthp(self, cmd: Mthp) -> list[dict[str, Any]]:
        call = f'fs_mthp({cmd.line}, {self.P(cmd)}, {cmd.size_kb}, "{cmd.mode}");'
        return self.line(cmd, [], [call])

    def cmd_swap(self, cmd: Swap) -> list[dict[str, Any]]:
        return self.line(cmd, [], [f"fs_swap({cmd.line}, {cmd.pages or 0});"])

    def cmd_mmap(self, cmd: Mmap) -> list[dict[str, Any]]:
        span = (cmd.offset + cmd.pages) * PAGE_SIZE
        slot = self.next_slot
        self.next_slot = slot + -(-span // SLOT_ALIGN) * SLOT_ALIGN + SLOT_ALIGN
        if self.next_slot > SLOT_LIMIT:
            self.refuse(
                cmd,
                f"mapping {cmd.name!r} does not fit: the 2M slots of the mappings so far "
                f"end above {SLOT_LIMIT:#x} (x86-64 has 47 bits of user address space)",
                word=2 if cmd.text.split()[0] == "mmap" else 3,  # SIZE
            )
        m = _MapObj(
            cmd.name,
            _ident("M_", cmd.name, self.idents),
            slot + cmd.offset * PAGE_SIZE,
            cmd.pages,
            cmd.droppable,
            cmd.prot,
        )
        self.maps.append(m)
        self.procs[cmd.proc].maps[cmd.name] = len(self.maps) - 1
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", f"fs_reply({L}, fs_mmap({m.ident}), 0);"],
            [f'fs_run({L}, {self.P(cmd)}, "mmap", {m.ident});'],
        )

    def cmd_munmap(self, cmd: Munmap) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        if cmd.runs is not None:
            return self.partial_munmap(cmd, m)
        del self.procs[cmd.proc].maps[cmd.name]
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", f"fs_reply({L}, fs_munmap({m.ident}), 0);"],
            [f'fs_run({L}, {self.P(cmd)}, "munmap", {m.ident});'],
        )

    def syscall_line(
        self, cmd: Command, op: str, m: _MapObj, body: list[str]
    ) -> list[dict[str, Any]]:
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", *body, f"fs_reply({L}, r, r ? fs_stop_page : 0);"],
            [f'fs_run({L}, {self.P(cmd)}, "{op}", {m.ident});'],
        )

    def cmd_write(self, cmd: Write) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        call = f"fs_write({m.ident}, {{first}}, {{last}}, {self.label(cmd.label)})"
        return self.syscall_line(cmd, "write", m, self.per_run(call, cmd.runs))

    def cmd_madvise(self, cmd: Madvise) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        call = f"fs_madvise({m.ident}, {{first}}, {{last}}, {MADV_NAMES[cmd.advice]})"
        return self.syscall_line(cmd, "madvise", m, self.per_run(call, cmd.runs))

    def cmd_mlock(self, cmd: Mlock) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        fn = "fs_mlock_onfault" if cmd.onfault else "fs_mlock"  # mlock2(MLOCK_ONFAULT)
        call = f"{fn}({m.ident}, {{first}}, {{last}})"
        return self.syscall_line(cmd, "mlock", m, self.per_run(call, cmd.runs))

    # -- mlockall, munlockall --------------------------------------------------------

    def cmd_mlockall(self, cmd: Mlockall) -> list[dict[str, Any]]:
        flags = "|".join(
            n
            for n, on in (
                ("MCL_CURRENT", cmd.current),
                ("MCL_FUTURE", cmd.future),
                ("MCL_ONFAULT", cmd.onfault),
            )
            if on
        )
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", f"fs_reply({L}, fs_mlockall({flags}), 0);"],
            [f'fs_run({L}, {self.P(cmd)}, "mlockall", -1);'],
        )

    def cmd_munlockall(self, cmd: Munlockall) -> list[dict[str, Any]]:
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", f"fs_reply({L}, fs_munlockall(), 0);"],
            [f'fs_run({L}, {self.P(cmd)}, "munlockall", -1);'],
        )

    def cmd_munlock(self, cmd: Munlock) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        call = f"fs_munlock({m.ident}, {{first}}, {{last}})"
        return self.syscall_line(cmd, "munlock", m, self.per_run(call, cmd.runs))

    def cmd_gup(self, cmd: Gup) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        ref = _ident("R_", cmd.ref, self.idents)
        npages = runs_count(cmd.runs)
        self.refs[cmd.ref] = (ref, 1 << max(16, (npages * PAGE_SIZE - 1).bit_length()))
        self.pins.pop(cmd.ref, None)
        mi = self.procs[cmd.proc].maps[cmd.name]
        self.gup_pages[cmd.ref] = [(mi, i) for a, b in cmd.runs for i in range(a, b + 1)]
        call = f"fs_vmsplice({ref}, {m.ident}, {{first}}, {{last}})"
        # The ref's pipe was made at the start; if that failed, so does this line.
        # A failed F_SETPIPE_SZ stops the line before any page: no "page" in its event.
        body = [
            f"r = fs_gup_err[{ref}];",
            "if (r)",
            "\tfs_stop_page = -1;",
            *self.per_run(call, cmd.runs, guarded=True),
        ]
        return self.syscall_line(cmd, "gup", m, body)

    def read_code(self, cmd: Read | ExpectData) -> list[str]:
        m = self.map_of(cmd, cmd.name)
        self.max_read = max(self.max_read, runs_count(cmd.runs))
        body = self.per_run(f"fs_read({m.ident}, {{first}}, {{last}})", cmd.runs)
        return [f"fs_turn({cmd.line});", *body, f"fs_reply_read({cmd.line}, r);"]

    def cmd_read(self, cmd: Read) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        orch = [f"fs_run_read({cmd.line}, {self.P(cmd)}, {m.ident}, 1);"]
        return self.line(cmd, self.read_code(cmd), orch)

    def cmd_expect_data(self, cmd: ExpectData) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        orch = [
            (
                f"fs_expect_data({cmd.line}, {self.P(cmd)}, {m.ident}, {c_string(cmd.value)}, "
                f"{c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, self.read_code(cmd), orch)

    def cmd_fork(self, cmd: Fork) -> list[dict[str, Any]]:
        child = self.proc(cmd.child)
        child.maps = dict(self.procs[cmd.proc].maps)
        L = cmd.line
        return self.line(
            cmd,
            [f"fs_turn({L});", f"fs_fork({L}, {child.ident}, fs_proc_{child.ident});"],
            [f"fs_run_fork({L}, {self.P(cmd)}, {child.ident});"],
        )

    def cmd_exit(self, cmd: Exit) -> list[dict[str, Any]]:
        L = cmd.line
        return self.line(
            cmd, [f"fs_turn({L});", f"fs_exit({L});"], [f"fs_run_exit({L}, {self.P(cmd)});"]
        )

    def cmd_release(self, cmd: Release) -> list[dict[str, Any]]:
        rings = self.pins.pop(cmd.ref, None)
        if rings is not None:
            arr = ", ".join(str(r) for r, _m, _a, _b in rings)
            return self.line(cmd, [], [f"fs_unpin({cmd.line}, (const int[]){{{arr}, -1}});"])
        return self.line(cmd, [], [f"fs_release({cmd.line}, {self.refs[cmd.ref][0]});"])

    def cmd_poke(self, cmd: Poke) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        L = cmd.line
        call = f"fs_poke(pid, {m.ident}, {{first}}, {{last}}, {self.label(cmd.label)})"
        # The helper performs it: its own function, its own copy of the line's comment.
        self.helper.append(f"\t/* {L}: {_comment(cmd.text)} */")
        self.emit(
            self.helper,
            [
                f"pid = (pid_t)fs_turn({L});",
                *self.per_run(call, cmd.runs),
                f"fs_reply({L}, r, r ? fs_stop_page : 0);",
            ],
        )
        return self.line(cmd, [], [f"fs_run_poke({L}, {self.P(cmd)}, {m.ident});"])

    def cmd_observe(self, cmd: Observe) -> list[dict[str, Any]]:
        return self.line(cmd, [], [f"fs_observe({cmd.line}, {self.P(cmd)}, {c_json(cmd.label)});"])

    def cmd_expect_state(self, cmd: ExpectState) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        runs = ", ".join(f"{a}, {b}" for a, b in cmd.runs)
        orch = [
            (
                f'fs_expect_state({cmd.line}, {self.P(cmd)}, {m.ident}, "{cmd.state}", '
                f"(const int64_t[]){{{runs}, -1}}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)

    def cmd_expect_smaps(self, cmd: ExpectSmaps) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        key = sorted(SMAPS_KEYS).index(cmd.field)
        orch = [
            (
                f"fs_expect_smaps({cmd.line}, {self.P(cmd)}, {m.ident}, {key} /* {cmd.field} */, "
                f"{cmd.kb}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)

    def cmd_expect_vmstat(self, cmd: ExpectVmstat) -> list[dict[str, Any]]:
        orch = [
            (
                f"fs_expect_vmstat({cmd.line}, {self.P(cmd)}, {c_string(cmd.counter)}, "
                f"{cmd.value}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)

    # -- page expectations: order, mapcount, exclusive, flags ----------------------

    def expect_pages(self, cmd: ExpectOrder | ExpectMapcount | ExpectExclusive, kind: str, want: int) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        runs = ", ".join(f"{a}, {b}" for a, b in cmd.runs)
        orch = [
            (
                f"fs_expect_pages({cmd.line}, {self.P(cmd)}, {m.ident}, FS_EXPECT_{kind}, {want}, "
                f"(const int64_t[]){{{runs}, -1}}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)

    # -- protections, partial unmaps, mremap, results ------------------------------

    def cmd_mprotect(self, cmd: Mprotect) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        call = f"fs_mprotect({m.ident}, {{first}}, {{last}}, {PROT_NAMES[cmd.prot]})"
        return self.syscall_line(cmd, "mprotect", m, self.per_run(call, cmd.runs))

    def partial_munmap(self, cmd: Munmap, m: _MapObj) -> list[dict[str, Any]]:
        assert cmd.runs is not None
        L = cmd.line
        body = self.per_run(f"fs_munmap_range({m.ident}, {{first}}, {{last}})", cmd.runs)
        return self.line(
            cmd,
            [f"fs_turn({L});", *body, f"fs_reply({L}, r, 0);"],
            [f"fs_run_partial_munmap({L}, {self.P(cmd)}, {m.ident});"],
        )

    def cmd_mremap(self, cmd: Mremap) -> list[dict[str, Any]]:
        # The remapped mapping is a new mapping object (its address and size fixed
        # at export time, as every mapping's): in place, or in a fresh 2M slot.
        old = self.map_of(cmd, cmd.name)
        addr = old.addr
        if cmd.move:
            span = (cmd.offset + cmd.pages) * PAGE_SIZE
            slot = self.next_slot
            self.next_slot = slot + -(-span // SLOT_ALIGN) * SLOT_ALIGN + SLOT_ALIGN
            if self.next_slot > SLOT_LIMIT:
                self.refuse(
                    cmd,
                    f"mapping {cmd.name!r} does not fit: the 2M slots end above {SLOT_LIMIT:#x}",
                    word=1,
                )
            addr = slot + cmd.offset * PAGE_SIZE
        new = _MapObj(
            cmd.name, _ident("M_", cmd.name, self.idents), addr, cmd.pages, old.droppable, old.prot
        )
        self.maps.append(new)
        to_i = len(self.maps) - 1
        L = cmd.line
        lines = self.line(
            cmd,
            [f"fs_turn({L});", f"fs_reply({L}, fs_mremap({old.ident}, {new.ident}), 0);"],
            [f"fs_run_mremap({L}, {self.P(cmd)}, {old.ident}, {new.ident});"],
        )
        # Later lines of this process name the new object; if the call fails, both
        # sides give it the old address (fs_mremap_failed()), as the worker keeps it.
        self.procs[cmd.proc].maps[cmd.name] = to_i
        return lines

    def cmd_expect_result(self, cmd: ExpectResult) -> list[dict[str, Any]]:
        orch = [
            (
                f"fs_expect_result({cmd.line}, {self.P(cmd)}, {cmd.of_line}, "
                f"{c_string(cmd.value)}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)

    def cmd_expect_order(self, cmd: ExpectOrder) -> list[dict[str, Any]]:
        return self.expect_pages(cmd, "ORDER", cmd.order)

    def cmd_expect_mapcount(self, cmd: ExpectMapcount) -> list[dict[str, Any]]:
        return self.expect_pages(cmd, "MAPCOUNT", cmd.mapcount)

    def cmd_expect_exclusive(self, cmd: ExpectExclusive) -> list[dict[str, Any]]:
        return self.expect_pages(cmd, "EXCLUSIVE", int(cmd.exclusive))

    def cmd_expect_flags(self, cmd: ExpectFlags) -> list[dict[str, Any]]:
        m = self.map_of(cmd, cmd.name)
        runs = ", ".join(f"{a}, {b}" for a, b in cmd.runs)
        flags = ", ".join(c_string(f) for f in cmd.flags)
        orch = [
            (
                f"fs_expect_flags({cmd.line}, {self.P(cmd)}, {m.ident}, "
                f"(const char *const[]){{{flags}, NULL}}, {c_string(' '.join(cmd.flags))}, "
                f"(const int64_t[]){{{runs}, -1}}, {c_json(cmd.text)});"
            )
        ]
        return self.line(cmd, [], orch)
    # -- references: long-term pins, what a reference holds, process_madvise -------

    def cmd_pin(self, cmd: Pin) -> list[dict[str, Any]]:
        if cmd.readonly:
            self.refuse(
                cmd,
                "no R/O long-term pin on Linux without gup_test: io_uring pins FOLL_WRITE | "
                "FOLL_LONGTERM (io_pin_pages(), io_uring/memmap.c)",
                word=len(cmd.text.split()) - 1,
            )
        m = self.map_of(cmd, cmd.name)
        mi = self.procs[cmd.proc].maps[cmd.name]
        rings = []
        body: list[str] = []
        for k, (first, last) in enumerate(cmd.runs):
            rings.append((self.nrings, mi, first, last))
            call = f"fs_pin({self.nrings}, {m.ident}, {first}, {last})"
            body += [f"r = {call};"] if k == 0 else ["if (!r)", f"\tr = {call};"]
            self.nrings += 1
        self.pins[cmd.ref] = rings
        return self.syscall_line(cmd, "pin", m, body)

    def cmd_expect_ref_data(self, cmd: ExpectRefData) -> list[dict[str, Any]]:
        rings = self.pins.get(cmd.ref)
        want, text = c_string(cmd.value), c_json(cmd.text)
        if rings is not None:
            runs = ", ".join(f"{r}, {self.maps[mi].ident}, {a}, {b}" for r, mi, a, b in rings)
            call = (
                f"fs_expect_pin_data({cmd.line}, {self.P(cmd)}, (const int64_t[]){{{runs}, -1}}, "
                f"{want}, {text});"
            )
        else:
            pages = ", ".join(f"{self.maps[mi].ident}, {i}" for mi, i in self.gup_pages[cmd.ref])
            call = (
                f"fs_expect_gup_data({cmd.line}, {self.P(cmd)}, {self.refs[cmd.ref][0]}, "
                f"(const int64_t[]){{{pages}, -1}}, {want}, {text});"
            )
        return self.line(cmd, [], [call])

    def cmd_process_madvise(self, cmd: ProcessMadvise) -> list[dict[str, Any]]:
        m = self.maps[self.procs[cmd.target].maps[cmd.name]]
        L = cmd.line
        runs = ", ".join(f"{a}, {b}" for a, b in cmd.runs)
        call = (
            f"fs_process_madvise((pid_t)fs_turn({L}), {m.ident}, "
            f"(const int64_t[]){{{runs}, -1}}, {MADV_NAMES[cmd.advice]})"
        )
        target = self.procs[cmd.target].ident
        return self.line(
            cmd,
            [f"r = {call};", f"fs_reply({L}, r, 0);"],
            [f"fs_run_process_madvise({L}, {self.P(cmd)}, {target}, {m.ident});"],
        )
    # -- memcg (issue 13): not exported yet ----------------------------------------

    def _refuse_memcg(self, cmd: Command) -> list[dict[str, Any]]:
        self.refuse(cmd, "memory cgroup commands are not exported to C yet (issue 13)")
        return []

    def cmd_memcg_limit(self, cmd: MemcgLimit) -> list[dict[str, Any]]:
        return self._refuse_memcg(cmd)

    def cmd_memcg_reclaim(self, cmd: MemcgReclaim) -> list[dict[str, Any]]:
        return self._refuse_memcg(cmd)

    def cmd_memcg_swappiness(self, cmd: MemcgSwappiness) -> list[dict[str, Any]]:
        return self._refuse_memcg(cmd)

    def cmd_expect_memcg(self, cmd: ExpectMemcg) -> list[dict[str, Any]]:
        return self._refuse_memcg(cmd)

    def cmd_expect_oom_kill(self, cmd: ExpectOomKill) -> list[dict[str, Any]]:
        return self._refuse_memcg(cmd)

    # -- end memcg ----------------------------------------------------------------

    # -- checks -------------------------------------------------------------------

    def check(self, call: str) -> str:
        self.checks += 1
        return call

    def expect_desc(self, cmd: Command) -> str:
        text = cmd.text
        if ":" in text.split()[0]:
            text = text.split(":", 1)[1].strip()
        return f"{cmd.proc} {text.removeprefix('expect').strip()}"

    def line_checks(self, cmd: Command) -> list[str]:
        L = cmd.line
        is_expect = isinstance(cmd, (ExpectData, ExpectState, ExpectSmaps, ExpectVmstat, *PAGE_EXPECTS))
        is_expect = isinstance(
            cmd,
            (ExpectData, ExpectState, ExpectSmaps, ExpectVmstat, ExpectRefData, ExpectResult),
        )
        if self.mode == "scenario":
            if is_expect:
                return [self.check(f"fs_ck_expect({L}, {c_string(self.expect_desc(cmd))});")]
            return []
        if self.mode != "model":
            return []
        out = []
        for ev in self.model_events.get(L, []):
            if ev.get("proc") != cmd.proc:
                continue
            if "error" in ev:
                what = f"{cmd.proc} {ev['op']}" + (f" {ev['map']}" if "map" in ev else "")
                out.append(
                    self.check(f"fs_ck_error({L}, {c_string(what)}, {c_string(ev['error'])});")
                )
            elif ev["op"] == "read":
                assert isinstance(cmd, Read)
                what = f"{cmd.proc} read {cmd.name} {_runs_text(cmd.runs)}"
                out.append(
                    self.check(
                        f"fs_ck_data({L}, {c_string(what)}, {c_string(','.join(ev['data']))});"
                    )
                )
            elif ev["op"] == "expect":
                got = ev["got"]
                if got is None:
                    text = "null"
                elif isinstance(cmd, (ExpectOrder, ExpectMapcount, ExpectFlags)):
                    # fs_expect_pages()/fs_expect_flags() keep JSON tokens (null, "+dirty").
                    text = ",".join(json.dumps(v) for v in got)
                elif isinstance(got, list):
                    text = ",".join(got)
                else:
                    text = str(got)
                desc = self.expect_desc(cmd)
                out.append(self.check(f"fs_ck_got({L}, {c_string(desc)}, {c_string(text)});"))
            elif ev["op"] == "observe":
                out += self.state_checks(f"line {L}", ev["state"])
        return out

    def state_checks(self, where: str, state: dict[str, Any]) -> list[str]:
        w = c_string(where)
        out = []
        procs = state.get("procs", {})
        shape = " ".join(
            f"{pn}[{','.join(sorted(pv['maps']))}]" for pn, pv in sorted(procs.items())
        )
        out.append(self.check(f"fs_ck_procs({w}, {c_string(shape)});"))
        vm = state.get("vmstat", {})
        out.append(self.check(f"fs_ck_vmstat({w}, {c_string(_nonzero(vm))}, {c_string(_kv(vm))});"))
        names = [mthp_size_name(kb) for kb in MTHP_SIZES_KB]
        mthp = state.get("mthp", {})
        for size, stats in sorted(mthp.items(), key=lambda kv: names.index(kv[0])):
            s = names.index(size)
            out.append(
                self.check(
                    f"fs_ck_mthp({w}, {s}, {c_string(_nonzero(stats))}, {c_string(_kv(stats))});"
                )
            )
        for pn, pv in sorted(procs.items()):
            p = self.procs[pn]
            if "minflt" in pv:
                out.append(
                    self.check(
                        f"fs_ck_faults({w}, {p.ident}, {pv['minflt']}, {pv.get('majflt', 0)});"
                    )
                )
            for mn, mv in sorted(pv["maps"].items()):
                m = self.maps[p.maps[mn]]
                if "vmas" in mv:
                    vmas = "; ".join(
                        f"{v['first']}-{v['last']} {v['prot']} {' '.join(v['flags'])}"
                        for v in mv["vmas"]
                    )
                    out.append(self.check(f"fs_ck_vmas({w}, {p.ident}, {m.ident}, {c_string(vmas)});"))
                out.append(
                    self.check(
                        f"fs_ck_smaps({w}, {p.ident}, {m.ident}, {c_string(_nonzero(mv['smaps']))}, "
                        f"{c_string(_kv(mv['smaps']))});"
                    )
                )
                pages = mv["pages"]
                i = 0
                while i < len(pages):
                    j = i
                    while j + 1 < len(pages) and pages[j + 1] == pages[i]:
                        j += 1
                    out.append(self.check(self.page_check(w, p, m, i, j, pages[i])))
                    i = j + 1
        return out

    def page_check(
        self, where: str, p: _Proc, m: _MapObj, first: int, last: int, page: dict[str, Any]
    ) -> str:
        state = page["state"]
        flags = ",".join(page.get("flags", []))
        desc = state
        if state == "present":
            desc += f" order={page.get('order', 0)} mapcount={page.get('mapcount', 0)} {flags}"
        if page.get("exclusive"):
            desc += " exclusive"
        if page.get("soft_dirty"):
            desc += " soft_dirty"
        return (
            f"fs_ck_pages({where}, {p.ident}, {m.ident}, {first}, {last}, {c_string(desc)}, "
            f"{STATE_CODES[state]}, {int(bool(page.get('exclusive')))}, "
            f"{int(bool(page.get('soft_dirty')))}, {c_string(flags)}, "
            f"{page.get('mapcount', 0)}, {page.get('order', 0)});"
        )

    # -- the file -----------------------------------------------------------------

    def needs_root(self) -> str:
        cmds = self.sc.commands
        if any(isinstance(c, Swap) and c.pages for c in cmds):
            return "needs root: swap on zram0 (swapon, /sys/block/zram0)"
        if any(isinstance(c, (Thp, Mthp)) for c in cmds):
            return "needs root: THP settings in /sys/kernel/mm/transparent_hugepage"
        if any(isinstance(c, Fork) for c in cmds):
            return "needs root: PG_lru from /proc/kpageflags to drain lru_add after fork"
        if self.mode != "scenario":
            return "needs root: page flags and pfns (/proc/kpageflags, /proc/PID/pagemap)"
        return ""

    def program(
        self,
        scenario: Scenario,
        source: str | None = None,
        assert_mode: str | None = None,
        model: Any = None,
    ) -> str:
        """The C file of `scenario` (see export_c)."""
        self.reset(scenario, source, assert_mode, model)
        self.proc("p0")
        for cmd in self.sc.commands:
            if cmd.proc not in self.procs:
                self.refuse(cmd, f"no process {cmd.proc!r} at this line")
            # The shared dispatch's table: command class -> cmd_<keyword> handler.
            getattr(self, HANDLERS[type(cmd)])(cmd)
        if len(self.proc_order) > MAX_PROCS:
            fork = next(c for c in self.sc.commands if isinstance(c, Fork))
            self.refuse(fork, f"more than {MAX_PROCS} processes")
        end: list[str] = ["fs_finish();"]
        if self.mode == "model":
            end += self.state_checks("end", self.model["final"])
            end.append(self.check("fs_ck_no_other_errors();"))
        end.append("return fs_end();")
        self.script.append("/* the end: the final STATE */")
        self.emit(self.script, end)
        prelude = PRELUDE.read_text()
        return (
            prelude.replace("/*@HEADER@*/", self.header())
            .replace("/*@TABLES@*/", self.tables())
            .replace("/*@SCRIPT@*/", self.functions())
        )

    def header(self) -> str:
        mode = {None: "prints the observation JSON", "scenario": "checks the expect lines (TAP)"}
        lines = [
            f"/* {_comment(self.sc.name)}: exported by `foliosim export-c"
            + (f" --assert {self.mode}" if self.mode else "")
            + "`.",
            " *",
            " * A standalone run of the scenario on this machine's Linux; it "
            + mode.get(self.mode, "checks the model's predicted observation (TAP)")
            + ".",
            " *   gcc -O2 -Wall -Wextra -Werror -o scenario scenario.c && sudo ./scenario",
            " * Options: --json FILE (the observation JSON, '-' for stdout), --trace.",
            " * Exit: 0 as expected, 1 a check or expect line failed, 3 error, 4 skipped.",
        ]
        if self.mode == "model":
            lines.append(
                f" * Model: {self.model['backend'].get('profile', '?')} "
                "(the predicted observation the checks compare with)."
            )
        if self.source is not None:
            lines += [" *", " * The scenario:"]
            lines += [f" *   {_comment(t)}".rstrip() for t in self.source.rstrip("\n").split("\n")]
        lines.append(" */")
        return "\n".join(lines)

    def tables(self) -> str:
        procs, maps = self.proc_order, self.maps
        mthp_names = [mthp_size_name(kb) for kb in MTHP_SIZES_KB]
        kpf = sorted(KPF_NAMES.items(), key=lambda kv: kv[1])
        lines_max = max((c.line for c in self.sc.commands), default=0)
        t = [
            f"#define FS_NPROC {len(procs)}",
            f"#define FS_NMAP {len(maps)}",
            f"#define FS_NLABEL {len(self.labels)}",
            f"#define FS_NREF {len(self.refs)}",
            f"#define FS_NRING {self.nrings}",
            f"#define FS_NFORK {sum(isinstance(c, Fork) for c in self.sc.commands)}",
            # Reads, and the page lists of expect lines: the longest mapping bounds both.
            f"#define FS_MAX_READ {max([self.max_read, *(m.pages for m in maps)])}",
            f"#define FS_ASSERT {ASSERT_MODES.index(self.mode) + 1 if self.mode else 0}",
            f"#define FS_NCHECKS {self.checks}",
            f"#define FS_NLINES {lines_max}",
            f"#define FS_NEEDS_ROOT {c_string(self.needs_root())}",
            f"#define FS_USES_SWAP {int(any(isinstance(c, Swap) and c.pages for c in self.sc.commands))}",
            f"#define FS_NMTHP {len(MTHP_SIZES_KB)}",
            f"#define FS_NSMAPS {len(SMAPS_KEYS)}",
            f"#define FS_NVM {len(VMSTAT_KEYS)}",
            f"#define FS_NKPF {len(kpf)}",
        ]
        for name in ("compound_head", "compound_tail", "zero_page", "lru"):
            t.append(f"#define FS_KPF_{name.upper()} {KPF_BITS[name]}")
        t.append("")
        t.append(f"static const char fs_scenario_json[] FS_UNUSED = {c_json(self.sc.name)};")
        t.append(f"static const char fs_scenario_bare[] FS_UNUSED = {c_string(self.sc.name)};")
        t.append(f"enum {{ {', '.join(p.ident for p in procs)} }};")
        t.append(_array("const char *const", "fs_proc_bare", [c_string(p.name) for p in procs]))
        t.append(_array("const char *const", "fs_proc_json", [c_json(p.name) for p in procs]))
        t.append(
            _array(
                "const int",
                "fs_proc_by_name",
                [str(p.index) for p in sorted(procs, key=lambda p: p.name)],
            )
        )
        if maps:
            t.append(f"enum {{ {', '.join(m.ident for m in maps)} }};")
        t.append(
            _array(
                # Not const: a failed mremap gives the new object the old address
                # (fs_mremap_failed()).
                "struct fs_map",
                "fs_map",
                [
                    f"{{ {c_json(m.name)}, {m.addr:#x}, {m.pages}, {int(m.droppable)}, "
                    f"{PROT_NAMES[m.prot]} }}"
                    for m in maps
                ],
                extra=True,
            )
        )
        t.append(_array("const char *const", "fs_map_bare", [c_string(m.name) for m in maps], True))
        order = sorted(range(len(maps)), key=lambda i: maps[i].name)
        t.append(_array("const int", "fs_map_by_name", [str(i) for i in order], True))
        if self.labels:
            t.append(f"enum {{ {', '.join(f'L_{i}' for i in range(len(self.labels)))} }};")
        t.append(_array("const char *const", "fs_label", [c_string(x) for x in self.labels], True))
        if self.refs:
            t.append(f"enum {{ {', '.join(r for r, _ in self.refs.values())} }};")
        t.append(
            _array(
                "const uint64_t", "fs_ref_pipe_size", [str(s) for _, s in self.refs.values()], True
            )
        )
        t.append(_array("const int", "fs_mthp_kb", [str(kb) for kb in MTHP_SIZES_KB]))
        t.append(_array("const char *const", "fs_mthp_name", [c_string(n) for n in mthp_names]))
        t.append(_array("const char *const", "fs_mthp_bare", [c_string(n) for n in mthp_names]))
        by_name = sorted(range(len(mthp_names)), key=lambda i: mthp_names[i])
        t.append(_array("const int", "fs_mthp_by_name", [str(i) for i in by_name]))
        t.append(
            _array("const char *const", "fs_smaps_key", [c_string(k) for k in sorted(SMAPS_KEYS)])
        )
        t.append(
            _array("const char *const", "fs_vm_key", [c_string(k) for k in sorted(VMSTAT_KEYS)])
        )
        t.append(
            "struct fs_kpf { int bit; const char *name; int never, not_on_zero; };\n"
            + _array(
                "const struct fs_kpf",
                "fs_kpf_sorted",
                [
                    f"{{ {bit}, {c_string(name)}, {int(name in KPF_NEVER_REPORTED)}, "
                    f"{int(name in KPF_NOT_ON_ZERO_PAGE)} }}"
                    for bit, name in kpf
                ],
            )
        )
        return "\n".join(t)

    def functions(self) -> str:
        out = ["/* The scenario's processes: each runs its own lines, in order. */"]
        for p in self.proc_order:
            out.append(f"static void fs_proc_{p.ident}(void);")
        out.append("")
        for p in self.proc_order:
            out.append(f"/* {_comment(p.name)} */")
            out.append(f"static void fs_proc_{p.ident}(void)")
            out.append("{")
            out.append("\tint r FS_UNUSED = 0;")
            out.append("")
            if p.index == 0:
                out.append(
                    "\t/* the contract's start: every per-CPU folio batch of this CPU empty */"
                )
                out.append("\tfs_turn(0);")
                out.append("\tfs_reply(0, fs_drain_batches(), 0);")
            out += p.code
            out.append("\t/* done: stay, so that the end can observe us */")
            out.append("\tfs_turn_op(-1);")
            out.append("}")
            out.append("")
        out.append("/* The poke helper: another process that writes pages through GUP. */")
        out.append("static void fs_proc_helper(void)")
        out.append("{")
        out.append("\tint r FS_UNUSED = 0;")
        out.append("\tpid_t pid FS_UNUSED;")
        out.append("")
        out += self.helper
        out.append("\tfs_turn_op(-1);")
        out.append("}")
        out.append("")
        out.append("/* The orchestrator: whose turn each line is, and what is observed. */")
        out.append("int main(int argc, char **argv)")
        out.append("{")
        out.append(f"\tfs_start(argc, argv, fs_proc_{self.proc_order[0].ident}, fs_proc_helper);")
        out += self.script
        out.append("}")
        return "\n".join(out) + "\n"


def _array(ctype: str, name: str, items: list[str], extra: bool = False) -> str:
    # extra: sized one more than needed, so that a scenario without any is still valid C.
    size = f"[{len(items) + 1}]" if extra else f"[{len(items)}]"
    body = ",\n\t".join(items)
    return (
        f"static {ctype} {name}{size} FS_UNUSED = {{\n\t{body}\n}};"
        if items
        else (f"static {ctype} {name}{size} FS_UNUSED;")
    )


def _kv(values: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def _nonzero(values: dict[str, int]) -> str:
    nz = [f"{k} {v}" for k, v in sorted(values.items()) if v]
    return ", ".join(nz) if nz else "all 0"


def export_c(
    scenario: Scenario,
    source: str | None = None,
    assert_mode: str | None = None,
    model_observation: dict[str, Any] | None = None,
) -> str:
    """The C program of `scenario`; `assert_mode` 'model' needs the model's observation.

    `source`, the scenario text, is quoted in the file's head comment.  Raises
    ScenarioError (FILE:LINE:COL) for what the program cannot express.
    """
    if assert_mode not in (None, *ASSERT_MODES):
        raise ValueError(f"assert mode {assert_mode!r}: expected one of {', '.join(ASSERT_MODES)}")
    if assert_mode == "model" and model_observation is None:
        raise ValueError("--assert model needs the model's observation")
    return CProgram().program(scenario, source, assert_mode, model_observation)
