"""Record the model's own lazyfree unmap as a concurrent program (the reclaim thread).

The model's try_to_unmap_one() runs on a one-page lazyfree folio built by the
model itself (mmap, write, MADV_FREE, drain, isolate), while the kernel-named
functions it calls for shared memory are recorded instead of (or besides)
being executed:

    get_and_clear_ptes()   ptep_get_and_clear(): the PTE exchanged with 0
    set_ptes()             the PTE restored when the folio is kept
    folio_ref_count()      atomic_read(&folio->_refcount)
    folio_mapcount()       atomic_read(&folio->_mapcount) + 1
    folio_test_dirty()     test_bit(PG_dirty, &folio->flags)
    smp_mb(), smp_rmb()    the barriers (no-ops when the model runs normally)

A value read from shared memory comes back as a symbol; when the model's code
branches on it (`if folio_test_dirty(...)`, `if ref_count != 1 + map_count`)
the recorder takes one side, and runs the code again for the other, so the
reclaim thread is the model's whole decision tree, in the order the code makes
its accesses.  A variant that moves, drops or reorders a barrier or an access
is recorded the same way: pass it as `variant` (or its functions as `functions`).

With a variant, its replacements are installed first (Variant.applied()), then
every binding of a recorded function -- in every foliosim module and in every
loaded variant module, whatever its import style (`from foliosim.model.rmap
import set_ptes` binds the function itself) -- is rebound to the recording
stand-in, by identity, and restored afterwards.  Below that, the folio's
struct page fields are watched from the PTE clear until try_to_unmap_one()
returns: code that reads folio->_refcount (`m.mem.refcount[folio]`) or tests
PG_dirty in `m.mem.flags[folio]` directly, instead of through
folio_ref_count() / folio_test_dirty(), would make an access the litmus test
lacks, so it is refused (RecordError naming its FILE:LINE) rather than
recorded wrong.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from foliosim.race.ir import Expr, Fence, If, Let, Op, Read, Reg, Stmt, Thread, Write, Xchg

# The model functions the recorder stands in for, and the barriers.
RECORDED = (
    "get_and_clear_ptes",
    "set_ptes",
    "folio_ref_count",
    "folio_mapcount",
    "folio_test_dirty",
    "smp_mb",
    "smp_rmb",
)
BARRIERS = ("smp_mb", "smp_rmb")
MAX_PATHS = 64


# Where each recorded function is defined (the binding every import copies).
DEFINED_IN = {
    "get_and_clear_ptes": "foliosim.model.rmap",
    "set_ptes": "foliosim.model.rmap",
    "folio_ref_count": "foliosim.model.page_ref",
    "folio_mapcount": "foliosim.model.mm",
    "folio_test_dirty": "foliosim.model.page_flags",
    "smp_mb": "foliosim.model.barrier",
    "smp_rmb": "foliosim.model.barrier",
}
_HERE = str(Path(__file__).resolve())
_MODEL_DIR = str(Path(__file__).resolve().parent.parent / "model")


def _from_variant(depth: int) -> bool:
    # Whether the code `depth` frames up is outside foliosim.model: a variant
    # file (or any caller's function).  The model's own functions are the
    # implementation of the kernel-named accessors and of the bookkeeping
    # after the decision (_discard()'s folio_put_refs()); a variant reaching
    # around them is what the watch is for.
    name = str(Path(sys._getframe(depth + 1).f_code.co_filename).resolve())
    return not name.startswith(_MODEL_DIR + "/")


class RecordError(Exception):
    """The model's code did something with a recorded value that a litmus test cannot express.

    path/line: where in the code it happened (the innermost frame outside the
    recorder), when known.
    """

    def __init__(
        self, reason: str, locate: bool = True, path: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path, self.line = _caller() if locate else (path, line)

    def __str__(self) -> str:
        return self.reason


def _caller() -> tuple[str | None, int | None]:
    # The innermost frame that is neither this module nor the standard library:
    # the model's or the variant's line that made the access.
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if str(Path(name).resolve()) != _HERE and not name.startswith("<"):
            return name, frame.f_lineno
        frame = frame.f_back
    return None, None


class Sym:
    """A value the model's code read from shared memory: arithmetic and comparisons stay symbolic."""

    __slots__ = ("_rec", "expr")

    def __init__(self, expr: Expr, rec: _Recorder) -> None:
        self.expr = expr
        self._rec = rec

    def _wrap(self, other: Any) -> Expr:
        if isinstance(other, Sym):
            return other.expr
        if isinstance(other, (int, bool)):
            return int(other)
        raise RecordError(f"a value read from shared memory is combined with {other!r}")

    def __add__(self, other: Any) -> Sym:
        return Sym(Op("+", (self.expr, self._wrap(other))), self._rec)

    def __radd__(self, other: Any) -> Sym:
        return Sym(Op("+", (self._wrap(other), self.expr)), self._rec)

    def __eq__(self, other: object) -> Sym:  # type: ignore[override]
        return Sym(Op("==", (self.expr, self._wrap(other))), self._rec)

    def __ne__(self, other: object) -> Sym:  # type: ignore[override]
        return Sym(Op("!=", (self.expr, self._wrap(other))), self._rec)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return self._rec.decide(self.expr)

    def __int__(self) -> int:
        raise RecordError(
            "the code converts a value read from shared memory to a number; "
            "use it directly (folio_ref_count() already returns an int)"
        )

    __index__ = __int__

    def __format__(self, spec: str) -> str:  # trace messages only
        return f"<{self.expr}>"


class _PteVal(int):
    """The old PTE returned by get_and_clear_ptes(): a real value the rest of the path uses,
    remembered as the register that the restore (set_ptes) writes back."""

    reg: str


@dataclass
class _Branch:
    cond: Expr
    taken: bool


class _Recorder:
    def __init__(self, decisions: list[bool]) -> None:
        self.decisions = decisions
        self.pos = 0
        self.items: list[Stmt | _Branch] = []
        self.regs: dict[str, int] = {}
        self.watching = False  # from the PTE clear on: direct struct page reads are refused

    def decide(self, cond: Expr) -> bool:
        if self.pos == len(self.decisions):
            self.decisions.append(True)
        taken = self.decisions[self.pos]
        self.pos += 1
        self.items.append(_Branch(cond, taken))
        return taken

    def reg(self, base: str) -> str:
        n = self.regs.get(base, 0)
        self.regs[base] = n + 1
        return base if n == 0 else f"{base}{n + 1}"

    def read(self, base: str, loc: str, prim: str, func: str, why: str) -> Sym:
        reg = self.reg(base)
        self.items.append(Read(reg, loc, prim, func, why))
        return Sym(Reg(reg), self)


def _recording_functions(rec: _Recorder, real: dict[str, Callable[..., Any]], drop: set[str]):
    def get_and_clear_ptes(t: Any, i: int, nr: int) -> int:
        value = _PteVal(real["get_and_clear_ptes"](t, i, nr))
        value.reg = rec.reg("pteval")
        rec.watching = True
        rec.items.append(
            Xchg(
                value.reg,
                "pte",
                0,
                "arch",
                "get_and_clear_ptes",
                "ptep_get_and_clear(): clear the PTE, keep its old value",
            )
        )
        return value

    def set_ptes(t: Any, i: int, bits: int, pfn: int, nr: int) -> None:
        real["set_ptes"](t, i, bits, pfn, nr)
        value: Expr = Reg(bits.reg) if isinstance(bits, _PteVal) else 1
        rec.items.append(
            Write(
                "pte",
                value,
                "WRITE_ONCE",
                "set_ptes",
                "set_ptes(): restore the PTE, the folio is kept",
            )
        )

    def folio_ref_count(m: Any, folio: int) -> Sym:
        return rec.read(
            "ref_count",
            "refcount",
            "atomic_read",
            "folio_ref_count",
            "folio_ref_count(): atomic_read(&folio->_refcount)",
        )

    def folio_mapcount(m: Any, folio: int) -> Sym:
        return rec.read(
            "map_count",
            "mapcount",
            "atomic_read",
            "folio_mapcount",
            "folio_mapcount(): atomic_read(&folio->_mapcount) + 1",
        )

    def folio_test_dirty(m: Any, folio: int) -> Sym:
        return rec.read(
            "dirty",
            "pg_dirty",
            "test_bit",
            "folio_test_dirty",
            "folio_test_dirty(): test_bit(PG_dirty, &folio->flags)",
        )

    def fence(kind: str, name: str) -> Callable[[], None]:
        def barrier() -> None:
            if name not in drop:
                what = {
                    "smp_mb": "order the PTE clear before the refcount read (pairs with GUP-fast)",
                    "smp_rmb": "order the refcount read before the PG_dirty read (__remove_mapping)",
                }
                rec.items.append(Fence(kind, name, what[name]))

        barrier.__name__ = name
        return barrier

    return {
        "get_and_clear_ptes": get_and_clear_ptes,
        "set_ptes": set_ptes,
        "folio_ref_count": folio_ref_count,
        "folio_mapcount": folio_mapcount,
        "folio_test_dirty": folio_test_dirty,
        "smp_mb": fence("mb", "smp_mb"),
        "smp_rmb": fence("rmb", "smp_rmb"),
    }


def _originals() -> dict[str, Callable[..., Any]]:
    # The recorded functions as their defining modules bind them.
    import importlib

    return {n: getattr(importlib.import_module(mod), n) for n, mod in DEFINED_IN.items()}


def _namespaces(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Every module that may have copied a recorded function into its globals:
    # foliosim's own, every loaded variant file (foliosim.variants names those
    # modules foliosim_variant_*), and the globals of the functions passed in.
    from foliosim.variants import _PREFIX

    out: list[dict[str, Any]] = []
    for name, mod in list(sys.modules.items()):
        if mod is not None and name.startswith(("foliosim.", _PREFIX)):
            out.append(vars(mod))
    for ns in extra:
        if all(ns is not o for o in out):
            out.append(ns)
    return out


@contextmanager
def _rebound(
    originals: dict[str, Callable[..., Any]],
    names: dict[str, Any],
    extra: list[dict[str, Any]],
) -> Iterator[None]:
    # Module globals are where code looks its callees up: every binding of a
    # recorded function, under any name and from any import style, becomes
    # the stand-in while recording, and is put back afterwards.
    saved: list[tuple[dict[str, Any], str, Any]] = []
    by_id = {id(f): names[n] for n, f in originals.items()}
    try:
        for ns in _namespaces(extra):
            for key, value in list(ns.items()):
                new = by_id.get(id(value))
                if new is not None and value is originals.get(getattr(value, "__name__", "")):
                    saved.append((ns, key, value))
                    ns[key] = new
        yield
    finally:
        for ns, key, old in reversed(saved):
            ns[key] = old


class _WatchedRefcount(array):  # type: ignore[type-arg]
    """folio->_refcount of every pfn; the watched folio's may not be read directly."""

    rec: _Recorder
    folio: int

    def __getitem__(self, index: Any) -> Any:
        if index == self.folio and self.rec.watching and _from_variant(1):
            raise RecordError(
                "reads folio->_refcount directly (m.mem.refcount[folio]); call "
                "folio_ref_count(m, folio), the access foliosim race records"
            )
        return super().__getitem__(index)


class _FlagsWord(int):
    """The watched folio's flags word: testing PG_dirty in it directly is refused."""

    def __and__(self, mask: Any) -> Any:
        from foliosim.model.types import PG_dirty

        if isinstance(mask, int) and mask & PG_dirty and _from_variant(1):
            raise RecordError(
                "tests PG_dirty directly (m.mem.flags[folio] & PG_dirty); call "
                "folio_test_dirty(m, folio), the access foliosim race records"
            )
        return int(self) & mask

    __rand__ = __and__


class _WatchedFlags(array):  # type: ignore[type-arg]
    """folio->flags of every pfn; the watched folio's comes back as a _FlagsWord."""

    rec: _Recorder
    folio: int

    def __getitem__(self, index: Any) -> Any:
        value = super().__getitem__(index)
        if index == self.folio and self.rec.watching:
            return _FlagsWord(value)
        return value


@contextmanager
def _watched(mem: Any, folio: int, rec: _Recorder) -> Iterator[None]:
    # The lower level: the struct page fields the litmus test has locations
    # for cannot be read around the recorded functions.
    saved = (mem.refcount, mem.flags)
    refcount = _WatchedRefcount(saved[0].typecode, saved[0])
    flags = _WatchedFlags(saved[1].typecode, saved[1])
    for arr in (refcount, flags):
        arr.rec, arr.folio = rec, folio
    mem.refcount, mem.flags = refcount, flags
    try:
        yield
    finally:
        rec.watching = False
        saved[0][:] = array(saved[0].typecode, refcount)
        saved[1][:] = array(saved[1].typecode, flags)
        mem.refcount, mem.flags = saved


@dataclass
class Setup:
    """The model's state just before reclaim unmaps the folio: what the litmus init holds."""

    machine: Any
    folio: int
    vma: Any
    vpn: int
    refcount: int
    mapcount: int
    dirty: int


SCENARIO = """\
mmap A 1
write A all
madvise A all free
"""


def lazyfree_setup(profile: str = "linux-6.18") -> Setup:
    """A one-page lazyfree folio, isolated for reclaim, built by the model's own code.

    As shrink_folio_list() sees it (mm/vmscan.c, Linux 6.18): MADV_FREE made it
    clean and !swapbacked (lru_lazyfree), folio_isolate_lru() took reclaim's
    reference, one PTE maps it.
    """
    from foliosim.model.backend import ModelBackend
    from foliosim.model.lru import lru_add_drain
    from foliosim.model.mm import folio_mapcount
    from foliosim.model.page_flags import folio_test_dirty, folio_test_swapbacked
    from foliosim.model.vmscan import folio_isolate_lru
    from foliosim.scenario.parser import parse_text

    backend = ModelBackend(profile=profile)
    backend.run(parse_text(SCENARIO, "<foliosim race>"), final=False)
    m = backend.machine
    assert m is not None
    lru_add_drain(m)  # the MADV_FREE batch: the folio becomes lazyfree
    mm = next(iter(m.mms.values()))
    vma = next(v for v in mm.vmas if v.name == "A")
    vpn = vma.start
    t = mm.pte_table(vpn)
    if t is None:
        raise RecordError("the model did not map the page", locate=False)
    folio = int(t.pfn[vpn & 511])
    if not folio_isolate_lru(m, folio):
        raise RecordError("the model did not isolate the lazyfree folio", locate=False)
    if folio_test_swapbacked(m, folio):
        raise RecordError("the model's MADV_FREE did not make the folio lazyfree", locate=False)
    return Setup(
        m,
        folio,
        vma,
        vpn,
        int(m.mem.refcount[folio]),
        folio_mapcount(m, folio),
        int(folio_test_dirty(m, folio)),
    )


def record_reclaim(
    profile: str = "linux-6.18",
    without: tuple[str, ...] = (),
    functions: dict[str, Callable[..., Any]] | None = None,
    variant: Any = None,
) -> tuple[Thread, Setup, int]:
    """The reclaim thread recorded from the model's try_to_unmap_one(), its set-up, and paths.

    without: barriers to drop (smp_mb, smp_rmb), as a patch removing the call would.
    functions: replacements for model functions (a lazyfree_range, ...), by name.
    variant: a foliosim.variants.Variant; its base profile replaces `profile`,
    its replacements are applied while the set-up and the unmap run.
    """
    from foliosim.model import rmap
    from foliosim.model.types import PTE_PRESENT
    from foliosim.variants import Variant

    unknown = set(without) - set(BARRIERS)
    if unknown:
        raise ValueError(f"unknown barrier {min(unknown)!r} (known: {', '.join(BARRIERS)})")
    if variant is None and functions:
        variant = Variant(name="functions", base=profile, replacements=dict(functions))
    if variant is not None:
        profile = variant.base
        for name, func in variant.replacements.items():
            if name in RECORDED:
                code = getattr(func, "__code__", None)
                raise RecordError(
                    f"@replace {name}(): foliosim race records {name}() itself "
                    "(an access or barrier of the litmus test); change its callers instead",
                    locate=False,
                    path=variant.path or (code.co_filename if code else None),
                    line=code.co_firstlineno if code else None,
                )
    replacements = variant.replacements if variant is not None else {}
    extra = [f.__globals__ for f in replacements.values() if hasattr(f, "__globals__")]
    originals = _originals()
    real = {n: originals[n] for n in ("get_and_clear_ptes", "set_ptes")}
    paths: list[tuple[list[Stmt | _Branch], bool]] = []
    pending: list[list[bool]] = [[]]
    with ExitStack() as applied:
        if variant is not None:
            applied.enter_context(variant.applied())
        setup = lazyfree_setup(profile)
        while pending:
            if len(paths) >= MAX_PATHS:
                raise RecordError(
                    f"the lazyfree decision has more than {MAX_PATHS} paths", locate=False
                )
            prefix = pending.pop()
            rec = _Recorder(list(prefix))
            # A fresh machine per path (PageTable's numpy views do not survive a deepcopy).
            fresh = lazyfree_setup(profile)
            m, vma = fresh.machine, fresh.vma
            names: dict[str, Any] = _recording_functions(rec, real, set(without))
            with _rebound(originals, names, extra), _watched(m.mem, fresh.folio, rec):
                rmap.try_to_unmap_one(m, fresh.folio, vma, fresh.vpn, rmap.TTU.BATCH_FLUSH)
            t = vma.mm.pte_table(fresh.vpn)
            discarded = not int(t.bits[fresh.vpn & 511]) & PTE_PRESENT
            paths.append((rec.items, discarded))
            for k in range(len(prefix), len(rec.decisions)):
                pending.append(rec.decisions[:k] + [False])
    body = tuple(_tree([(items, d) for items, d in paths]))
    role = "shrink_folio_list() -> try_to_unmap_one(): the lazyfree branch (mm/rmap.c)"
    if variant is not None and variant.replacements:
        role += f", as variant {variant.name} replaces {', '.join(sorted(replacements))}()"
    thread = Thread("reclaim", role, body)
    return thread, setup, len(paths)


def _tree(paths: list[tuple[list[Stmt | _Branch], bool]]) -> list[Stmt]:
    # All paths run the same code until the first branch the recorder took
    # both ways; there the two sides become an If.
    out: list[Stmt] = []
    k = 0
    while True:
        heads = [items[k] if k < len(items) else None for items, _ in paths]
        first = heads[0]
        if first is None:
            if any(h is not None for h in heads):
                raise RecordError(
                    "the code is not deterministic: paths of unequal length", locate=False
                )
            if paths[0][1]:
                out.append(Let("discarded", 1, "the folio is discarded: its data is gone"))
            return out
        if isinstance(first, _Branch):
            if not all(isinstance(h, _Branch) and h.cond == first.cond for h in heads):
                raise RecordError("the code is not deterministic: branches differ", locate=False)
            then = [(items[k + 1 :], d) for items, d in paths if items[k].taken]  # type: ignore[union-attr]
            orelse = [(items[k + 1 :], d) for items, d in paths if not items[k].taken]  # type: ignore[union-attr]
            out.append(If(first.cond, tuple(_tree(then)), tuple(_tree(orelse))))
            return out
        if not all(h == first for h in heads):
            raise RecordError(
                "the code is not deterministic: accesses differ between runs", locate=False
            )
        out.append(first)
        k += 1
