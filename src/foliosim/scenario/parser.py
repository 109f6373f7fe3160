"""Parse scenario text (contract v1) into the dataclasses of foliosim.scenario.ast.

Everything that can be known before running is checked here, statically:
words, numbers, sizes and ranges; which processes are alive, which mappings
each one has and how many pages; which GUP references are held and which
labels were written.  The first problem raises ScenarioError pointing at the
offending word; nothing after it is looked at.  docs/scenario-format.md
describes the language as implemented here.
"""

from __future__ import annotations

import bisect
import difflib
import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partialmethod
from typing import NoReturn

from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError

NAME_MAX = 64
NAME_CHARS = "A-Z a-z 0-9 _ . + -"
NOT_LABELS = (ast.DATA_ZERO, ast.DATA_GARBAGE)
# `offset N` starts a mapping N pages into its 2M slot: N must lie inside the slot.
SLOT_PAGES = 2 * 1024 * 1024 // ast.PAGE_SIZE
SWAP_MIN_BYTES = 64 * 1024
# Every number must fit in 64 bits (and, for int(), stay short).
NUMBER_MAX = 2**64 - 1
_NUMBER_DIGITS_MAX = 20

_UNITS = {"": None, "K": 1024, "M": 1024**2, "G": 1024**3}

_NAME_RE = re.compile(r"[A-Za-z0-9_.+\-]+")
_NAME_BAD_CHAR_RE = re.compile(r"[^A-Za-z0-9_.+\-]")
_COUNTER_RE = re.compile(r"[a-z0-9_]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_SIZE_RE = re.compile(r"([0-9]+)([A-Za-z]*)")
_RUN_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_SIGNED_RE = re.compile(r"-?[0-9]+")
_WORD_RE = re.compile(r"[^ \t]+")
# Characters refused outside comments: controls other than tab, and lone surrogates.
_BAD_CHAR_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")

USAGE = {
    "mthp": "mthp SIZE MODE",
    "thp": "thp MODE",
    "swap": "swap SIZE | swap off",
    "mmap": "mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite]",
    "munmap": "munmap NAME [RANGE]",
    "mprotect": "mprotect NAME RANGE none|read|readwrite",
    "mremap": "mremap NAME PAGES [move [offset PAGES]]",
    "write": "write NAME RANGE [as LABEL]",
    "read": "read NAME RANGE",
    "madvise": "madvise NAME RANGE ADVICE",
    "mlock": "mlock NAME RANGE [onfault]",
    "munlock": "munlock NAME RANGE",
    "fork": "fork CHILD",
    "exit": "exit",
    "gup": "gup NAME RANGE as REF",
    "release": "release REF",
    "poke": "poke NAME RANGE [as LABEL]",
    "mlockall": "mlockall [current] [future] [onfault]",
    "munlockall": "munlockall",
    "observe": "observe [LABEL]",
    "expect": (
        "expect NAME RANGE data LABEL|zero|garbage, expect NAME RANGE present|swap|none, "
        "expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., "
        "expect NAME smaps FIELD KB, expect vmstat COUNTER N, or expect result ok|ERRNAME"
    ),
    # -- references (issue 12) --
    "pin": "pin NAME RANGE as REF [readonly]",
    "process_madvise": "process_madvise OTHER NAME RANGE ADVICE",
    # memcg (issue 13)
    "memcg": (
        "memcg limit SIZE|max, memcg reclaim SIZE, or memcg swappiness N "
        "(and expect memcg FIELD N|max)"
    ),
}
COMMANDS = tuple(USAGE)
# The page expectations after `expect NAME RANGE`, besides data and the states.
PAGE_EXPECTS = ("order", "mapcount", "exclusive", "flags")
ORDER_MAX = 9  # HPAGE_PMD_ORDER: anonymous folios are at most 2M
FLAG_NAMES = tuple(
    sorted(n for n in ast.KPF_NAMES.values() if n not in ast.KPF_NEVER_REPORTED)
)
# What `expect result` takes besides ok: errno names, and the signals a user access
# can end in (the runner catches them).
RESULT_SIGNALS = ("SIGSEGV", "SIGBUS")
RESULT_NAMES = frozenset(errno.errorcode.values()) | frozenset(RESULT_SIGNALS)


def parse_file(path: str | os.PathLike[str]) -> ast.Scenario:
    """Read and parse a scenario file; unreadable files are ScenarioError at 0:0."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ScenarioError(name, 0, 0, f"cannot read scenario file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[line_start : e.start].decode("utf-8", errors="replace")) + 1
        raise ScenarioError(
            name, line, col, f"not UTF-8 text: byte 0x{data[e.start]:02x} cannot be decoded"
        ) from None
    return parse_text(text, name)


def parse_text(text: str, path: str) -> ast.Scenario:
    """Parse scenario text; `path` names the scenario in errors and observations."""
    return _Parser(path).parse(text)


@dataclass(frozen=True)
class _Map:
    pages: int
    line: int  # where it was mmapped (in an ancestor, for a forked copy)


@dataclass
class _Proc:
    maps: dict[str, _Map] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # name -> line of munmap


@dataclass(frozen=True)
class _Word:
    text: str
    col: int  # 1-based

    @property
    def end(self) -> int:
        """Column just past the word."""
        return self.col + len(self.text)


def _q(s: str) -> str:
    """`s` quoted for a one-line message; unprintable characters escaped."""
    out = []
    for ch in s:
        if ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "'" + "".join(out) + "'"


def _names(names: Iterable[str]) -> str:
    items = sorted(names)
    return ", ".join(items) if items else "none"


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()][:1]
    return f"; did you mean {_q(close[0])}?" if close else ""


def _size_text(nbytes: int) -> str:
    for unit, mult in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if nbytes % mult == 0 and nbytes >= mult:
            return f"{nbytes // mult}{unit}"
    return f"{nbytes} bytes"


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.procs: dict[str, _Proc] = {"p0": _Proc()}
        self.exited: dict[str, int] = {}  # name -> line of exit
        self.refs: dict[str, int] = {}  # held ref -> line of gup
        self.released: dict[str, int] = {}  # ref -> line of release
        self.labels: set[str] = set()
        # process -> line of its last command that has an outcome (not expect, observe)
        self.last_line: dict[str, int] = {}
        self.line = 0
        self.words: list[_Word] = []
        self.pos = 0
        self.cmd = ""  # the command word of the current line
        self.code = ""  # the current line without its comment

    # -- errors and words ------------------------------------------------------------

    def fail(self, col: int, reason: str) -> NoReturn:
        raise ScenarioError(self.path, self.line, col, reason)

    def usage(self) -> str:
        return f"usage: {USAGE[self.cmd]}"

    def peek(self) -> _Word | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def next(self, what: str) -> _Word:
        """The next word; a missing one is reported one blank after the last word."""
        w = self.peek()
        if w is None:
            self.fail(self.words[-1].end + 1, f"{self.cmd}: missing {what} ({self.usage()})")
        self.pos += 1
        return w

    def done(self) -> None:
        w = self.peek()
        if w is not None:
            after = self.words[self.pos - 1].text
            self.fail(
                w.col,
                f"{self.cmd}: unexpected {_q(w.text)} after {_q(after)}, expected end of line "
                f"({self.usage()})",
            )

    # -- lines -----------------------------------------------------------------------

    def parse(self, text: str) -> ast.Scenario:
        text = text.removeprefix("\ufeff")
        commands: list[ast.Command] = []
        for lineno, raw in enumerate(text.split("\n"), start=1):
            self.line = lineno
            raw = raw.removesuffix("\r")
            cmd = self.parse_line(raw)
            if cmd is not None:
                commands.append(cmd)
        return ast.Scenario(path=self.path, commands=tuple(commands))

    def parse_line(self, raw: str) -> ast.Command | None:
        hash_at = raw.find("#")
        code = raw if hash_at < 0 else raw[:hash_at]
        bad = _BAD_CHAR_RE.search(code)
        if bad:
            ch = bad.group()
            self.fail(
                bad.start() + 1,
                f"character U+{ord(ch):04X} is not allowed outside comments "
                "(words are separated by blanks and tabs)",
            )
        self.words = [_Word(m.group(), m.start() + 1) for m in _WORD_RE.finditer(code)]
        if not self.words:
            return None
        text = code.strip(" \t")
        self.code = code
        self.pos = 0
        proc, cmd_word = self.prefix()
        self.cmd = cmd_word.text
        handler = getattr(self, "cmd_" + cmd_word.text, None)
        if cmd_word.text not in USAGE or handler is None:
            hint = _did_you_mean(cmd_word.text, COMMANDS)
            if not hint and ":" in cmd_word.text:
                hint = " (only one PROC: prefix per line)"
            self.fail(
                cmd_word.col,
                f"unknown command {_q(cmd_word.text)}{hint or ' (commands: ' + ', '.join(COMMANDS) + ')'}",
            )
        cmd: ast.Command = handler(proc, text)
        if not isinstance(cmd, ast.Observe) and not type(cmd).__name__.startswith("Expect"):
            self.last_line[proc] = self.line
        return cmd

    def prefix(self) -> tuple[str, _Word]:
        """The process running this line (`PROC:` prefix or p0) and the command word."""
        first = self.words[0]
        if ":" not in first.text:
            if len(self.words) > 1 and self.words[1].text.startswith(":"):
                self.fail(
                    self.words[1].col,
                    f"write the process prefix as {_q(first.text + ':')}, without a blank "
                    "before the colon",
                )
            self.pos = 1
            self.check_alive("p0", first.col, prefixed=False)
            return "p0", first
        colon = first.text.index(":")
        proc = first.text[:colon]
        if not proc:
            self.fail(first.col, "empty process name before ':' (write e.g. 'p1: write A 0')")
        self.check_name(proc, first.col, "process")
        self.check_alive(proc, first.col, prefixed=True)
        rest = first.text[colon + 1 :]
        if rest:
            self.words[0] = _Word(rest, first.col + colon + 1)
            self.pos = 1
            return proc, self.words[0]
        self.pos = 1
        if len(self.words) == 1:
            self.fail(first.end + 1, f"missing command after {_q(first.text)}")
        self.pos = 2
        return proc, self.words[1]

    # -- names and state -------------------------------------------------------------

    def check_name(self, name: str, col: int, kind: str) -> None:
        if len(name) > NAME_MAX:
            self.fail(
                col,
                f"{kind} name {_q(name[:20] + '...')} is {len(name)} characters long; "
                f"names are 1-{NAME_MAX} of {NAME_CHARS}",
            )
        bad = _NAME_BAD_CHAR_RE.search(name)
        if bad:
            self.fail(
                col + bad.start(),
                f"bad {kind} name {_q(name)}: {_q(bad.group())} is not allowed "
                f"(names are 1-{NAME_MAX} of {NAME_CHARS})",
            )

    def check_alive(self, proc: str, col: int, prefixed: bool) -> None:
        if proc in self.procs:
            return
        live = f"live processes: {_names(self.procs)}"
        if proc in self.exited:
            how = ""
            if not self.procs:
                live = "no process is alive"
            elif not prefixed:
                how = f"; prefix the line with a live process, e.g. '{min(self.procs)}: '"
            self.fail(
                col,
                f"process {_q(proc)} exited at line {self.exited[proc]} ({live}){how}",
            )
        self.fail(col, f"unknown process {_q(proc)} ({live}){_did_you_mean(proc, self.procs)}")

    def mapping(self, proc: str, w: _Word) -> tuple[str, _Map]:
        self.check_name(w.text, w.col, "mapping")
        p = self.procs[proc]
        m = p.maps.get(w.text)
        if m is not None:
            return w.text, m
        others = sorted(o for o, op in self.procs.items() if w.text in op.maps)
        hint = ""
        if others:
            hint = f"; {others[0]} has a mapping {_q(w.text)}: prefix the line with '{others[0]}: '"
        if w.text in p.unmapped:
            self.fail(
                w.col,
                f"mapping {_q(w.text)} of {proc} was unmapped at line {p.unmapped[w.text]} "
                f"(mappings of {proc} now: {_names(p.maps)}){hint}",
            )
        if not hint:
            candidates = list(p.maps) + (["vmstat"] if self.cmd == "expect" else [])
            hint = _did_you_mean(w.text, candidates)
        self.fail(
            w.col,
            f"unknown mapping {_q(w.text)} (mappings of {proc} so far: {_names(p.maps)}){hint}",
        )

    def label(self, w: _Word) -> str:
        self.check_name(w.text, w.col, "label")
        if w.text in NOT_LABELS:
            self.fail(
                w.col,
                f"{_q(w.text)} is not a label: reads report {_q(w.text)} for such pages; "
                "choose another label",
            )
        return w.text

    # -- numbers, sizes, ranges ------------------------------------------------------

    def number(self, text: str, col: int, what: str) -> int:
        if not _DIGITS_RE.fullmatch(text):
            self.fail(col, f"bad {what} {_q(text)}: expected a number (digits only)")
        if len(text.lstrip("0")) > _NUMBER_DIGITS_MAX or int(text) > NUMBER_MAX:
            self.fail(col, f"{what} {_q(text[:24])} is too large (at most {NUMBER_MAX})")
        return int(text)

    def size_bytes(self, w: _Word, what: str, bare_is_pages: bool = True) -> int:
        """Bytes of a SIZE word: N (pages), NK, NM or NG (powers of 1024), whole pages."""
        m = _SIZE_RE.fullmatch(w.text)
        if not m:
            self.fail(
                w.col,
                f"bad {what} {_q(w.text)}: expected a page count or a number with a K, M or G "
                "suffix (powers of 1024), e.g. 16 or 64K",
            )
        digits, unit = m.groups()
        if unit not in _UNITS:
            hint = (
                f"; write {_q(digits + unit.upper())}"
                if unit.upper() in _UNITS
                else ", K, M or G (powers of 1024)"
            )
            self.fail(
                w.col + len(digits),
                f"bad {what} {_q(w.text)}: unknown size suffix {_q(unit)}{hint}",
            )
        if unit == "" and not bare_is_pages:
            self.fail(w.col, f"bad {what} {_q(w.text)}: needs a K or M suffix, e.g. 64K")
        n = self.number(digits, w.col, what)
        mult = _UNITS[unit] or ast.PAGE_SIZE
        nbytes = n * mult
        if nbytes > NUMBER_MAX:
            self.fail(w.col, f"{what} {_q(w.text)} is too large (at most {NUMBER_MAX} bytes)")
        if nbytes % ast.PAGE_SIZE:
            self.fail(
                w.col,
                f"{what} {_q(w.text)} is not a whole number of 4K pages "
                f"({nbytes} bytes; e.g. {_size_text(-(-nbytes // ast.PAGE_SIZE) * ast.PAGE_SIZE)})",
            )
        return nbytes

    def range(self, w: _Word, name: str, pages: int) -> ast.Runs:
        """Inclusive runs of a RANGE word over a mapping of `pages` pages, as written."""
        if w.text == "all":
            return ((0, pages - 1),)
        span = f"mapping {_q(name)} has {pages} page{'s' if pages != 1 else ''}: " + (
            "0" if pages == 1 else f"0-{pages - 1}"
        )
        runs: list[tuple[int, int]] = []
        ordered: list[tuple[int, int]] = []  # runs sorted, to find overlaps
        col = w.col
        for part in w.text.split(","):
            if part == "":
                self.fail(col, f"bad range {_q(w.text)}: empty run between commas")
            if part == "all":
                self.fail(col, "'all' cannot be combined with other runs in a range")
            m = _RUN_RE.fullmatch(part)
            if not m:
                self.fail(
                    col,
                    f"bad range run {_q(part)}: expected PAGE or FIRST-LAST, runs separated by "
                    "commas (e.g. 0-3,8,10-11), or all",
                )
            first = self.number(m.group(1), col, "page index")
            last_col = col + m.start(2) if m.group(2) else col
            last = self.number(m.group(2), last_col, "page index") if m.group(2) else first
            if first > last:
                self.fail(col, f"run {_q(part)} goes backwards; write {last}-{first}")
            if first >= pages:
                self.fail(col, f"page {first} is outside the mapping ({span})")
            if last >= pages:
                self.fail(last_col, f"page {last} is outside the mapping ({span})")
            i = bisect.bisect_left(ordered, (first, last))
            for j in (i - 1, i):
                if 0 <= j < len(ordered):
                    a, b = ordered[j]
                    if first <= b and a <= last:
                        self.fail(
                            col,
                            f"page {max(a, first)} appears twice in range {_q(w.text)}",
                        )
            ordered.insert(i, (first, last))
            runs.append((first, last))
            col += len(part) + 1
        return tuple(runs)

    def choice(self, w: _Word, what: str, choices: tuple[str, ...]) -> str:
        if w.text not in choices:
            self.fail(
                w.col,
                f"{self.cmd}: unknown {what} {_q(w.text)}, expected one of "
                f"{', '.join(choices)}{_did_you_mean(w.text, choices)}",
            )
        return w.text

    def map_and_range(self, proc: str) -> tuple[str, ast.Runs]:
        name, m = self.mapping(proc, self.next("mapping NAME"))
        return name, self.range(self.next("RANGE"), name, m.pages)

    def opt_label(self, default: str) -> str:
        w = self.peek()
        if w is None:
            return default
        if w.text != "as":
            self.fail(
                w.col,
                f"{self.cmd}: unexpected {_q(w.text)}, expected 'as LABEL' or end of line "
                f"({self.usage()})",
            )
        self.pos += 1
        label = self.label(self.next("LABEL after 'as'"))
        self.done()
        return label

    # -- commands --------------------------------------------------------------------

    def cmd_mthp(self, proc: str, text: str) -> ast.Command:
        w = self.next("SIZE")
        sizes = ", ".join(f"{kb // 1024}M" if kb >= 1024 else f"{kb}K" for kb in ast.MTHP_SIZES_KB)
        kb = self.size_bytes(w, "mTHP size", bare_is_pages=False) // 1024
        if kb not in ast.MTHP_SIZES_KB:
            self.fail(w.col, f"mthp: no mTHP size {_q(w.text)}, expected one of {sizes}")
        mode = self.choice(self.next("MODE"), "mode", ast.MTHP_MODES)
        self.done()
        return ast.Mthp(line=self.line, proc=proc, text=text, size_kb=kb, mode=mode)

    def cmd_thp(self, proc: str, text: str) -> ast.Command:
        mode = self.choice(self.next("MODE"), "mode", ast.THP_MODES)
        self.done()
        return ast.Thp(line=self.line, proc=proc, text=text, mode=mode)

    def cmd_swap(self, proc: str, text: str) -> ast.Command:
        w = self.next("SIZE or off")
        pages: int | None = None
        if w.text != "off":
            nbytes = self.size_bytes(w, "swap size")
            if nbytes < SWAP_MIN_BYTES:
                self.fail(
                    w.col,
                    f"swap size {_q(w.text)} ({_size_text(nbytes)}) is below the 64K minimum",
                )
            pages = nbytes // ast.PAGE_SIZE
        self.done()
        return ast.Swap(line=self.line, proc=proc, text=text, pages=pages)

    def cmd_mmap(self, proc: str, text: str) -> ast.Command:
        w = self.next("mapping NAME")
        self.check_name(w.text, w.col, "mapping")
        p = self.procs[proc]
        if w.text in p.maps:
            self.fail(
                w.col,
                f"mapping {_q(w.text)} already exists in {proc} (mapped at line "
                f"{p.maps[w.text].line}); munmap it first or choose another name",
            )
        size = self.next("SIZE")
        nbytes = self.size_bytes(size, "mapping size")
        if nbytes == 0:
            self.fail(size.col, "mapping size must not be zero")
        droppable = False
        offset: int | None = None
        prot: str | None = None
        while (opt := self.peek()) is not None:
            self.pos += 1
            if opt.text == "prot":
                if prot is not None:
                    self.fail(opt.col, "mmap: 'prot' given twice")
                prot = self.choice(self.next("protection after 'prot'"), "protection", ast.PROTS)
            elif opt.text == "droppable":
                if droppable:
                    self.fail(opt.col, "mmap: 'droppable' given twice")
                droppable = True
            elif opt.text == "offset":
                if offset is not None:
                    self.fail(opt.col, "mmap: 'offset' given twice")
                ow = self.next("PAGES after 'offset'")
                offset = self.size_bytes(ow, "offset") // ast.PAGE_SIZE
                if offset >= SLOT_PAGES:
                    self.fail(
                        ow.col,
                        f"offset {_q(ow.text)} is {offset} pages; it must stay inside the 2M slot "
                        f"(0-{SLOT_PAGES - 1} pages)",
                    )
            else:
                self.fail(
                    opt.col,
                    f"mmap: unexpected {_q(opt.text)}, expected 'droppable', 'offset PAGES', "
                    f"'prot PROT' or end of line ({self.usage()})"
                    f"{_did_you_mean(opt.text, ('droppable', 'offset', 'prot'))}",
                )
        pages = nbytes // ast.PAGE_SIZE
        p.maps[w.text] = _Map(pages=pages, line=self.line)
        p.unmapped.pop(w.text, None)
        return ast.Mmap(
            line=self.line,
            proc=proc,
            text=text,
            name=w.text,
            pages=pages,
            droppable=droppable,
            offset=offset or 0,
            prot=prot or "readwrite",
        )

    def cmd_munmap(self, proc: str, text: str) -> ast.Command:
        name, m = self.mapping(proc, self.next("mapping NAME"))
        if self.peek() is not None:
            # munmap NAME RANGE: part of it; the mapping (and its name) stays, with holes.
            runs = self.range(self.next("RANGE"), name, m.pages)
            self.done()
            return ast.Munmap(line=self.line, proc=proc, text=text, name=name, runs=runs)
        p = self.procs[proc]
        del p.maps[name]
        p.unmapped[name] = self.line
        return ast.Munmap(line=self.line, proc=proc, text=text, name=name)

    # -- protections, mremap ---------------------------------------------------------

    def cmd_mprotect(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        prot = self.choice(self.next("protection (none, read or readwrite)"), "protection", ast.PROTS)
        self.done()
        return ast.Mprotect(line=self.line, proc=proc, text=text, name=name, runs=runs, prot=prot)

    def cmd_mremap(self, proc: str, text: str) -> ast.Command:
        name, m = self.mapping(proc, self.next("mapping NAME"))
        size = self.next("PAGES (the new size)")
        pages = self.size_bytes(size, "mremap size") // ast.PAGE_SIZE
        if pages == 0:
            self.fail(size.col, "mremap to zero pages: the new size must not be zero (munmap it)")
        move = False
        offset = 0
        w = self.peek()
        if w is not None:
            self.pos += 1
            if w.text != "move":
                self.fail(
                    w.col,
                    f"mremap: unexpected {_q(w.text)}, expected 'move' or end of line "
                    f"({self.usage()}){_did_you_mean(w.text, ('move',))}",
                )
            move = True
            o = self.peek()
            if o is not None:
                self.pos += 1
                if o.text != "offset":
                    self.fail(
                        o.col,
                        f"mremap: unexpected {_q(o.text)} after 'move', expected 'offset PAGES' "
                        f"or end of line ({self.usage()})",
                    )
                ow = self.next("PAGES after 'offset'")
                offset = self.size_bytes(ow, "offset") // ast.PAGE_SIZE
                if offset >= SLOT_PAGES:
                    self.fail(
                        ow.col,
                        f"offset {_q(ow.text)} is {offset} pages; it must stay inside the 2M slot "
                        f"(0-{SLOT_PAGES - 1} pages)",
                    )
                self.done()
        self.procs[proc].maps[name] = _Map(pages=pages, line=m.line)
        return ast.Mremap(
            line=self.line, proc=proc, text=text, name=name, pages=pages, move=move, offset=offset
        )

    def cmd_write(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        label = self.opt_label(f"w{self.line}")
        self.labels.add(label)
        return ast.Write(line=self.line, proc=proc, text=text, name=name, runs=runs, label=label)

    def cmd_poke(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        label = self.opt_label(f"w{self.line}")
        self.labels.add(label)
        return ast.Poke(line=self.line, proc=proc, text=text, name=name, runs=runs, label=label)

    def cmd_madvise(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        advice = self.choice(self.next("ADVICE"), "advice", ast.ADVICES)
        self.done()
        return ast.Madvise(
            line=self.line, proc=proc, text=text, name=name, runs=runs, advice=advice
        )

    def name_and_range(
        self, cls: type[ast.Read | ast.Mlock | ast.Munlock], proc: str, text: str
    ) -> ast.Command:
        # `read`, `mlock` and `munlock` take exactly NAME RANGE.
        name, runs = self.map_and_range(proc)
        self.done()
        return cls(line=self.line, proc=proc, text=text, name=name, runs=runs)

    cmd_read = partialmethod(name_and_range, ast.Read)
    cmd_munlock = partialmethod(name_and_range, ast.Munlock)

    # -- mlock [onfault], mlockall, munlockall --------------------------------------

    def cmd_mlock(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        onfault = False
        w = self.peek()
        if w is not None:
            if w.text != "onfault":
                self.fail(
                    w.col,
                    f"mlock: unexpected {_q(w.text)}, expected 'onfault' or end of line "
                    f"({self.usage()}){_did_you_mean(w.text, ('onfault',))}",
                )
            self.pos += 1
            onfault = True
            self.done()
        return ast.Mlock(line=self.line, proc=proc, text=text, name=name, runs=runs, onfault=onfault)

    def cmd_mlockall(self, proc: str, text: str) -> ast.Command:
        words = ("current", "future", "onfault")
        given: dict[str, int] = {}
        while (w := self.peek()) is not None:
            self.pos += 1
            if w.text not in words:
                self.fail(
                    w.col,
                    f"mlockall: unexpected {_q(w.text)}, expected current, future, onfault or "
                    f"end of line ({self.usage()}){_did_you_mean(w.text, words)}",
                )
            if w.text in given:
                self.fail(w.col, f"mlockall: {_q(w.text)} given twice")
            given[w.text] = w.col
        if "current" not in given and "future" not in given:
            # mlockall() refuses flags without MCL_CURRENT or MCL_FUTURE with EINVAL.
            self.fail(
                self.words[-1].end + 1,
                "mlockall: needs current, future or both (MCL_CURRENT, MCL_FUTURE; onfault "
                f"alone is EINVAL) ({self.usage()})",
            )
        return ast.Mlockall(
            line=self.line,
            proc=proc,
            text=text,
            current="current" in given,
            future="future" in given,
            onfault="onfault" in given,
        )

    def cmd_munlockall(self, proc: str, text: str) -> ast.Command:
        self.done()
        return ast.Munlockall(line=self.line, proc=proc, text=text)

    def cmd_fork(self, proc: str, text: str) -> ast.Command:
        w = self.next("CHILD process name")
        self.check_name(w.text, w.col, "process")
        if w.text in self.procs:
            self.fail(
                w.col,
                f"process {_q(w.text)} already exists (live processes: {_names(self.procs)}); "
                "choose another name for the child",
            )
        self.done()
        parent = self.procs[proc]
        self.procs[w.text] = _Proc(maps=dict(parent.maps), unmapped=dict(parent.unmapped))
        self.exited.pop(w.text, None)
        self.last_line.pop(w.text, None)
        return ast.Fork(line=self.line, proc=proc, text=text, child=w.text)

    def cmd_exit(self, proc: str, text: str) -> ast.Command:
        self.done()
        del self.procs[proc]
        self.exited[proc] = self.line
        return ast.Exit(line=self.line, proc=proc, text=text)

    def cmd_gup(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        w = self.next("'as REF'")
        if w.text != "as":
            self.fail(w.col, f"gup: expected 'as REF', found {_q(w.text)} ({self.usage()})")
        r = self.next("REF after 'as'")
        self.check_name(r.text, r.col, "reference")
        if r.text in self.refs:
            self.fail(
                r.col,
                f"reference {_q(r.text)} is already held (taken at line {self.refs[r.text]}); "
                "release it first or choose another name",
            )
        self.done()
        self.refs[r.text] = self.line
        self.released.pop(r.text, None)
        return ast.Gup(line=self.line, proc=proc, text=text, name=name, runs=runs, ref=r.text)

    def cmd_release(self, proc: str, text: str) -> ast.Command:
        r = self.next("REF")
        self.check_name(r.text, r.col, "reference")
        if r.text not in self.refs:
            held = f"held references: {_names(self.refs)}"
            if r.text in self.released:
                self.fail(
                    r.col,
                    f"reference {_q(r.text)} was already released at line "
                    f"{self.released[r.text]} ({held})",
                )
            self.fail(
                r.col,
                f"unknown reference {_q(r.text)} ({held}){_did_you_mean(r.text, self.refs)}",
            )
        self.done()
        del self.refs[r.text]
        self.released[r.text] = self.line
        return ast.Release(line=self.line, proc=proc, text=text, ref=r.text)

    def data_value(self) -> _Word:
        # The VALUE of `expect ... data VALUE`: zero, garbage, or a label written above.
        vw = self.next("LABEL, 'zero' or 'garbage'")
        if vw.text not in NOT_LABELS:
            self.label(vw)
            if vw.text not in self.labels:
                self.fail(
                    vw.col,
                    f"expect: label {_q(vw.text)} was never written before this line "
                    f"(labels so far: {_names(self.labels)}; or zero, garbage)"
                    f"{_did_you_mean(vw.text, self.labels)}",
                )
        return vw

    def cmd_observe(self, proc: str, text: str) -> ast.Command:
        # The label is the rest of the line as written, inner blanks kept.
        w = self.peek()
        label = "" if w is None else self.code[w.col - 1 :].rstrip(" \t")
        return ast.Observe(line=self.line, proc=proc, text=text, label=label)

    # --- memcg (issue 13) ---------------------------------------------------------

    def cmd_memcg(self, proc: str, text: str) -> ast.Command:
        sub = self.choice(self.next("limit, reclaim or swappiness"), "memcg setting",
                          ("limit", "reclaim", "swappiness"))
        w = self.next("SIZE" if sub != "swappiness" else "N")
        cmd: ast.Command
        if sub == "limit" and w.text == "max":
            cmd = ast.MemcgLimit(line=self.line, proc=proc, text=text, pages=None)
        elif sub in ("limit", "reclaim"):
            nbytes = self.size_bytes(w, f"memcg {sub} size")
            if nbytes == 0:
                self.fail(w.col, f"memcg {sub} size must not be zero")
            if sub == "limit":
                cmd = ast.MemcgLimit(
                    line=self.line, proc=proc, text=text, pages=nbytes // ast.PAGE_SIZE
                )
            else:
                cmd = ast.MemcgReclaim(
                    line=self.line, proc=proc, text=text, pages=nbytes // ast.PAGE_SIZE
                )
        else:
            n = self.number(w.text, w.col, "swappiness")
            if n > ast.MEMCG_SWAPPINESS_MAX:
                self.fail(w.col, f"swappiness {n} is above {ast.MEMCG_SWAPPINESS_MAX} (0-200)")
            cmd = ast.MemcgSwappiness(line=self.line, proc=proc, text=text, value=n)
        self.done()
        return cmd

    def expect_memcg(self, proc: str, text: str) -> ast.Command:
        fw = self.next("memcg FIELD")
        fieldname = self.choice(fw, "memcg field", ast.MEMCG_FIELDS)
        nw = self.next("N")
        value: int | None
        if nw.text == "max" and fieldname == "limit":
            value = None
        else:
            value = self.number(nw.text, nw.col, "memcg value")
        self.done()
        return ast.ExpectMemcg(line=self.line, proc=proc, text=text, field=fieldname, value=value)

    def expect_oom_kill(self, proc: str, text: str) -> ast.Command:
        # expect oom_kill PROC|none: a victim of the memcg OOM killer so far.
        w = self.next("PROC or none")
        if w.text != "none" and w.text not in self.procs and w.text not in self.exited:
            self.fail(
                w.col,
                f"expect oom_kill: unknown process {_q(w.text)} (processes so far: "
                f"{', '.join(sorted(self.procs))}), or none",
            )
        self.done()
        victim = None if w.text == "none" else w.text
        return ast.ExpectOomKill(line=self.line, proc=proc, text=text, victim=victim)

    # --- end memcg -----------------------------------------------------------------
    def expect_result(self, proc: str, text: str) -> ast.Command:
        # expect result ok|ERRNAME: of the process's last command with an outcome.
        w = self.next("ok or ERRNAME")
        if w.text != "ok" and w.text not in RESULT_NAMES:
            self.fail(
                w.col,
                f"expect result: unknown result {_q(w.text)}, expected ok, an errno name "
                f"(EINVAL, ENOMEM, EFAULT, ...) or {', '.join(RESULT_SIGNALS)}"
                f"{_did_you_mean(w.text, ['ok', *sorted(RESULT_NAMES)])}",
            )
        self.done()
        of_line = self.last_line.get(proc)
        if of_line is None:
            self.fail(
                self.words[self.pos - 2].col,
                f"expect result: {proc} has run no command before this line whose result "
                "could be expected (expect and observe lines have none)",
            )
        return ast.ExpectResult(line=self.line, proc=proc, text=text, value=w.text, of_line=of_line)

    def cmd_expect(self, proc: str, text: str) -> ast.Command:
        if (
            self.peek() is not None
            and self.peek().text == "result"  # type: ignore[union-attr]
            and len(self.words) - self.pos == 2
        ):
            # Every form for a mapping named 'result' has at least two more words.
            self.pos += 1
            return self.expect_result(proc, text)
        if (
            self.peek() is not None
            and self.peek().text == "oom_kill"  # type: ignore[union-attr]
            and len(self.words) - self.pos == 2
        ):
            # memcg (issue 13): as for 'result', a mapping named oom_kill has longer forms.
            self.pos += 1
            return self.expect_oom_kill(proc, text)
        w1 = self.next("mapping NAME or 'vmstat'")
        rest = self.words[self.pos :]
        if rest and rest[0].text == "data" and self.is_ref_form(proc, w1.text):
            return self.expect_ref_data(proc, text, w1)
        # memcg (issue 13): `expect memcg FIELD N`, told from a mapping named memcg
        # as the vmstat form is (two more words, the first a memcg field).
        rest = self.words[self.pos :]
        if w1.text == "memcg" and (
            "memcg" not in self.procs[proc].maps
            or (len(rest) == 2 and rest[0].text in ast.MEMCG_FIELDS)
        ):
            return self.expect_memcg(proc, text)
        # `expect vmstat COUNTER N` is the only form with exactly two more words, the
        # last a number: that tells it from the forms of a mapping named vmstat.
        rest = self.words[self.pos :]
        is_vmstat = w1.text == "vmstat" and (
            "vmstat" not in self.procs[proc].maps
            or (len(rest) == 2 and _SIGNED_RE.fullmatch(rest[1].text) is not None)
        )
        if is_vmstat:
            c = self.next("COUNTER")
            if not _COUNTER_RE.fullmatch(c.text):
                self.fail(
                    c.col,
                    f"expect: bad vmstat counter {_q(c.text)}: /proc/vmstat names are made of "
                    "a-z 0-9 _",
                )
            nw = self.next("N")
            neg = nw.text.startswith("-")
            n = self.number(nw.text[1:] if neg else nw.text, nw.col, "count")
            self.done()
            return ast.ExpectVmstat(
                line=self.line, proc=proc, text=text, counter=c.text, value=-n if neg else n
            )
        name, m = self.mapping(proc, w1)
        w2 = self.next("RANGE or 'smaps'")
        if w2.text == "smaps":
            fw = self.next("smaps FIELD")
            fieldname = self.choice(fw, "smaps field", ast.SMAPS_KEYS)
            kw = self.next("KB")
            kb = self.number(kw.text, kw.col, "kB value")
            self.done()
            return ast.ExpectSmaps(
                line=self.line, proc=proc, text=text, name=name, field=fieldname, kb=kb
            )
        runs = self.range(w2, name, m.pages)
        kind = self.next("'data', 'present', 'swap', 'none', 'order', 'mapcount', 'exclusive' or 'flags'")
        if kind.text in PAGE_EXPECTS:
            return self.expect_page(proc, text, name, runs, kind)
        if kind.text == "data":
            vw = self.data_value()
            self.done()
            return ast.ExpectData(
                line=self.line, proc=proc, text=text, name=name, runs=runs, value=vw.text
            )
        if kind.text not in ast.PAGE_STATES:
            choices = ("data",) + ast.PAGE_STATES + PAGE_EXPECTS
            self.fail(
                kind.col,
                f"expect: unexpected {_q(kind.text)} after the range, expected one of "
                f"{', '.join(choices)}{_did_you_mean(kind.text, choices)}",
            )
        self.done()
        return ast.ExpectState(
            line=self.line, proc=proc, text=text, name=name, runs=runs, state=kind.text
        )

    # -- page expectations: order, mapcount, exclusive, flags ------------------------

    def expect_page(
        self, proc: str, text: str, name: str, runs: ast.Runs, kind: _Word
    ) -> ast.Command:
        """expect NAME RANGE order N | mapcount N | exclusive yes|no | flags [+|-]FLAG..."""
        common = dict(line=self.line, proc=proc, text=text, name=name, runs=runs)
        if kind.text in ("order", "mapcount"):
            nw = self.next("N")
            n = self.number(nw.text, nw.col, kind.text)
            if kind.text == "order" and n > ORDER_MAX:
                self.fail(
                    nw.col,
                    f"expect: order {n} is above {ORDER_MAX} (anonymous folios are order 0-9: "
                    "4K to 2M)",
                )
            self.done()
            if kind.text == "order":
                return ast.ExpectOrder(**common, order=n)  # type: ignore[arg-type]
            return ast.ExpectMapcount(**common, mapcount=n)  # type: ignore[arg-type]
        if kind.text == "exclusive":
            yw = self.next("yes or no")
            yes = self.choice(yw, "exclusive value", ("yes", "no")) == "yes"
            self.done()
            return ast.ExpectExclusive(**common, exclusive=yes)  # type: ignore[arg-type]
        flags: list[str] = []
        seen: dict[str, int] = {}
        if self.peek() is None:
            self.next("+FLAG or -FLAG")
        while (fw := self.peek()) is not None:
            self.pos += 1
            sign, flag = fw.text[:1], fw.text[1:]
            if sign not in ("+", "-"):
                self.fail(
                    fw.col,
                    f"expect: flag {_q(fw.text)} needs a sign: +{fw.text} (set) or "
                    f"-{fw.text} (clear)",
                )
            if flag in ast.KPF_NEVER_REPORTED:
                self.fail(
                    fw.col + 1,
                    f"expect: flag {_q(flag)} cannot be asserted: the contract never reports "
                    "lru or idle in a page's flags (other activity on the machine changes them: "
                    "per-CPU batches, DAMON)",
                )
            if flag not in FLAG_NAMES:
                self.fail(
                    fw.col + 1,
                    f"expect: unknown page flag {_q(flag)} (/proc/kpageflags names, lower "
                    f"case, e.g. dirty, mlocked, anon_exclusive){_did_you_mean(flag, FLAG_NAMES)}",
                )
            if flag in seen:
                self.fail(fw.col, f"expect: flag {_q(flag)} given twice (first at column {seen[flag]})")
            seen[flag] = fw.col
            flags.append(fw.text)
        return ast.ExpectFlags(**common, flags=tuple(flags))  # type: ignore[arg-type]
    # -- references: long-term pins, what a reference holds, process_madvise (issue 12) --

    def take_ref(self) -> str:
        # `as REF` of gup and pin: REF must not be held.
        r = self.next("REF after 'as'")
        self.check_name(r.text, r.col, "reference")
        if r.text in self.refs:
            self.fail(
                r.col,
                f"reference {_q(r.text)} is already held (taken at line {self.refs[r.text]}); "
                "release it first or choose another name",
            )
        return r.text

    def cmd_pin(self, proc: str, text: str) -> ast.Command:
        name, runs = self.map_and_range(proc)
        w = self.next("'as REF'")
        if w.text != "as":
            self.fail(w.col, f"pin: expected 'as REF', found {_q(w.text)} ({self.usage()})")
        ref = self.take_ref()
        readonly = False
        opt = self.peek()
        if opt is not None:
            if opt.text != "readonly":
                self.fail(
                    opt.col,
                    f"pin: unexpected {_q(opt.text)}, expected 'readonly' or end of line "
                    f"({self.usage()}){_did_you_mean(opt.text, ('readonly',))}",
                )
            self.pos += 1
            readonly = True
        self.done()
        self.refs[ref] = self.line
        self.released.pop(ref, None)
        return ast.Pin(
            line=self.line, proc=proc, text=text, name=name, runs=runs, ref=ref, readonly=readonly
        )

    def is_ref_form(self, proc: str, word: str) -> bool:
        # `expect X data V`: a reference unless X is only a mapping of this process
        # (whose form needs a RANGE, never the word `data`).
        if word in self.refs or word in self.released:
            return True
        return word != "vmstat" and word not in self.procs[proc].maps

    def expect_ref_data(self, proc: str, text: str, r: _Word) -> ast.Command:
        self.check_name(r.text, r.col, "reference")
        if r.text not in self.refs:
            held = f"held references: {_names(self.refs)}"
            if r.text in self.released:
                self.fail(
                    r.col,
                    f"expect: reference {_q(r.text)} was released at line "
                    f"{self.released[r.text]} and holds no pages ({held})",
                )
            self.fail(
                r.col,
                f"expect: unknown reference or mapping {_q(r.text)} ({held}; mappings of "
                f"{proc}: {_names(self.procs[proc].maps)})"
                f"{_did_you_mean(r.text, list(self.refs) + list(self.procs[proc].maps))}",
            )
        self.pos += 1  # `data`
        vw = self.data_value()
        self.done()
        return ast.ExpectRefData(line=self.line, proc=proc, text=text, ref=r.text, value=vw.text)

    def cmd_process_madvise(self, proc: str, text: str) -> ast.Command:
        w = self.next("OTHER process name")
        self.check_name(w.text, w.col, "process")
        if w.text not in self.procs:
            live = f"live processes: {_names(self.procs)}"
            if w.text in self.exited:
                self.fail(
                    w.col, f"process {_q(w.text)} exited at line {self.exited[w.text]} ({live})"
                )
            self.fail(
                w.col, f"unknown process {_q(w.text)} ({live}){_did_you_mean(w.text, self.procs)}"
            )
        name, runs = self.map_and_range(w.text)
        advice = self.choice(self.next("ADVICE"), "advice", ast.ADVICES)
        self.done()
        return ast.ProcessMadvise(
            line=self.line,
            proc=proc,
            text=text,
            target=w.text,
            name=name,
            runs=runs,
            advice=advice,
        )
