"""Evaluate `expect` lines against an observed STATE: one rule for every backend."""

from __future__ import annotations

from typing import Any

from foliosim.scenario.ast import (
    Command,
    ExpectData,
    ExpectExclusive,
    ExpectFlags,
    ExpectMapcount,
    ExpectOrder,
    ExpectResult,
    ExpectRefData,
    ExpectMemcg,
    ExpectOomKill,
    ExpectSmaps,
    ExpectState,
    ExpectVmstat,
    runs_pages,
)


def expect_event(
    cmd: Command,
    state: dict[str, Any],
    vmstat: dict[str, int],
    data: list[str] | None = None,
    result: str | None = None,
    victims: list[str] | None = None,
) -> dict[str, Any]:
    """The contract's expect EVENT for `cmd`, judged on `state`.

    `vmstat` holds every counter the backend knows (deltas), a superset of
    STATE["vmstat"]; `data` is what the backend read for an ExpectData line, or
    what each page of the reference holds for an ExpectRefData line; `result`,
    for an ExpectResult line, the outcome of the line it names: "ok" or the error
    of that line's event; `victims`, for an ExpectOomKill line, the memcg OOM
    killer's victims so far, in order.
    A value the backend cannot produce is `got: null` and fails.
    """
    got: Any
    if isinstance(cmd, ExpectData):
        got = data
        ok = data is not None and all(v == cmd.value for v in data)
    elif isinstance(cmd, ExpectRefData):
        # Every page the reference holds; one that holds none (its gup or pin failed
        # before taking a page) fails.
        got = data
        ok = bool(data) and all(v == cmd.value for v in data)
    elif isinstance(cmd, ExpectState):
        pages = _pages(state, cmd.proc, cmd.name)
        got = [pages[i]["state"] for i in runs_pages(cmd.runs)] if pages is not None else None
        ok = got is not None and all(v == cmd.state for v in got)
    elif isinstance(cmd, ExpectSmaps):
        smaps = _mapping(state, cmd.proc, cmd.name)
        got = smaps["smaps"].get(cmd.field) if smaps is not None else None
        ok = got == cmd.kb
    elif isinstance(cmd, ExpectResult):
        got = result
        ok = got == cmd.value
    elif isinstance(cmd, ExpectVmstat):
        got = vmstat.get(cmd.counter)
        ok = got == cmd.value
    elif isinstance(cmd, (ExpectOrder, ExpectMapcount, ExpectExclusive, ExpectFlags)):
        got, ok = _page_expect(cmd, _pages(state, cmd.proc, cmd.name))
    elif isinstance(cmd, ExpectMemcg):
        # memcg (issue 13): `state` is the backend's memcg fields (a superset of
        # STATE["memcg"]); a field it cannot produce is missing, got null, and fails.
        got = state.get(cmd.field, False)
        ok = got is not False and got == cmd.value
        if got is False:
            got = None
    elif isinstance(cmd, ExpectOomKill):
        # memcg (issue 13): got is every victim so far; `none` holds when there is none.
        got = list(victims) if victims is not None else None
        ok = got is not None and (cmd.victim in got if cmd.victim else not got)
    else:
        raise TypeError(f"not an expect command: {cmd!r}")
    return {
        "line": cmd.line,
        "proc": cmd.proc,
        "op": "expect",
        "text": cmd.text,
        "ok": ok,
        "got": got,
    }


def _mapping(state: dict[str, Any], proc: str, name: str) -> dict[str, Any] | None:
    return state.get("procs", {}).get(proc, {}).get("maps", {}).get(name)


def _pages(state: dict[str, Any], proc: str, name: str) -> list[dict[str, Any]] | None:
    m = _mapping(state, proc, name)
    return None if m is None else m["pages"]


# -- page expectations: order, mapcount, exclusive, flags -----------------------------


def flags_seen(page: dict[str, Any], flags: tuple[str, ...]) -> str | None:
    """The words of `flags` as the page has them ("+dirty -mlocked"); None if not present."""
    if page["state"] != "present":
        return None
    have = set(page.get("flags", ()))
    return " ".join(("+" if f[1:] in have else "-") + f[1:] for f in flags)


def _page_expect(
    cmd: ExpectOrder | ExpectMapcount | ExpectExclusive | ExpectFlags,
    pages: list[dict[str, Any]] | None,
) -> tuple[Any, bool]:
    # got: one value per page of the range, in range order; null for a page that
    # is not present (order, mapcount and flags are read by pfn).
    if pages is None:
        return None, False
    sel = [pages[i] for i in runs_pages(cmd.runs)]
    got: list[Any]
    if isinstance(cmd, ExpectOrder):
        got = [p.get("order") if p["state"] == "present" else None for p in sel]
        return got, all(v == cmd.order for v in got)
    if isinstance(cmd, ExpectMapcount):
        got = [p.get("mapcount") if p["state"] == "present" else None for p in sel]
        return got, all(v == cmd.mapcount for v in got)
    if isinstance(cmd, ExpectExclusive):
        got = ["yes" if p["exclusive"] else "no" for p in sel]
        want = "yes" if cmd.exclusive else "no"
        return got, all(v == want for v in got)
    want_flags = " ".join(cmd.flags)
    got = [flags_seen(p, cmd.flags) for p in sel]
    return got, all(v == want_flags for v in got)
