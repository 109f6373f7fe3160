"""The concurrent programs foliosim race checks, in kernel terms, before any litmus dialect.

A thread is a list of statements: shared-memory accesses named by the kernel
primitive that makes them (READ_ONCE, atomic_read, xchg_relaxed,
atomic_add_unless, ...), barriers (smp_mb, smp_rmb), register assignments and
if/else on values read.  The reclaim thread is recorded from the model's code
(foliosim.race.record); the GUP threads are written once in foliosim.race.actors.
foliosim.race.litmus turns a Test into C (LKMM), X86 or AArch64 litmus, and
foliosim.race.sc explores it under sequential consistency.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reg:
    """A thread-local register: a value read from shared memory, or a flag set by the code."""

    name: str


@dataclass(frozen=True)
class Op:
    """op over args: '+', '==', '!=', '!' (C semantics, ints)."""

    op: str
    args: tuple[Expr, ...]


Expr = Reg | Op | int


@dataclass(frozen=True)
class Read:
    """reg = prim(loc): READ_ONCE, atomic_read, test_bit (no ordering of its own)."""

    reg: str
    loc: str
    prim: str
    func: str  # the kernel function the read is part of
    why: str = ""


@dataclass(frozen=True)
class Write:
    """prim(loc, value): WRITE_ONCE, set_bit (no ordering of its own)."""

    loc: str
    value: Expr
    prim: str
    func: str
    why: str = ""


@dataclass(frozen=True)
class Xchg:
    """reg = xchg{order}(loc, value): order 'relaxed' (xchg_relaxed) or 'mb' (xchg)."""

    reg: str
    loc: str
    value: int
    order: str
    func: str
    why: str = ""


@dataclass(frozen=True)
class AddUnless:
    """reg = 1 if loc != unless and loc += add was done, else 0 (atomic_add_unless()).

    order 'mb': fully ordered when it succeeds (atomic_t.txt); 'relaxed': the
    same atomic without ordering (what `--without gup-fast-ordering` checks).
    """

    reg: str
    loc: str
    add: int
    unless: int
    order: str
    func: str
    why: str = ""


@dataclass(frozen=True)
class DecAndTest:
    """reg = (--loc == 0): atomic_dec_and_test(), fully ordered (value-returning RMW)."""

    reg: str
    loc: str
    func: str
    why: str = ""


@dataclass(frozen=True)
class Fence:
    """smp_mb() ('mb') or smp_rmb() ('rmb')."""

    kind: str
    func: str
    why: str = ""


@dataclass(frozen=True)
class Let:
    """reg = value: a thread-local outcome (e.g. 'discarded') for the exists clause."""

    reg: str
    value: int
    why: str = ""


@dataclass(frozen=True)
class If:
    """if (cond) then else orelse."""

    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()
    why: str = ""


Stmt = Read | Write | Xchg | AddUnless | DecAndTest | Fence | Let | If
ACCESSES = (Read, Write, Xchg, AddUnless, DecAndTest)


@dataclass
class Thread:
    """One CPU's program: who it is in kernel terms and what it runs."""

    name: str  # "reclaim", "GUP-fast", ...
    role: str  # one line: the kernel path it stands for
    body: tuple[Stmt, ...]


@dataclass
class Test:
    """A litmus test in kernel terms: initial memory, threads, the bad outcome.

    exists: alternatives, each a conjunction of "T:reg" or "loc" -> value;
    the test is unsafe when some execution ends in one of them.
    """

    name: str
    doc: str  # what the test checks, for the litmus comment and the witness
    init: dict[str, int]
    threads: list[Thread]
    exists: list[dict[str, int]]
    bad: str  # the invariant broken, in words
    expected: dict[str, str] = field(default_factory=dict)  # model -> safe/unsafe, when known


def registers(body: tuple[Stmt, ...]) -> list[str]:
    """Every register the statements set, in first-set order."""
    out: list[str] = []

    def walk(stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            reg = getattr(s, "reg", None)
            if reg is not None and reg not in out:
                out.append(reg)
            if isinstance(s, If):
                walk(s.then)
                walk(s.orelse)

    walk(body)
    return out


def locations(test: Test) -> list[str]:
    """Every shared location of the test: its initial state first, then accesses."""
    out = list(test.init)

    def walk(stmts: tuple[Stmt, ...]) -> None:
        for s in stmts:
            loc = getattr(s, "loc", None)
            if loc is not None and loc not in out:
                out.append(loc)
            if isinstance(s, If):
                walk(s.then)
                walk(s.orelse)

    for t in test.threads:
        walk(t.body)
    return out


def eval_expr(e: Expr, regs: dict[str, int]) -> int:
    """The value of e given the registers (unset registers read 0, as in herd7)."""
    if isinstance(e, int):
        return e
    if isinstance(e, Reg):
        return regs.get(e.name, 0)
    a = [eval_expr(x, regs) for x in e.args]
    if e.op == "+":
        return a[0] + a[1]
    if e.op == "==":
        return int(a[0] == a[1])
    if e.op == "!=":
        return int(a[0] != a[1])
    if e.op == "!":
        return int(not a[0])
    raise ValueError(f"unknown operator {e.op!r}")


def c_expr(e: Expr) -> str:
    """e in C syntax."""
    if isinstance(e, int):
        return str(e)
    if isinstance(e, Reg):
        return e.name
    if e.op == "!":
        return f"!({c_expr(e.args[0])})"
    return f"({c_expr(e.args[0])} {e.op} {c_expr(e.args[1])})"
