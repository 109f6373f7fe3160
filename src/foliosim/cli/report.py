"""The terminal report of an observation: events, /proc-like state dumps, expects.

Everything here reads only the observation object (and, optionally, the parsed
scenario, to place per-page values at their page indexes); it never knows
which backend produced it.  Output is built as rich Text, never markup, so a
flag list like [anon] is printed as it is; rich drops the colours when the
output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rich.console import Console
from rich.text import Text

from foliosim.observation import MTHP_SIZE_NAMES, page_runs
from foliosim.scenario.ast import PAGE_SIZE, Command, Scenario, runs_count

PAGE_KB = PAGE_SIZE // 1024
STRIP_WIDTH = 64  # characters of a mapping strip before pages are grouped
MAX_RANGES = 64  # lines of a mapping dump before the rest is summarised


@dataclass(frozen=True)
class Category:
    """How one kind of page shows in a strip."""

    char: str
    style: str
    meaning: str


# In priority order: a page shows as the first category it belongs to.
CATEGORIES: dict[str, Category] = {
    "none": Category(".", "dim", "none"),
    "swap": Category("s", "bold blue", "swap entry"),
    "zero": Category("0", "cyan", "shared zero page"),
    "mlocked": Category("M", "bold magenta", "present, mlocked"),
    "lazyfree": Category("f", "yellow", "lazyfree (anon, not swapbacked)"),
    "lazyfree_dirty": Category("F", "bold yellow", "lazyfree, PG_dirty"),
    "dirty": Category("D", "bold green", "present, PG_dirty"),
    "present": Category("P", "green", "present"),
    "unknown": Category("?", "red", "present, flags not reported"),
}
MIXED = Category("*", "bold red", "mixed group")


def classify_page(page: dict[str, Any]) -> str:
    """The strip category of one PAGE of the observation."""
    state = page.get("state")
    if state == "none":
        return "none"
    if state == "swap":
        return "swap"
    flags = page.get("flags")
    if flags is None:
        return "unknown"
    if "zero_page" in flags:
        return "zero"
    if "mlocked" in flags or "unevictable" in flags:
        return "mlocked"
    if "anon" in flags and "swapbacked" not in flags:
        return "lazyfree_dirty" if "dirty" in flags else "lazyfree"
    if "dirty" in flags:
        return "dirty"
    return "present"


def page_strip(pages: list[dict[str, Any]], width: int = STRIP_WIDTH) -> tuple[Text, int]:
    """A strip of one character per page, or per group of pages past `width`.

    Returns the strip and the group size.  A group whose pages are not all of
    one category shows as MIXED.  Each run of equal pages is classified once.
    """
    n = len(pages)
    runs = [(first, last, classify_page(pages[first])) for first, last in page_runs(pages)]
    group = max(1, -(-n // width))
    text = Text()
    r = 0
    for start in range(0, n, group):
        end = min(n, start + group) - 1
        while runs[r][1] < start:
            r += 1
        cats = {runs[r][2]}
        k = r
        while runs[k][1] < end:
            k += 1
            cats.add(runs[k][2])
        cat = CATEGORIES[cats.pop()] if len(cats) == 1 else MIXED
        text.append(cat.char, style=cat.style)
    return text, group


def collapse(
    values: Iterable[Any], index: Iterable[int] | None = None
) -> list[tuple[int, int, Any]]:
    """Runs of equal consecutive values as (first, last, value), by page index.

    Found with numpy: a run ends where the value or the index steps.
    """
    vals = np.fromiter(values, dtype=object)
    n = len(vals)
    if not n:
        return []
    idx = np.arange(n) if index is None else np.fromiter(index, dtype=np.int64, count=n)
    change = np.ones(n, bool)
    change[1:] = (vals[1:] != vals[:-1]).astype(bool) | (np.diff(idx) != 1)
    firsts = np.flatnonzero(change)
    lasts = np.append(firsts[1:] - 1, n - 1)
    return [
        (int(idx[a]), int(idx[b]), vals[a])
        for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True)
    ]


def page_range(first: int, last: int) -> str:
    """'5' or '0-3'."""
    return str(first) if first == last else f"{first}-{last}"


def format_kb(kb: Any, raw: bool = False) -> str:
    """A size in kB as the report shows it; `raw` keeps it unscaled."""
    if not isinstance(kb, (int, float)) or isinstance(kb, bool):
        return f"{kb}"
    if raw or kb < 1024:
        return f"{kb} kB"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.4g} MB"
    return f"{kb / (1024 * 1024):.4g} GB"


def format_page(page: dict[str, Any]) -> str:
    """One PAGE as a /proc-like line tail: state, order, mapcount, flags, bits."""
    parts = [f"{page.get('state', '?'):<8}"]
    if "order" in page:
        parts.append(f"order={page['order']}")
    if "mapcount" in page:
        parts.append(f"mapcount={page['mapcount']}")
    if "flags" in page:
        parts.append(",".join(page["flags"]) if page["flags"] else "-")
    for bit in ("exclusive", "soft_dirty"):
        if page.get(bit):
            parts.append(bit)
    known = {"state", "order", "mapcount", "flags", "exclusive", "soft_dirty"}
    for key in sorted(set(page) - known):
        parts.append(f"{key}={page[key]}")
    return " ".join(parts).rstrip()


def mapping_lines(
    proc: str,
    name: str,
    mapping: dict[str, Any],
    raw: bool = False,
    width: int = STRIP_WIDTH,
    max_ranges: int = MAX_RANGES,
) -> Iterator[Text]:
    """The dump of one mapping: header with smaps, strip, collapsed page ranges."""
    pages = mapping.get("pages") or []
    smaps = mapping.get("smaps") or {}
    head = Text().append(f"{proc} {name}", style="bold")
    head.append(f"  {format_kb(len(pages) * PAGE_KB, raw)}")
    for field in ("Rss", "LazyFree", "Swap"):
        head.append(f"  {field}: {format_kb(smaps[field], raw) if field in smaps else 'missing'}")
    for field, kb in smaps.items():
        if (
            field not in ("Rss", "LazyFree", "Swap", "Anonymous", "Pss", "Private_Dirty", "SwapPss")
            and kb
        ):
            head.append(f"  {field}: {format_kb(kb, raw)}")
    yield head
    if not pages:
        return
    strip, group = page_strip(pages, width)
    line = Text("   ")
    line.append_text(strip)
    if group > 1:
        line.append(f"  (1 char = {group} pages)", style="dim")
    yield line
    runs = page_runs(pages)
    for first, last in runs[:max_ranges]:
        page = pages[first]
        cat = CATEGORIES[classify_page(page)] if isinstance(page, dict) else MIXED
        text = Text(f"   {page_range(first, last):<7} ")
        text.append(
            format_page(page) if isinstance(page, dict) else str(page),
            style=cat.style if cat.char not in ".DP" else "",
        )
        yield text
    if len(runs) > max_ranges:
        yield Text(
            f"   ... {len(runs) - max_ranges} more ranges (--json shows every page)", style="dim"
        )


def counter_lines(state: dict[str, Any]) -> Iterator[Text]:
    """The non-zero vmstat and mTHP deltas of a STATE."""
    vmstat = state.get("vmstat") or {}
    nonzero = [(k, v) for k, v in vmstat.items() if v]
    if nonzero:
        yield Text("vmstat: " + "  ".join(f"{k} {v}" for k, v in nonzero))
    mthp = state.get("mthp") or {}
    sizes = [s for s in MTHP_SIZE_NAMES if s in mthp] + [
        s for s in mthp if s not in MTHP_SIZE_NAMES
    ]
    for size in sizes:
        stats = mthp[size] or {}
        nonzero = [(k, v) for k, v in stats.items() if v]
        if nonzero:
            yield Text(f"mthp {size}: " + "  ".join(f"{k} {v}" for k, v in nonzero))


def state_lines(
    state: dict[str, Any], raw: bool = False, width: int = STRIP_WIDTH
) -> Iterator[Text]:
    """A STATE: every mapping of every process, then the non-zero counters."""
    procs = state.get("procs") or {}
    if not procs:
        yield Text("no processes", style="dim")
    for proc, pstate in procs.items():
        maps = (pstate or {}).get("maps") or {}
        if not maps:
            yield Text(f"{proc}  no mappings", style="dim")
        for name, mapping in maps.items():
            yield from mapping_lines(proc, name, mapping, raw, width)
    yield from counter_lines(state)


def _categories_in(obs: dict[str, Any], width: int = STRIP_WIDTH) -> tuple[list[str], bool]:
    # The categories the observation's strips use, and whether any strip groups pages.
    seen: set[str] = set()
    grouped = False

    def scan(state: Any) -> None:
        if not isinstance(state, dict):
            return
        for pstate in (state.get("procs") or {}).values():
            for mapping in ((pstate or {}).get("maps") or {}).values():
                nonlocal grouped
                pages = mapping.get("pages") or []
                grouped = grouped or len(pages) > width
                for first, _ in page_runs(pages):
                    page = pages[first]
                    if isinstance(page, dict):
                        seen.add(classify_page(page))

    scan(obs.get("final"))
    for ev in obs.get("events") or []:
        if isinstance(ev, dict) and ev.get("op") == "observe":
            scan(ev.get("state"))
    return [k for k in CATEGORIES if k in seen], grouped


def legend(obs: dict[str, Any], width: int = STRIP_WIDTH) -> Text:
    """The strip legend, for the categories this observation uses."""
    text = Text().append("legend: ", style="dim")
    used, grouped = _categories_in(obs, width)
    for n, key in enumerate(used):
        cat = CATEGORIES[key]
        if n:
            text.append("  ")
        text.append(cat.char, style=cat.style)
        text.append(f" {cat.meaning}")
    if grouped:
        text.append("  ")
        text.append(MIXED.char, style=MIXED.style)
        text.append(f" {MIXED.meaning}")
    return text


def backend_title(obs: dict[str, Any]) -> str:
    """'model linux-6.18' or 'kernel 6.18.44': what produced the observation."""
    backend = obs.get("backend") or {}
    name = backend.get("name", "?")
    if "variant" in backend:
        return f"{name} (variant {backend['variant']} on {backend['profile']})"
    if "profile" in backend:
        return f"{name} (profile {backend['profile']})"
    if "release" in backend:
        noise = backend.get("reclaim_noise")  # memcg scenarios (docs/pressure.md)
        if noise:
            moved = ", ".join(f"{k} {v}" for k, v in sorted(noise.items()))
            return f"{name} (Linux {backend['release']}; other reclaim ran meanwhile: {moved})"
        return f"{name} (Linux {backend['release']})"
    return str(name)


def _pages_of(cmd: Command | None, n: int) -> np.ndarray | None:
    # The page index of each of n per-page values of `cmd`, if its RANGE has n pages.
    runs = getattr(cmd, "runs", None)
    if runs is None or runs_count(runs) != n:
        return None
    return np.concatenate([np.arange(first, last + 1) for first, last in runs])


def values_by_page(values: list[Any], cmd: Command | None, max_runs: int = MAX_RANGES) -> str:
    """Per-page values collapsed into ranges: '0-1 w3, 2-3 zero' (at most `max_runs`)."""
    pages = _pages_of(cmd, len(values))
    runs = collapse(values, pages)
    text = ", ".join(f"{page_range(a, b)} {v}" for a, b, v in runs[:max_runs])
    if len(runs) > max_runs:
        text += f", ... {len(runs) - max_runs} more ranges (--json shows every page)"
    return text


def _event_prefix(ev: dict[str, Any]) -> Text:
    return Text().append(f"line {ev.get('line', '?'):<3} {ev.get('proc', '?')} ", style="dim")


def report_lines(
    obs: dict[str, Any],
    scenario: Scenario | None = None,
    raw: bool = False,
    width: int = STRIP_WIDTH,
) -> Iterator[Text]:
    """The whole report of one observation, line by line."""
    commands = {c.line: c for c in scenario.commands} if scenario is not None else {}
    title = Text().append("foliosim run: ", style="bold")
    title.append(backend_title(obs), style="bold cyan")
    title.append(f"  scenario {obs.get('scenario', '?')}")
    yield title
    yield legend(obs, width)
    events = [e for e in obs.get("events") or [] if isinstance(e, dict)]
    for ev in events:
        op = ev.get("op")
        cmd = commands.get(ev.get("line"))  # type: ignore[arg-type]
        if "error" in ev:
            text = _event_prefix(ev)
            what = (
                cmd.text.split(":", 1)[-1].strip()
                if cmd is not None and ":" in cmd.text.split()[0]
                else (cmd.text if cmd is not None else "")
            )
            what = what or f"{op} {ev.get('map', '')}".rstrip()
            text.append(what + ": ")
            text.append(f"failed {ev['error']}", style="bold red")
            yield text
        elif op == "read":
            text = _event_prefix(ev)
            text.append(f"read {ev.get('map', '?')}: ")
            data = ev.get("data")
            text.append(values_by_page(data, cmd) if isinstance(data, list) else str(data))
            yield text
        elif op == "observe":
            text = _event_prefix(ev)
            text.append("observe", style="bold")
            if ev.get("label"):
                text.append(f" {ev['label']}")
            yield text
            state = ev.get("state")
            if isinstance(state, dict):
                for line in state_lines(state, raw, width):
                    yield Text("  ") + line
    yield Text("final state", style="bold")
    final = obs.get("final")
    if isinstance(final, dict):
        for line in state_lines(final, raw, width):
            yield Text("  ") + line
    else:
        yield Text("  missing", style="red")
    expects = [e for e in events if e.get("op") == "expect"]
    if expects:
        yield Text("expectations", style="bold")
    for ev in expects:
        ok = ev.get("ok") is True
        text = Text("  ")
        text.append("PASS" if ok else "FAIL", style="bold green" if ok else "bold red")
        text.append(f" line {ev.get('line', '?'):<3} ")
        text.append(_command_text(ev.get("proc"), str(ev.get("text", ""))))
        yield text
        if not ok:
            yield Text("       got: " + describe_got(ev.get("got"), commands.get(ev.get("line"))))  # type: ignore[arg-type]
    failed = sum(1 for e in expects if e.get("ok") is not True)
    if expects:
        noun = "expectation" if len(expects) == 1 else "expectations"
        summary = f"{len(expects)} {noun}: {len(expects) - failed} passed, {failed} failed"
        yield Text(summary, style="bold red" if failed else "bold green")


def _command_text(proc: Any, text: str) -> str:
    # An expect's text with its process prefix, written or not.
    if proc and proc != "p0" and not text.startswith(f"{proc}:"):
        return f"{proc}: {text}"
    return text


def describe_got(got: Any, cmd: Command | None) -> str:
    """What an expect found: per-page lists collapsed, nothing when null."""
    if got is None:
        return "nothing (the backend could not produce this value)"
    if isinstance(got, list):
        return values_by_page(got, cmd) if got else "no pages"
    return str(got)


def failed_expects(obs: dict[str, Any]) -> int:
    """How many expect events of the observation did not hold."""
    return sum(
        1
        for e in obs.get("events") or []
        if isinstance(e, dict) and e.get("op") == "expect" and e.get("ok") is not True
    )


def print_report(
    console: Console,
    obs: dict[str, Any],
    scenario: Scenario | None = None,
    raw: bool = False,
) -> None:
    """Print the report of `obs` on `console`."""
    for line in report_lines(obs, scenario, raw):
        console.print(line, highlight=False, overflow="ignore", crop=False)
