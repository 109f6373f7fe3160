"""What every backend implements, and the one dispatch from scenario command to backend.

A backend (the model, the live kernel, a generated C program, ...) runs a parsed
scenario and returns the observation object of the contract (docs/scenario-format.md).
It has one handler method per command class of foliosim.scenario.ast, named
`cmd_<keyword>` after the command's word in the language (the parser's methods are
named the same way): `cmd_mmap(cmd: Mmap)`, `cmd_expect_data(cmd: ExpectData)`, ...
Each returns the EVENTs the command produced (an error, a read, an observe, an
expect), usually none.  `execute(backend, cmd)` calls the handler for `cmd`; a
backend's `run()` loops over the commands, calling it between its own set-up and
teardown.

A backend that translates the scenario first (a generated C program) gives the
methods that emit each command's code the same names, calls them through
handler_of(), returns the EVENTs its program reports from run(), and names the
class holding those methods in a `translator` class attribute.  A new command
class needs a handler in every backend: tests/test_dispatch.py (which finds every
class named *Backend, or its `translator`) fails until each has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from foliosim.scenario import ast

Event = dict[str, Any]
# A --trace sink: (scenario line, function or syscall, message).
Trace = Callable[[int, str, str], None]

# Every command class of the language, in the order of the AST module.
COMMANDS: tuple[type[ast.Command], ...] = tuple(
    cls
    for cls in vars(ast).values()
    if isinstance(cls, type) and issubclass(cls, ast.Command) and cls is not ast.Command
)


def handler_name(cls: type[ast.Command]) -> str:
    """The backend method that runs commands of class `cls`: ExpectData -> 'cmd_expect_data'."""
    return "cmd_" + re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


HANDLERS: dict[type[ast.Command], str] = {cls: handler_name(cls) for cls in COMMANDS}


def handler_of(obj: object, cmd: ast.Command) -> Callable[..., Any]:
    """The cmd_* method of `obj` for `cmd`: a backend's, or a translator's (the C export)."""
    name = HANDLERS.get(type(cmd))
    if name is None:
        raise TypeError(f"not a scenario command: {cmd!r}")
    handler: Callable[..., Any] = getattr(obj, name)
    return handler


def skipped_event(cmd: ast.Command, killed_at: int) -> Event:
    """The EVENT of a line of a process the memcg OOM killer chose at line `killed_at`."""
    return {"line": cmd.line, "proc": cmd.proc, "op": "skipped", "killed_at": killed_at}


def oom_kill_event(cmd: ast.Command, victim: str) -> Event:
    """The EVENT of a line whose charge made the memcg OOM killer kill `victim`."""
    return {"line": cmd.line, "proc": cmd.proc, "op": "oom_kill", "victim": victim}


def execute(backend: Backend, cmd: ast.Command) -> list[Event]:
    """Run one scenario command on `backend` (its cmd_* handler); return its EVENTs."""
    events: list[Event] = handler_of(backend, cmd)(cmd)
    return events


class Backend(Protocol):
    """A backend: `name` as in the observation's "backend", `run`, and one handler a command."""

    name: str

    def run(self, scenario: ast.Scenario, trace: Trace | None = None) -> dict[str, Any]:
        """Run every command of `scenario`; return the contract's observation object."""
        ...

    def cmd_mthp(self, cmd: ast.Mthp) -> list[Event]: ...
    def cmd_thp(self, cmd: ast.Thp) -> list[Event]: ...
    def cmd_swap(self, cmd: ast.Swap) -> list[Event]: ...
    def cmd_mmap(self, cmd: ast.Mmap) -> list[Event]: ...
    def cmd_munmap(self, cmd: ast.Munmap) -> list[Event]: ...
    def cmd_write(self, cmd: ast.Write) -> list[Event]: ...
    def cmd_read(self, cmd: ast.Read) -> list[Event]: ...
    def cmd_madvise(self, cmd: ast.Madvise) -> list[Event]: ...
    def cmd_mlock(self, cmd: ast.Mlock) -> list[Event]: ...
    def cmd_munlock(self, cmd: ast.Munlock) -> list[Event]: ...
    def cmd_fork(self, cmd: ast.Fork) -> list[Event]: ...
    def cmd_exit(self, cmd: ast.Exit) -> list[Event]: ...
    def cmd_gup(self, cmd: ast.Gup) -> list[Event]: ...
    def cmd_release(self, cmd: ast.Release) -> list[Event]: ...
    def cmd_poke(self, cmd: ast.Poke) -> list[Event]: ...
    def cmd_observe(self, cmd: ast.Observe) -> list[Event]: ...
    def cmd_expect_data(self, cmd: ast.ExpectData) -> list[Event]: ...
    def cmd_expect_state(self, cmd: ast.ExpectState) -> list[Event]: ...
    def cmd_expect_smaps(self, cmd: ast.ExpectSmaps) -> list[Event]: ...
    def cmd_expect_vmstat(self, cmd: ast.ExpectVmstat) -> list[Event]: ...
    # mlockall(2), munlockall(2).
    def cmd_mlockall(self, cmd: ast.Mlockall) -> list[Event]: ...
    def cmd_munlockall(self, cmd: ast.Munlockall) -> list[Event]: ...
    # Page expectations: order, mapcount, exclusive, flags.
    def cmd_expect_order(self, cmd: ast.ExpectOrder) -> list[Event]: ...
    def cmd_expect_mapcount(self, cmd: ast.ExpectMapcount) -> list[Event]: ...
    def cmd_expect_exclusive(self, cmd: ast.ExpectExclusive) -> list[Event]: ...
    def cmd_expect_flags(self, cmd: ast.ExpectFlags) -> list[Event]: ...
    # protections, partial unmaps, mremap, results
    def cmd_mprotect(self, cmd: ast.Mprotect) -> list[Event]: ...
    def cmd_mremap(self, cmd: ast.Mremap) -> list[Event]: ...
    def cmd_expect_result(self, cmd: ast.ExpectResult) -> list[Event]: ...
    # -- references (issue 12) --
    def cmd_pin(self, cmd: ast.Pin) -> list[Event]: ...
    def cmd_expect_ref_data(self, cmd: ast.ExpectRefData) -> list[Event]: ...
    def cmd_process_madvise(self, cmd: ast.ProcessMadvise) -> list[Event]: ...
    # memcg (issue 13)
    def cmd_memcg_limit(self, cmd: ast.MemcgLimit) -> list[Event]: ...
    def cmd_memcg_reclaim(self, cmd: ast.MemcgReclaim) -> list[Event]: ...
    def cmd_memcg_swappiness(self, cmd: ast.MemcgSwappiness) -> list[Event]: ...
    def cmd_expect_memcg(self, cmd: ast.ExpectMemcg) -> list[Event]: ...
    def cmd_expect_oom_kill(self, cmd: ast.ExpectOomKill) -> list[Event]: ...


def error_event(cmd: ast.Command, op: str, err: str, mapname: str | None = None) -> Event:
    """The EVENT of a failed system call: `op` failed with errno name `err`."""
    ev: Event = {"line": cmd.line, "proc": cmd.proc, "op": op, "error": err}
    if mapname is not None:
        ev["map"] = mapname
    return ev
