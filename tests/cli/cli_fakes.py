"""Small stand-ins for the parser and the backends, so the CLI is tested alone.

The fake parser knows a handful of commands; the fake model keeps per-page
state just well enough to produce contract-shaped observations whose content
depends on the scenario (so tests can tell right from wrong output).
"""

from __future__ import annotations

import copy
import types
from typing import Any

from foliosim import observation
from foliosim.expect import expect_event
from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError


def _runs(word: str, npages: int, path: str, line: int, col: int) -> ast.Runs:
    if word == "all":
        return ((0, npages - 1),)
    runs = []
    for part in word.split(","):
        a, _, b = part.partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            raise ScenarioError(path, line, col, f"bad range {word!r}")
        first, last = int(a), int(b or a)
        if last >= npages:
            raise ScenarioError(path, line, col, f"page {last} is outside the mapping")
        runs.append((first, last))
    return tuple(runs)


def parse_text(text: str, path: str) -> ast.Scenario:
    sizes: dict[str, int] = {}
    cmds: list[ast.Command] = []
    for n, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        w = body.split()
        col = raw.index(w[0]) + 1
        op = w[0]
        if op == "mmap":
            pages = int(w[2][:-1]) // 4 if w[2].endswith("K") else int(w[2])
            sizes[w[1]] = pages
            cmds.append(ast.Mmap(n, "p0", body, w[1], pages))
        elif op in ("write", "read", "madvise", "expect") and len(w) > 1 and w[1] == "vmstat":
            cmds.append(ast.ExpectVmstat(n, "p0", body, w[2], int(w[3])))
        elif op in ("write", "read", "madvise", "expect"):
            if w[1] not in sizes:
                raise ScenarioError(path, n, raw.index(w[1]) + 1, f"unknown mapping {w[1]!r}")
            runs = _runs(w[2], sizes[w[1]], path, n, raw.index(w[2], col) + 1)
            if op == "write":
                label = w[4] if len(w) > 4 else f"w{n}"
                cmds.append(ast.Write(n, "p0", body, w[1], runs, label))
            elif op == "read":
                cmds.append(ast.Read(n, "p0", body, w[1], runs))
            elif op == "madvise":
                cmds.append(ast.Madvise(n, "p0", body, w[1], runs, w[3]))
            elif w[3] == "data":
                cmds.append(ast.ExpectData(n, "p0", body, w[1], runs, w[4]))
            else:
                cmds.append(ast.ExpectState(n, "p0", body, w[1], runs, w[3]))
        elif op == "observe":
            cmds.append(ast.Observe(n, "p0", body, " ".join(w[1:])))
        else:
            raise ScenarioError(path, n, col, f"unknown command {op!r}")
    return ast.Scenario(path, tuple(cmds))


def _zero_counters() -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    return (
        {k: 0 for k in observation.VMSTAT_KEYS},
        {s: {k: 0 for k in observation.MTHP_STAT_KEYS} for s in observation.MTHP_SIZE_NAMES},
    )


class FakeModel:
    """Pages go none -> present on write; MADV_FREE clears swapbacked and dirty."""

    name = "model"
    lazyfree_flags = ("anon", "uptodate")

    def __init__(self, profile: str = "linux-6.18", check: bool = False) -> None:
        if profile != "linux-6.18":
            raise KeyError(f"unknown profile {profile!r} (known: linux-6.18)")
        self.profile = profile
        self.check = check

    def _backend(self) -> dict[str, Any]:
        return {"name": "model", "profile": self.profile}

    def run(self, scenario: ast.Scenario, trace: Any = None) -> dict[str, Any]:
        maps: dict[str, list[dict[str, Any]]] = {}
        data: dict[str, list[str]] = {}
        vmstat, mthp = _zero_counters()
        events: list[dict[str, Any]] = []

        def state() -> dict[str, Any]:
            procs = {
                "p0": {
                    "maps": {
                        name: {"smaps": self._smaps(pages), "pages": copy.deepcopy(pages)}
                        for name, pages in maps.items()
                    }
                }
            }
            return {"vmstat": dict(vmstat), "mthp": copy.deepcopy(mthp), "procs": procs}

        for c in scenario.commands:
            if isinstance(c, ast.Mmap):
                if trace:
                    trace(c.line, "do_mmap", f"{c.name}: {c.pages} pages")
                maps[c.name] = [
                    {"state": "none", "exclusive": False, "soft_dirty": False}
                    for _ in range(c.pages)
                ]
                data[c.name] = ["zero"] * c.pages
            elif isinstance(c, ast.Write):
                for i in ast.runs_pages(c.runs):
                    if trace:
                        trace(c.line, "do_anonymous_page", f"{c.name} page {i}")
                        trace(c.line, "folio_add_new_anon_rmap", f"{c.name} page {i}")
                    maps[c.name][i] = {
                        "state": "present",
                        "exclusive": True,
                        "soft_dirty": True,
                        "order": 0,
                        "mapcount": 1,
                        "flags": ["anon", "anon_exclusive", "dirty", "swapbacked", "uptodate"],
                    }
                    data[c.name][i] = c.label
            elif isinstance(c, ast.Madvise) and c.advice == "free":
                for i in ast.runs_pages(c.runs):
                    if trace:
                        trace(c.line, "madvise_free_pte_range", f"{c.name} page {i}")
                    page = maps[c.name][i]
                    if page["state"] == "present":
                        page["flags"] = sorted(set(page["flags"]) - {"dirty", "swapbacked"})
                        vmstat["pglazyfree"] += 1
            elif isinstance(c, ast.Madvise) and c.advice == "pageout":
                if self.check:
                    from foliosim.model.errors import InvariantError

                    raise InvariantError(
                        f"line {c.line}: {c.text}: validate_folio_mapcount: "
                        "folio #1 (order 0, p0 A 0): mapcount 2, but 1 PTE "
                        "maps it"
                    )
                events.append(
                    {
                        "line": c.line,
                        "proc": c.proc,
                        "op": "madvise",
                        "map": c.name,
                        "error": "EINVAL",
                    }
                )
            elif isinstance(c, ast.Read):
                events.append(
                    {
                        "line": c.line,
                        "proc": c.proc,
                        "op": "read",
                        "map": c.name,
                        "data": [data[c.name][i] for i in ast.runs_pages(c.runs)],
                    }
                )
            elif isinstance(c, ast.Observe):
                events.append(
                    {
                        "line": c.line,
                        "proc": c.proc,
                        "op": "observe",
                        "label": c.label,
                        "state": state(),
                    }
                )
            elif isinstance(c, ast.ExpectData):
                got = [data[c.name][i] for i in ast.runs_pages(c.runs)]
                events.append(expect_event(c, state(), vmstat, got))
            elif isinstance(c, (ast.ExpectState, ast.ExpectSmaps, ast.ExpectVmstat)):
                events.append(expect_event(c, state(), vmstat))
        return {
            "format": observation.FORMAT,
            "scenario": scenario.name,
            "backend": self._backend(),
            "events": events,
            "final": state(),
        }

    @staticmethod
    def _smaps(pages: list[dict[str, Any]]) -> dict[str, int]:
        smaps = {k: 0 for k in observation.SMAPS_KEYS}
        for p in pages:
            if p["state"] == "present":
                smaps["Rss"] += 4
                smaps["Anonymous"] += 4
                smaps["Pss"] += 4
                smaps["Private_Dirty"] += 4
                if "swapbacked" not in p.get("flags", []):
                    smaps["LazyFree"] += 4
        return smaps


class FakeKernel(FakeModel):
    """Like the model, but it does not report soft_dirty (a field left out)."""

    name = "kernel"
    reason: str | None = None

    def __init__(self) -> None:
        super().__init__()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cls.reason

    def _backend(self) -> dict[str, Any]:
        return {"name": "kernel", "release": "6.18.44-fake"}

    def run(self, scenario: ast.Scenario, trace: Any = None) -> dict[str, Any]:
        obs = super().run(scenario, trace)
        for p in obs["final"]["procs"]["p0"]["maps"].get("A", {}).get("pages", []):
            p.pop("soft_dirty", None)
        return obs


def modules() -> dict[str, types.ModuleType]:
    parser = types.ModuleType("foliosim.scenario.parser")
    parser.parse_text = parse_text  # type: ignore[attr-defined]
    model = types.ModuleType("foliosim.model.backend")
    model.ModelBackend = FakeModel  # type: ignore[attr-defined]
    kernel = types.ModuleType("foliosim.kernel.backend")
    kernel.KernelBackend = FakeKernel  # type: ignore[attr-defined]
    return {
        "foliosim.scenario.parser": parser,
        "foliosim.model.backend": model,
        "foliosim.kernel.backend": kernel,
    }
