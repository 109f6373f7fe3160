"""`foliosim plot SCN -o FILE.png`: "when will my RSS drop?", line by line.

Runs the scenario once (the model by default, `--backend kernel` the live
kernel) with an `observe` and an `expect memcg usage` line added after every
line that is not itself an `expect` or `observe` line, and plots, after each
line: the scenario processes' Rss and LazyFree (smaps, summed over every
mapping), the cgroup's usage and limit, and its LRU list sizes (memory.stat).
The model has no kernel memory in its page counter, so for it usage is not
observed (`expect memcg usage` gets null) and the plot shows rss + cache, said
in the legend.  matplotlib draws it (Agg, no display needed).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from foliosim.cli.common import choose_profile, kernel_backend, model_backend, read_scenario
from foliosim.scenario import ast

EXIT_STATUSES = {0: "the plot was written", 1: "the plot was written, but an expectation failed"}

LRU_KEYS = ("active_anon", "inactive_anon", "active_file", "inactive_file", "unevictable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `foliosim plot`."""
    parser.add_argument("file", metavar="SCN", help="scenario file (.scn)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png", help="image to write")
    parser.add_argument(
        "--backend", choices=("model", "kernel"), default="model", help="default: model"
    )
    parser.add_argument("--profile", help="model profile (default linux-6.18)")
    parser.add_argument("--title", help="the plot's title (default: the scenario's name)")


def _is_probe(cmd: ast.Command) -> bool:
    return isinstance(cmd, ast.Observe) or type(cmd).__name__.startswith("Expect")


def probed(scenario: ast.Scenario) -> ast.Scenario:
    """`scenario` with an observe and an `expect memcg usage` after every other line."""
    out: list[ast.Command] = []
    for cmd in scenario.commands:
        out.append(cmd)
        if _is_probe(cmd):
            continue
        out.append(ast.Observe(line=cmd.line, proc=cmd.proc, text="observe", label="plot"))
        out.append(
            ast.ExpectMemcg(
                line=cmd.line, proc=cmd.proc, text="expect memcg usage 0", field="usage", value=0
            )
        )
    return dataclasses.replace(scenario, commands=tuple(out))


def points(obs: dict[str, Any], scenario: ast.Scenario) -> list[dict[str, Any]]:
    """One point a probed line of `scenario` (the unprobed one): line, text, Rss, LazyFree,
    each mapping's Rss ("PROC NAME"), usage and the memcg's fields (kB)."""
    text = {c.line: c.text for c in scenario.commands}
    usage: dict[int, int | None] = {}
    for e in obs["events"]:
        if e["op"] == "expect" and e["text"] == "expect memcg usage 0":
            usage[e["line"]] = e["got"]
    out = []
    for e in obs["events"]:
        if e["op"] != "observe" or e.get("label") != "plot":
            continue
        st = e["state"]
        maps = [m for p in st["procs"].values() for m in p["maps"].values()]
        memcg = st.get("memcg", {})
        out.append(
            {
                "line": e["line"],
                "text": text.get(e["line"], ""),
                "Rss": sum(m["smaps"]["Rss"] for m in maps),
                "LazyFree": sum(m["smaps"]["LazyFree"] for m in maps),
                "usage": usage.get(e["line"]),
                "maps": {
                    f"{p} {n}": m["smaps"]["Rss"]
                    for p, pst in st["procs"].items()
                    for n, m in pst["maps"].items()
                },
                **memcg,
            }
        )
    return out


def draw(pts: list[dict[str, Any]], path: str, title: str, backend: str) -> None:
    """Write the two panels (memory, LRU lists) of `pts` to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(pts)))
    mib = 1024.0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    top.plot(x, [p["Rss"] / mib for p in pts], marker="o", label="Rss (all mappings)")
    top.plot(x, [p["LazyFree"] / mib for p in pts], marker="s", label="LazyFree")
    names = sorted({n for p in pts for n in p["maps"]}, key=lambda n: min(
        i for i, p in enumerate(pts) if n in p["maps"]))
    for n in names:
        top.plot(
            x,
            [p["maps"][n] / mib if n in p["maps"] else float("nan") for p in pts],
            linewidth=1,
            linestyle=":",
            label=f"Rss of {n}",
        )
    if all(p["usage"] is not None for p in pts):
        top.plot(x, [p["usage"] / mib for p in pts], marker="^", label="memcg usage")
    else:
        top.plot(
            x,
            [(p.get("rss", 0) + p.get("cache", 0)) / mib for p in pts],
            marker="^",
            label="memcg rss + cache (the model has no usage)",
        )
    limits = [p.get("limit") for p in pts]
    if any(v is not None for v in limits):
        top.step(
            x,
            [v / mib if v is not None else float("nan") for v in limits],
            where="post",
            linestyle="--",
            color="grey",
            label="memcg limit",
        )
    top.set_ylabel("MiB")
    top.legend(loc="upper left", fontsize=7)
    top.set_title(f"{title} ({backend})")
    for key in LRU_KEYS:
        bottom.plot(x, [p.get(key, 0) / mib for p in pts], marker=".", label=key)
    bottom.set_ylabel("MiB on the memcg's LRU lists")
    bottom.legend(loc="upper left", fontsize=7)
    bottom.set_xticks(x)
    bottom.set_xticklabels([f"{p['line']}: {p['text'][:28]}" for p in pts], rotation=60, ha="right", fontsize=7)
    bottom.set_xlabel("after scenario line")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run the probed scenario on one backend and write the plot."""
    scenario = read_scenario(args.file)
    run = probed(scenario)
    if args.backend == "kernel":
        backend: Any = kernel_backend()
        label = "kernel"
    else:
        profile, _ = choose_profile(args.profile, False, "foliosim plot")
        backend = model_backend(profile)
        label = f"model {profile}"
    obs = backend.run(run)
    pts = points(obs, scenario)
    draw(pts, args.output, args.title or scenario.name, label)
    print(f"foliosim plot: {len(pts)} points ({label}) -> {args.output}")
    failed = [
        e
        for e in obs["events"]
        if e["op"] == "expect" and not e["ok"] and e["text"] != "expect memcg usage 0"
    ]
    return 1 if failed else 0
