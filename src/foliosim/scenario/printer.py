"""Print a parsed Scenario back as scenario text (the fuzzer saves shrunk scenarios so).

parse_text(to_text(s)) equals `s` except for each command's `line` and `text`:
labels are always written out (`as w7`), ranges as explicit runs, sizes in the
largest unit that divides them.  Only the commands are printed, one a line;
comments and blank lines of the original are not kept.
"""

from __future__ import annotations

import re

from foliosim.scenario import ast

_NAME_RE = re.compile(r"[A-Za-z0-9_.+\-]{1,64}")
_COUNTER_RE = re.compile(r"[a-z0-9_]+")
# What the parser refuses in an observe label (it would end the label or the line).
_BAD_LABEL_RE = re.compile("[#\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def to_text(scenario: ast.Scenario) -> str:
    """The scenario as text, one command a line, prefixed `PROC: ` unless it runs in p0."""
    return "".join(line_text(cmd) + "\n" for cmd in scenario.commands)


def line_text(cmd: ast.Command) -> str:
    """One command's line, `PROC: ` prefix and all: what the parser keeps as its `text`."""
    prefix = "" if cmd.proc == "p0" else f"{_name(cmd.proc, cmd)}: "
    return prefix + command_text(cmd)


def command_text(cmd: ast.Command) -> str:
    """One command as text, without its process prefix; ValueError if text cannot say it."""
    match cmd:
        case ast.Mthp():
            return f"mthp {_size_kb_text(cmd.size_kb)} {cmd.mode}"
        case ast.Thp():
            return f"thp {cmd.mode}"
        case ast.Swap():
            return "swap off" if cmd.pages is None else f"swap {size_text(cmd.pages)}"
        case ast.Mmap():
            words = ["mmap", _name(cmd.name, cmd), size_text(cmd.pages)]
            if cmd.droppable:
                words.append("droppable")
            if cmd.offset:
                words += ["offset", str(cmd.offset)]
            if cmd.prot != "readwrite":
                words += ["prot", _choice(cmd.prot, ast.PROTS, cmd)]
            return " ".join(words)
        case ast.Munmap():
            if cmd.runs is not None:
                return f"munmap {_name(cmd.name, cmd)} {range_text(cmd.runs)}"
            return f"munmap {_name(cmd.name, cmd)}"
        case ast.Mprotect():
            prot = _choice(cmd.prot, ast.PROTS, cmd)
            return f"mprotect {_name(cmd.name, cmd)} {range_text(cmd.runs)} {prot}"
        case ast.Mremap():
            if cmd.pages <= 0:
                raise ValueError(f"line {cmd.line}: mremap to {cmd.pages} pages cannot be written")
            words = ["mremap", _name(cmd.name, cmd), str(cmd.pages)]
            if cmd.move:
                words.append("move")
                if cmd.offset:
                    words += ["offset", str(cmd.offset)]
            elif cmd.offset:
                raise ValueError(f"line {cmd.line}: an mremap offset needs 'move'")
            return " ".join(words)
        case ast.ExpectResult():
            if not _NAME_RE.fullmatch(cmd.value):
                raise ValueError(f"line {cmd.line}: bad result {cmd.value!r}")
            return f"expect result {cmd.value}"
        case ast.Write():
            return f"write {_name(cmd.name, cmd)} {range_text(cmd.runs)} as {_name(cmd.label, cmd)}"
        case ast.Poke():
            return f"poke {_name(cmd.name, cmd)} {range_text(cmd.runs)} as {_name(cmd.label, cmd)}"
        case ast.Read():
            return f"read {_name(cmd.name, cmd)} {range_text(cmd.runs)}"
        case ast.Madvise():
            return f"madvise {_name(cmd.name, cmd)} {range_text(cmd.runs)} {cmd.advice}"
        case ast.Mlock():
            onfault = " onfault" if cmd.onfault else ""
            return f"mlock {_name(cmd.name, cmd)} {range_text(cmd.runs)}{onfault}"
        case ast.Mlockall():
            if not (cmd.current or cmd.future):
                raise ValueError(f"line {cmd.line}: mlockall needs current or future")
            words = [w for w, on in (("current", cmd.current), ("future", cmd.future),
                                      ("onfault", cmd.onfault)) if on]
            return "mlockall " + " ".join(words)
        case ast.Munlockall():
            return "munlockall"
        case ast.Munlock():
            return f"munlock {_name(cmd.name, cmd)} {range_text(cmd.runs)}"
        case ast.Fork():
            return f"fork {_name(cmd.child, cmd)}"
        case ast.Exit():
            return "exit"
        case ast.Gup():
            return f"gup {_name(cmd.name, cmd)} {range_text(cmd.runs)} as {_name(cmd.ref, cmd)}"
        case ast.Release():
            return f"release {_name(cmd.ref, cmd)}"
        case ast.Observe():
            label = cmd.label
            # A label starting with ':' would read as a process prefix ('observe :').
            if label != label.strip(" \t") or _BAD_LABEL_RE.search(label) or label[:1] == ":":
                raise ValueError(f"line {cmd.line}: observe label {label!r} cannot be written")
            return f"observe {label}" if label else "observe"
        case ast.ExpectData():
            return (
                f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} data {_name(cmd.value, cmd)}"
            )
        case ast.ExpectState():
            return f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} {cmd.state}"
        case ast.ExpectSmaps():
            return f"expect {_name(cmd.name, cmd)} smaps {cmd.field} {cmd.kb}"
        case ast.ExpectOrder():
            return f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} order {cmd.order}"
        case ast.ExpectMapcount():
            return f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} mapcount {cmd.mapcount}"
        case ast.ExpectExclusive():
            yes = "yes" if cmd.exclusive else "no"
            return f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} exclusive {yes}"
        case ast.ExpectFlags():
            if not cmd.flags or any(
                f[:1] not in "+-" or not f[1:] or not _COUNTER_RE.fullmatch(f[1:])
                for f in cmd.flags
            ):
                raise ValueError(f"line {cmd.line}: flags {cmd.flags!r} cannot be written")
            return f"expect {_name(cmd.name, cmd)} {range_text(cmd.runs)} flags {' '.join(cmd.flags)}"
        case ast.ExpectVmstat():
            if not _COUNTER_RE.fullmatch(cmd.counter):
                raise ValueError(f"line {cmd.line}: bad vmstat counter {cmd.counter!r}")
            return f"expect vmstat {cmd.counter} {cmd.value}"
        # -- references (issue 12) --
        case ast.Pin():
            return (
                f"pin {_name(cmd.name, cmd)} {range_text(cmd.runs)} as {_name(cmd.ref, cmd)}"
                + (" readonly" if cmd.readonly else "")
            )
        case ast.ExpectRefData():
            return f"expect {_name(cmd.ref, cmd)} data {_name(cmd.value, cmd)}"
        case ast.ProcessMadvise():
            return (
                f"process_madvise {_name(cmd.target, cmd)} {_name(cmd.name, cmd)} "
                f"{range_text(cmd.runs)} {cmd.advice}"
            )
        # memcg (issue 13)
        case ast.MemcgLimit():
            return "memcg limit max" if cmd.pages is None else f"memcg limit {size_text(cmd.pages)}"
        case ast.MemcgReclaim():
            return f"memcg reclaim {size_text(cmd.pages)}"
        case ast.MemcgSwappiness():
            return f"memcg swappiness {cmd.value}"
        case ast.ExpectMemcg():
            return f"expect memcg {cmd.field} {'max' if cmd.value is None else cmd.value}"
    raise ValueError(f"line {cmd.line}: not a scenario command: {cmd!r}")


def range_text(runs: ast.Runs) -> str:
    """Explicit runs as written in a RANGE: `0-3,8,10-11`."""
    if not runs:
        raise ValueError("an empty range cannot be written")
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def size_text(pages: int) -> str:
    """A page count as a SIZE in the largest of G, M, K that divides it: 16 -> `64K`."""
    nbytes = pages * ast.PAGE_SIZE
    for unit, mult in (("G", 1024**3), ("M", 1024**2)):
        if nbytes and nbytes % mult == 0:
            return f"{nbytes // mult}{unit}"
    return f"{nbytes // 1024}K"


def _size_kb_text(kb: int) -> str:
    return f"{kb // 1024}M" if kb >= 1024 and kb % 1024 == 0 else f"{kb}K"


def _choice(word: str, choices: tuple[str, ...], cmd: ast.Command) -> str:
    if word not in choices:
        raise ValueError(f"line {cmd.line}: {word!r} is not one of {', '.join(choices)}")
    return word


def _name(name: str, cmd: ast.Command) -> str:
    # Refuse what the parser would read differently, rather than print a different scenario.
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"line {cmd.line}: {name!r} is not a scenario name")
    return name
