"""Field-by-field differences between two observations of the same scenario.

Two backends that agree produce identical observations (contract v1), so every
difference here is a place where the model and Linux (or two model profiles)
disagree.  Nothing is skipped: a field one side reports and the other leaves
out is a difference ("missing on model"), because the contract says a backend
leaves out what it cannot compute rather than guessing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from foliosim.scenario.ast import Command, Scenario, runs_pages


class _Missing:
    """The value of a field one side does not report (equal only to itself)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Missing)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

# Keys of the observation that name the backend: they differ by design.
_NOT_COMPARED = frozenset({"backend"})


@dataclass(frozen=True)
class Difference:
    """One field on which two observations disagree, and where it sits.

    `line` and `op` name the event (None for the final STATE); `proc`,
    `mapping` and `pages` (inclusive first, last page) narrow it down; `field`
    is the key that differs (a dotted path below the located object); `a` and
    `b` are the two values, MISSING where a side leaves the field out.
    """

    line: int | None
    op: str | None
    proc: str | None
    mapping: str | None
    pages: tuple[int, int] | None
    field: str
    a: Any
    b: Any

    def where(self) -> str:
        """The location and field as text: 'line 9 observe, p0 A page 0-3 flags'."""
        if self.line is not None:
            head = f"line {self.line} {self.op or 'event'}"
        else:
            head = self.op or "final"
        parts = [x for x in (self.proc, self.mapping) if x is not None]
        if self.pages is not None:
            first, last = self.pages
            parts.append(f"page {first}" if first == last else f"page {first}-{last}")
        return f"{head}, {' '.join(parts + [self.field])}"


def diff_observations(
    a: dict[str, Any], b: dict[str, Any], scenario: Scenario | None = None
) -> list[Difference]:
    """Every difference between observations `a` and `b`, in scenario order.

    Events are matched by position; STATEs are compared down to each page
    field, and identical differences on consecutive pages collapse into one
    page range.  With `scenario`, per-page values of `read` and `expect`
    events are placed at their page indexes rather than their list positions.
    """
    commands = {c.line: c for c in scenario.commands} if scenario is not None else {}
    out: list[Difference] = []
    for key in sorted(set(a) | set(b)):
        if key in _NOT_COMPARED:
            continue
        va, vb = a.get(key, MISSING), b.get(key, MISSING)
        if key == "events" and isinstance(va, list) and isinstance(vb, list):
            out.extend(_diff_events(va, vb, commands))
        elif key == "final" and isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_diff_state(va, vb, line=None, op=None))
        elif va != vb:
            out.append(Difference(None, "observation", None, None, None, key, va, vb))
    return out


def _diff_events(ea: list[Any], eb: list[Any], commands: dict[int, Command]) -> list[Difference]:
    out: list[Difference] = []
    for i in range(max(len(ea), len(eb))):
        xa = ea[i] if i < len(ea) else MISSING
        xb = eb[i] if i < len(eb) else MISSING
        ref = xa if isinstance(xa, dict) else xb
        line = ref.get("line") if isinstance(ref, dict) else None
        op = ref.get("op") if isinstance(ref, dict) else None
        proc = ref.get("proc") if isinstance(ref, dict) else None
        if not isinstance(xa, dict) or not isinstance(xb, dict):
            if xa != xb:
                out.append(
                    Difference(
                        line, op, proc, None, None, "event", _event_summary(xa), _event_summary(xb)
                    )
                )
            continue
        mapping = ref.get("map")
        for key in sorted(set(xa) | set(xb)):
            va, vb = xa.get(key, MISSING), xb.get(key, MISSING)
            if key == "state" and isinstance(va, dict) and isinstance(vb, dict):
                out.extend(_diff_state(va, vb, line=line, op=op))
            elif key in ("data", "got") and isinstance(va, list) and isinstance(vb, list):
                cmd = commands.get(line) if isinstance(line, int) else None
                pages = _command_pages(cmd)
                name = getattr(cmd, "name", mapping)
                out.extend(_diff_page_values(va, vb, pages, line, op, proc, name, key))
            elif va != vb:
                out.append(Difference(line, op, proc, mapping, None, key, va, vb))
    return out


def _event_summary(e: Any) -> Any:
    if isinstance(e, dict):
        return f"{e.get('op', '?')} event"
    return e


def _command_pages(cmd: Command | None) -> list[int] | None:
    runs = getattr(cmd, "runs", None)
    return runs_pages(runs) if runs is not None else None


def _diff_page_values(
    va: list[Any],
    vb: list[Any],
    pages: list[int] | None,
    line: Any,
    op: Any,
    proc: Any,
    mapping: Any,
    field: str,
) -> list[Difference]:
    # Per-page lists of an event: compare item by item, collapsing runs of equal
    # differences.  Without the scenario, positions stand in for page indexes and
    # the field says so.
    n = max(len(va), len(vb))
    index = pages if pages is not None and len(pages) == n else list(range(n))
    label = field if pages is not None and len(pages) == n else f"{field} item"
    out: list[Difference] = []
    run: list[Any] | None = None  # [first, last, a, b]
    for pos in range(n):
        xa = va[pos] if pos < len(va) else MISSING
        xb = vb[pos] if pos < len(vb) else MISSING
        page = index[pos]
        if xa == xb:
            if run:
                out.append(
                    Difference(line, op, proc, mapping, (run[0], run[1]), label, run[2], run[3])
                )
                run = None
            continue
        if run and run[1] + 1 == page and run[2] == xa and run[3] == xb:
            run[1] = page
            continue
        if run:
            out.append(Difference(line, op, proc, mapping, (run[0], run[1]), label, run[2], run[3]))
        run = [page, page, xa, xb]
    if run:
        out.append(Difference(line, op, proc, mapping, (run[0], run[1]), label, run[2], run[3]))
    return out


def _diff_state(
    sa: dict[str, Any], sb: dict[str, Any], line: int | None, op: str | None
) -> list[Difference]:
    out: list[Difference] = []
    rank = {"procs": 0, "vmstat": 1, "mthp": 2}
    for key in sorted(set(sa) | set(sb), key=lambda k: (rank.get(k, 3), k)):
        va, vb = sa.get(key, MISSING), sb.get(key, MISSING)
        if key == "procs" and isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_diff_procs(va, vb, line, op))
        elif key == "mthp" and isinstance(va, dict) and isinstance(vb, dict):
            for size in _ordered_keys(va, vb):
                ma, mb = va.get(size, MISSING), vb.get(size, MISSING)
                out.extend(_diff_flat(ma, mb, line, op, None, None, f"mthp {size}"))
        elif isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_diff_flat(va, vb, line, op, None, None, key))
        elif va != vb:
            out.append(Difference(line, op, None, None, None, key, va, vb))
    return out


def _ordered_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    # Keep the order of `a` (the contract's order), then keys only `b` has.
    return list(a) + [k for k in b if k not in a]


def _diff_flat(
    va: Any,
    vb: Any,
    line: int | None,
    op: str | None,
    proc: str | None,
    mapping: str | None,
    prefix: str,
) -> list[Difference]:
    # A dict of scalar fields (vmstat, one mTHP size, smaps).
    if not isinstance(va, dict) or not isinstance(vb, dict):
        if va == vb:
            return []
        return [Difference(line, op, proc, mapping, None, prefix, _summary(va), _summary(vb))]
    out = []
    for key in sorted(set(va) | set(vb)):
        xa, xb = va.get(key, MISSING), vb.get(key, MISSING)
        if xa != xb:
            out.append(Difference(line, op, proc, mapping, None, f"{prefix} {key}", xa, xb))
    return out


def _summary(v: Any) -> Any:
    if isinstance(v, dict):
        return "present"
    return v


def _diff_procs(
    pa: dict[str, Any], pb: dict[str, Any], line: int | None, op: str | None
) -> list[Difference]:
    out: list[Difference] = []
    for proc in sorted(set(pa) | set(pb)):
        xa, xb = pa.get(proc, MISSING), pb.get(proc, MISSING)
        if not isinstance(xa, dict) or not isinstance(xb, dict):
            if xa != xb:
                out.append(
                    Difference(line, op, proc, None, None, "process", _summary(xa), _summary(xb))
                )
            continue
        for key in sorted(set(xa) | set(xb)):
            ma, mb = xa.get(key, MISSING), xb.get(key, MISSING)
            if key != "maps" or not isinstance(ma, dict) or not isinstance(mb, dict):
                if ma != mb:
                    out.append(Difference(line, op, proc, None, None, key, ma, mb))
                continue
            for name in sorted(set(ma) | set(mb)):
                out.extend(
                    _diff_mapping(
                        ma.get(name, MISSING), mb.get(name, MISSING), line, op, proc, name
                    )
                )
    return out


def _diff_mapping(
    ma: Any, mb: Any, line: int | None, op: str | None, proc: str, name: str
) -> list[Difference]:
    if not isinstance(ma, dict) or not isinstance(mb, dict):
        if ma == mb:
            return []
        return [Difference(line, op, proc, name, None, "mapping", _summary(ma), _summary(mb))]
    out: list[Difference] = []
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key, MISSING), mb.get(key, MISSING)
        if key == "smaps":
            out.extend(_diff_flat(va, vb, line, op, proc, name, "smaps"))
        elif key == "pages" and isinstance(va, list) and isinstance(vb, list):
            out.extend(_diff_pages(va, vb, line, op, proc, name))
        elif va != vb:
            out.append(Difference(line, op, proc, name, None, key, va, vb))
    return out


def _diff_pages(
    pa: list[Any], pb: list[Any], line: int | None, op: str | None, proc: str, name: str
) -> list[Difference]:
    # Open runs per field: field -> [first, last, a, b].  A run closes when the
    # next page does not extend it with the very same pair of values.
    closed: list[tuple[int, int, str, Any, Any]] = []
    open_runs: dict[str, list[Any]] = {}
    for i in range(max(len(pa), len(pb))):
        xa = pa[i] if i < len(pa) else MISSING
        xb = pb[i] if i < len(pb) else MISSING
        if isinstance(xa, dict) and isinstance(xb, dict):
            diffs = {
                k: (xa.get(k, MISSING), xb.get(k, MISSING))
                for k in set(xa) | set(xb)
                if xa.get(k, MISSING) != xb.get(k, MISSING)
            }
        elif xa != xb:
            diffs = {"page": (_page_summary(xa), _page_summary(xb))}
        else:
            diffs = {}
        for fld in list(open_runs):
            run = open_runs[fld]
            if fld not in diffs or diffs[fld] != (run[2], run[3]):
                closed.append((run[0], run[1], fld, run[2], run[3]))
                del open_runs[fld]
        for fld, (va, vb) in diffs.items():
            if fld in open_runs:
                open_runs[fld][1] = i
            else:
                open_runs[fld] = [i, i, va, vb]
    for fld, run in open_runs.items():
        closed.append((run[0], run[1], fld, run[2], run[3]))
    order = {
        k: n
        for n, k in enumerate(
            ("page", "state", "order", "mapcount", "flags", "exclusive", "soft_dirty")
        )
    }
    closed.sort(key=lambda r: (r[0], order.get(r[2], 99), r[2]))
    return [
        Difference(line, op, proc, name, (first, last), fld, va, vb)
        for first, last, fld, va, vb in closed
    ]


def _page_summary(p: Any) -> Any:
    if isinstance(p, dict):
        return p.get("state", "page")
    return p


def show_value(v: Any) -> str:
    """A value as the report prints it: lists as [a, b], booleans as JSON."""
    if isinstance(v, _Missing):
        return "missing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ", ".join(show_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {show_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def format_difference(d: Difference, a_name: str, b_name: str) -> str:
    """One line: where, field, and what each side said (or that it is missing)."""
    if isinstance(d.a, _Missing):
        said = f"missing on {a_name}, {b_name} said {show_value(d.b)}"
    elif isinstance(d.b, _Missing):
        said = f"{a_name} said {show_value(d.a)}, missing on {b_name}"
    else:
        said = f"{a_name} said {show_value(d.a)}, {b_name} said {show_value(d.b)}"
    return f"{d.where()}: {said}"


def format_differences(diffs: list[Difference], a_name: str, b_name: str) -> str:
    """Every difference, one line each, as `foliosim diff` prints them."""
    return "".join(format_difference(d, a_name, b_name) + "\n" for d in diffs)
