"""Evaluate `expect` lines against an observed STATE: one rule for every backend."""

from __future__ import annotations

from typing import Any

from foliosim.scenario.ast import (
    Command,
    ExpectData,
    ExpectResult,
    ExpectRefData,
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
) -> dict[str, Any]:
    """The contract's expect EVENT for `cmd`, judged on `state`.

    `vmstat` holds every counter the backend knows (deltas), a superset of
    STATE["vmstat"]; `data` is what the backend read for an ExpectData line, or
    what each page of the reference holds for an ExpectRefData line; `result`,
    for an ExpectResult line, the outcome of the line it names: "ok" or the error
    of that line's event.
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
