"""foliosim.dispatch: one dispatch, and every backend handles every command of the language."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import pytest

import foliosim
from foliosim.dispatch import COMMANDS, HANDLERS, Backend, execute, handler_name
from foliosim.model.backend import ModelBackend
from foliosim.scenario import ast
from foliosim.scenario.parser import parse_text


def _all_command_classes() -> set[type]:
    found, todo = set(), [ast.Command]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def _backend_classes() -> list[type]:
    # Every class named *Backend defined anywhere in foliosim, so a new backend is
    # checked without being listed here.
    classes = {}
    for info in pkgutil.walk_packages(foliosim.__path__, "foliosim."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and name.endswith("Backend")
                and obj.__module__ == module.__name__
                and obj is not Backend
                and not getattr(obj, "_is_protocol", False)
            ):
                classes[f"{obj.__module__}.{name}"] = obj
    return [classes[k] for k in sorted(classes)]


BACKENDS = _backend_classes()


def test_the_model_and_kernel_backends_are_found():
    names = {cls.__name__ for cls in BACKENDS}
    assert {"ModelBackend", "KernelBackend"} <= names


def test_commands_lists_every_command_class_of_the_ast():
    assert set(COMMANDS) == _all_command_classes()


def test_handler_names_follow_the_command_classes():
    assert handler_name(ast.Mmap) == "cmd_mmap"
    assert handler_name(ast.ExpectVmstat) == "cmd_expect_vmstat"
    assert len(set(HANDLERS.values())) == len(COMMANDS)


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_the_protocol_declares_the_handler_of_each_command(cls):
    handler = getattr(Backend, HANDLERS[cls], None)
    assert handler is not None, f"foliosim.dispatch.Backend has no {HANDLERS[cls]}()"
    hints = typing.get_type_hints(handler)
    assert hints["cmd"] is cls


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_every_backend_implements_every_command(backend, cls):
    # A translating backend's handlers are on its translator class.
    backend = getattr(backend, "translator", backend)
    handler = getattr(backend, HANDLERS[cls], None)
    assert callable(handler), f"{backend.__name__} has no {HANDLERS[cls]}() for {cls.__name__}"
    params = list(inspect.signature(handler).parameters)
    assert params == ["self", "cmd"], f"{backend.__name__}.{HANDLERS[cls]}{params}"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
def test_every_backend_has_the_protocols_run_and_name(backend):
    assert isinstance(backend.name, str)
    params = inspect.signature(backend.run).parameters
    assert list(params)[:3] == ["self", "scenario", "trace"]
    assert params["trace"].default is None


def test_execute_refuses_what_is_not_a_scenario_command():
    with pytest.raises(TypeError, match="not a scenario command"):
        execute(ModelBackend(), ast.Scenario("x.scn"))  # type: ignore[arg-type]


# One line of every command class.
EVERY_COMMAND = """\
thp never
mthp 64K never
swap 1M
mmap A 4
write A all as a
read A 0-1
madvise A 0 cold
mlock A 1
munlock A 1
gup A 2 as r
release r
poke A 3 as q
fork c
c: exit
observe here
expect A 0 data a
expect A all present
expect A smaps Rss 16
expect vmstat pswpout 0
expect A 0 order 0
expect A 0 mapcount 1
expect A 0 exclusive yes
expect A 0 flags +anon -mlocked
mlockall current future onfault
munlockall
pin A 0-1 as R
expect R data a
process_madvise p0 A 0 cold
release R
memcg swappiness 60
memcg limit max
memcg reclaim 4K
expect memcg limit max
expect oom_kill none
mremap A 8 move
mprotect A 0 read
expect result ok
munmap A 7
munmap A
"""


def test_the_model_runs_a_scenario_of_every_command_through_the_dispatch():
    scenario = parse_text(EVERY_COMMAND, "every.scn")
    assert {type(c) for c in scenario.commands} == set(COMMANDS), "add the new command above"
    events = ModelBackend(check=True).run(scenario)["events"]
    assert [(e["line"], e["op"]) for e in events] == [
        (6, "read"),
        (15, "observe"),
        (16, "expect"),
        (17, "expect"),
        (18, "expect"),
        (19, "expect"),
        (20, "expect"),
        (21, "expect"),
        (22, "expect"),
        (23, "expect"),
        (27, "expect"),
        (33, "expect"),
        (34, "expect"),
        (37, "expect"),
    ]
    assert events[0]["data"] == ["a", "a"]
    assert all(e["ok"] for e in events[2:])
