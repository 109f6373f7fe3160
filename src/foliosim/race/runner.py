"""Run herd7 on a litmus test under a named memory model and parse what it prints.

herd7's output (herdtools7 7.58) for one test:

    Test NAME Allowed
    States 3
    0:r2=0; 1:r2=2;
    ...
    No
    Witnesses
    Positive: 0 Negative: 3
    Condition exists (1:r2=0 /\\ 0:r2=0)
    Observation NAME Never 0 3
    Time NAME 0.01

    Candidates NAME 70

`Positive + Negative` is the number of executions the model allows;
`Candidates` (printed with -candidates true) the candidate executions herd7
built and checked against the model, its exploration size; Observation is
Never / Sometimes / Always.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from foliosim.race.herd import Herd, HerdUnavailable

MODELS = ("sc", "lkmm", "x86-tso", "armv8")

# The litmus dialect each herd7 model reads.
DIALECT = {"sc": "C", "lkmm": "C", "x86-tso": "X86", "armv8": "AArch64"}


class HerdError(Exception):
    """herd7 refused a test or printed something this parser does not know."""


@dataclass
class HerdResult:
    """One herd7 verdict: the reachable final states and whether the condition holds in any."""

    name: str
    states: list[dict[str, str]]
    positive: int
    negative: int
    observation: str  # Never | Sometimes | Always
    condition: str
    herd_seconds: float | None  # herd7's own Time line
    wall_seconds: float
    candidates: int | None = None  # candidate executions herd7 checked
    dot: Path | None = None
    output: str = field(default="", repr=False)

    @property
    def executions(self) -> int:
        """Candidate executions the model allows (herd7's Positive + Negative)."""
        return self.positive + self.negative


def model_args(herd: Herd, model: str) -> list[str]:
    """herd7's command-line options for `model` (one of MODELS)."""
    lib = ["-I", str(herd.libdir)] if herd.libdir else []
    if model in ("lkmm", "sc") and herd.lkmm is None:
        raise HerdUnavailable(
            "the LKMM files (linux-kernel.cfg, ...) are not found; set FOLIOSIM_LKMM"
        )
    if model == "lkmm":
        assert herd.lkmm is not None
        return [*lib, "-I", str(herd.lkmm), "-conf", str(herd.lkmm / "linux-kernel.cfg")]
    if model == "sc":
        # herd7's sc.cat (po | rf | co | fr acyclic, RMWs atomic) over the same C
        # macros (xchg_relaxed, atomic_add_unless, ...) the LKMM defines.
        assert herd.lkmm is not None
        return [
            *lib,
            "-I",
            str(herd.lkmm),
            "-macros",
            "linux-kernel.def",
            "-bell",
            "linux-kernel.bell",
            "-model",
            "sc.cat",
        ]
    if model == "x86-tso":
        return [*lib, "-model", "x86tso.cat"]
    if model == "armv8":
        return [*lib, "-model", "aarch64.cat"]
    raise ValueError(f"unknown model {model!r} (known: {', '.join(MODELS)})")


_STATE = re.compile(r"\s*([^=;\s]+)=([^;]*);")
_OBS = re.compile(r"^Observation (\S+) (Never|Sometimes|Always) (\d+) (\d+)")


def parse_output(text: str) -> HerdResult:
    """The HerdResult of one test's herd7 output; HerdError if it is not one."""
    lines = text.splitlines()
    name, states, pos, neg, obs, cond, secs = None, [], None, None, None, "", None
    cands: int | None = None
    it = iter(range(len(lines)))
    for k in it:
        line = lines[k]
        if line.startswith("Test "):
            name = line.split()[1]
        elif line.startswith("States "):
            n = int(line.split()[1])
            for j in range(k + 1, k + 1 + n):
                states.append(dict(_STATE.findall(lines[j])))
                next(it, None)
        elif line.startswith("Positive: "):
            m = re.match(r"Positive: (\d+) Negative: (\d+)", line)
            if m:
                pos, neg = int(m.group(1)), int(m.group(2))
        elif line.startswith("Condition "):
            cond = line[len("Condition ") :]
        elif (m := _OBS.match(line)) is not None:
            obs = m.group(2)
        elif line.startswith("Candidates "):
            try:
                cands = int(line.split()[2])
            except (IndexError, ValueError):
                cands = None
        elif line.startswith("Time "):
            try:
                secs = float(line.split()[2])
            except (IndexError, ValueError):
                secs = None
    if name is None or obs is None or pos is None or neg is None:
        raise HerdError(f"herd7 printed no verdict: {text.strip()[-300:] or '(nothing)'}")
    return HerdResult(name, states, pos, neg, obs, cond, secs, 0.0, cands, output=text)


_MEMO: dict[tuple[str, str, str], HerdResult] = {}


def run_herd(
    herd: Herd, model: str, litmus: str | Path, dot_dir: Path | None = None, timeout: float = 600
) -> HerdResult:
    """herd7's verdict on one litmus test (a file, or the text of one) under `model`.

    dot_dir: also write herd7's graph of the executions that satisfy the
    condition (`-show prop`) there, as NAME.dot.  Without it, the verdict on
    a text already judged in this process is reused (herd7 is deterministic).
    """
    key = (str(herd.binary), model, litmus if isinstance(litmus, str) else "")
    if dot_dir is None and key[2] and key in _MEMO:
        return _MEMO[key]
    with tempfile.TemporaryDirectory(prefix="foliosim-herd-") as tmp:
        if isinstance(litmus, Path):
            path = litmus
        else:
            name = re.search(r"^\S+\s+(\S+)", litmus)
            path = Path(tmp) / f"{name.group(1) if name else 'test'}.litmus"
            path.write_text(litmus)
        cmd = [str(herd.binary), *model_args(herd, model), "-candidates", "true"]
        if dot_dir is not None:
            dot_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["-show", "prop", "-o", str(dot_dir)]
            if model != "lkmm":  # the LKMM cfg already sets its graph style
                cmd += ["-graph", "columns", "-showinitwrites", "false", "-squished", "true"]
        cmd.append(str(path))
        start = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HerdError(f"herd7 took longer than {timeout:.0f} s on {path.name}") from None
        wall = time.perf_counter() - start
        if out.returncode != 0 or "Observation" not in out.stdout:
            msg = (out.stderr.strip() or out.stdout.strip()).splitlines()
            raise HerdError(f"herd7 refused {path.name}: {' | '.join(msg[-3:]) or 'no output'}")
        result = parse_output(out.stdout)
        result.wall_seconds = wall
        if dot_dir is not None:
            dot = dot_dir / f"{path.stem}.dot"
            result.dot = dot if dot.is_file() else None
        elif key[2]:
            _MEMO[key] = result
        return result


def expected_observation(expected_file: Path) -> str:
    """The Observation verdict (Never/Sometimes/Always) recorded in a .litmus.expected file."""
    for line in expected_file.read_text().splitlines():
        m = _OBS.match(line)
        if m:
            return m.group(2)
    raise HerdError(f"{expected_file}: no Observation line")
