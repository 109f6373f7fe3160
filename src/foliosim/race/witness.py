"""An execution of a race test told as a numbered story in kernel terms.

From one final state (every register and the final memory), each CPU's path
through its code is replayed: which access it made, in program order, and the
value each read saw; a read that saw something other than the location's
final value is marked as not yet seeing the other CPU's write.
"""

from __future__ import annotations

from foliosim.race.ir import (
    AddUnless,
    DecAndTest,
    Fence,
    If,
    Let,
    Read,
    Stmt,
    Test,
    Write,
    Xchg,
    eval_expr,
)

_MEANING = {
    "pte": {0: "none", 1: "present"},
    "pg_dirty": {0: "clear", 1: "set"},
}
_NAMES = {
    "pte": "the PTE",
    "refcount": "folio->_refcount",
    "mapcount": "the mapcount",
    "pg_dirty": "PG_dirty",
    "data": "the page's data",
}


def _value(loc: str, v: int) -> str:
    meaning = _MEANING.get(loc, {}).get(v)
    return f"{v} ({meaning})" if meaning else str(v)


def _executed(stmts: tuple[Stmt, ...], regs: dict[str, int]) -> list[Stmt]:
    # The statements one CPU ran, given its registers at the end.
    out: list[Stmt] = []
    for s in stmts:
        if isinstance(s, If):
            out += _executed(s.then if eval_expr(s.cond, regs) else s.orelse, regs)
        else:
            out.append(s)
    return out


def _writers(
    runs: list[list[Stmt]], regs_of: list[dict[str, int]], loc: str, not_tid: int
) -> list[str]:
    out = []
    for tid, run in enumerate(runs):
        if tid == not_tid:
            continue
        for s in run:
            if isinstance(s, (Write, Xchg, AddUnless, DecAndTest)) and s.loc == loc:
                if isinstance(s, AddUnless) and not regs_of[tid].get(s.reg):
                    continue  # a failed atomic_add_unless() writes nothing
                out.append(f"CPU {tid}'s {s.func}()")
    return list(dict.fromkeys(out))


def story(test: Test, state: dict[str, int]) -> list[str]:
    """Numbered lines: each CPU's accesses in program order with the values its reads saw.

    state: "T:reg" -> value for every register, loc -> final value.
    """
    lines: list[str] = []
    regs_of = [
        {k.split(":", 1)[1]: v for k, v in state.items() if k.startswith(f"{tid}:")}
        for tid in range(len(test.threads))
    ]
    runs = [_executed(t.body, regs_of[tid]) for tid, t in enumerate(test.threads)]

    def say(tid: int, text: str) -> None:
        lines.append(f"{len(lines) + 1}. CPU {tid} ({test.threads[tid].name}): {text}")

    for tid, run in enumerate(runs):
        regs = regs_of[tid]
        for s in run:
            if isinstance(s, Read):
                v = regs.get(s.reg, 0)
                final = state.get(s.loc)
                note = ""
                who = " and ".join(_writers(runs, regs_of, s.loc, tid))
                if final is not None and final != v:
                    note = f" -- does not see {who or 'another CPU'} (final value {_value(s.loc, final)})"
                elif who and v != test.init.get(s.loc):
                    note = f" -- sees {who}"
                say(tid, f"{s.func}() reads {_NAMES.get(s.loc, s.loc)} = {_value(s.loc, v)}{note}")
            elif isinstance(s, Xchg):
                v = regs.get(s.reg, 0)
                say(
                    tid,
                    f"{s.func}() exchanges {_NAMES.get(s.loc, s.loc)}: "
                    f"{_value(s.loc, v)} -> {_value(s.loc, s.value)}",
                )
            elif isinstance(s, Write):
                say(
                    tid,
                    f"{s.func}() writes {_NAMES.get(s.loc, s.loc)} = "
                    f"{_value(s.loc, eval_expr(s.value, regs))}",
                )
            elif isinstance(s, AddUnless):
                ok = regs.get(s.reg, 0)
                what = f"takes a reference: {_NAMES.get(s.loc, s.loc)} + {s.add}" if ok else "fails"
                say(
                    tid,
                    f"{s.func}() {what} ({'fully ordered' if s.order == 'mb' else 'relaxed'}"
                    " atomic)",
                )
            elif isinstance(s, DecAndTest):
                say(
                    tid,
                    f"{s.func}() drops a reference: {_NAMES.get(s.loc, s.loc)} - 1 "
                    "(fully ordered atomic)",
                )
            elif isinstance(s, Fence):
                say(tid, f"{s.func}()")
            elif isinstance(s, Let):
                say(tid, s.why or f"{s.reg} = {s.value}")
    lines.append(f"Result: {test.bad}.")
    return lines
