"""Helpers of the live-kernel tests."""

from __future__ import annotations

from foliosim.kernel.backend import KernelBackend
from foliosim.scenario.parser import parse_text


def run_text(text: str, name: str = "test.scn") -> dict:
    """Parse scenario text and run it on the live kernel."""
    return KernelBackend().run(parse_text(text, name))


def final_pages(obs: dict, mapname: str, proc: str = "p0") -> list[dict]:
    return obs["final"]["procs"][proc]["maps"][mapname]["pages"]


def events(obs: dict, op: str) -> list[dict]:
    return [e for e in obs["events"] if e["op"] == op]
