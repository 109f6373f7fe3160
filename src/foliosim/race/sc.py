"""Sequential consistency, explored natively: every interleaving of the threads' accesses.

Each shared-memory access (and each atomic read-modify-write, as one step) is
an interleaving point; barriers order nothing more under SC, and register
work runs at once.  The result names the interleavings tried, the distinct
final states, and one interleaving that reaches the test's bad outcome, if any.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    locations,
)

# A flattened thread: ('acc', stmt) | ('let', stmt) | ('jf', cond, target) | ('jmp', target)
Code = list[tuple]


def _flatten(stmts: tuple[Stmt, ...], code: Code) -> None:
    for s in stmts:
        if isinstance(s, If):
            jf = len(code)
            code.append(("jf", s.cond, None))
            _flatten(s.then, code)
            if s.orelse:
                jmp = len(code)
                code.append(("jmp", None))
                code[jf] = ("jf", s.cond, len(code))
                _flatten(s.orelse, code)
                code[jmp] = ("jmp", len(code))
            else:
                code[jf] = ("jf", s.cond, len(code))
        elif isinstance(s, Let):
            code.append(("let", s))
        elif isinstance(s, Fence):
            continue  # SC: already ordered
        else:
            code.append(("acc", s))


@dataclass
class ScResult:
    """What SC exploration found: sizes, final states, and one bad interleaving (or None)."""

    interleavings: int
    states: list[dict[str, int]]
    witness: list[tuple[int, Stmt, int | None]] | None  # (thread, access, value read)
    seconds: float
    final: dict[str, int] = field(default_factory=dict)  # the witness's final state

    @property
    def safe(self) -> bool:
        return self.witness is None


def _holds(test: Test, state: dict[str, int]) -> bool:
    return any(all(state.get(k) == v for k, v in alt.items()) for alt in test.exists)


def explore(test: Test) -> ScResult:
    """Run every interleaving of the test under SC."""
    start = time.perf_counter()
    codes: list[Code] = []
    for thread in test.threads:
        code: Code = []
        _flatten(thread.body, code)
        codes.append(code)
    locs = locations(test)
    states: dict[tuple, dict[str, int]] = {}
    witness: list | None = None
    witness_final: dict[str, int] = {}
    count = 0

    def settle(tid: int, pc: int, regs: dict[str, int]) -> int:
        # Run register work (lets, branches) up to the next access.
        code = codes[tid]
        while pc < len(code):
            op = code[pc]
            if op[0] == "let":
                regs[op[1].reg] = op[1].value
                pc += 1
            elif op[0] == "jf":
                pc = pc + 1 if eval_expr(op[1], regs) else op[2]
            elif op[0] == "jmp":
                pc = op[1]
            else:
                break
        return pc

    def step(s: Stmt, regs: dict[str, int], mem: dict[str, int]) -> int | None:
        if isinstance(s, Read):
            regs[s.reg] = mem[s.loc]
            return mem[s.loc]
        if isinstance(s, Write):
            mem[s.loc] = eval_expr(s.value, regs)
            return None
        if isinstance(s, Xchg):
            regs[s.reg], mem[s.loc] = mem[s.loc], s.value
            return regs[s.reg]
        if isinstance(s, AddUnless):
            old = mem[s.loc]
            regs[s.reg] = int(old != s.unless)
            if old != s.unless:
                mem[s.loc] = old + s.add
            return old
        if isinstance(s, DecAndTest):
            old = mem[s.loc]
            mem[s.loc] = old - 1
            regs[s.reg] = int(old - 1 == 0)
            return old
        raise TypeError(s)

    def dfs(pcs: list[int], regs: list[dict[str, int]], mem: dict[str, int], trail: list) -> None:
        nonlocal count, witness, witness_final
        runnable = [t for t in range(len(codes)) if pcs[t] < len(codes[t])]
        if not runnable:
            count += 1
            final = {f"{t}:{r}": v for t, rs in enumerate(regs) for r, v in rs.items()}
            final.update(mem)
            key = tuple(sorted(final.items()))
            states.setdefault(key, final)
            if witness is None and _holds(test, final):
                witness, witness_final = list(trail), final
            return
        for t in runnable:
            r2 = [dict(r) for r in regs]
            m2 = dict(mem)
            s = codes[t][pcs[t]][1]
            seen = step(s, r2[t], m2)
            p2 = list(pcs)
            p2[t] = settle(t, pcs[t] + 1, r2[t])
            dfs(p2, r2, m2, trail + [(t, s, seen)])

    regs0: list[dict[str, int]] = [{} for _ in codes]
    pcs0 = [settle(t, 0, regs0[t]) for t in range(len(codes))]
    dfs(pcs0, regs0, {loc: test.init.get(loc, 0) for loc in locs}, [])
    return ScResult(
        count, list(states.values()), witness, time.perf_counter() - start, witness_final
    )
