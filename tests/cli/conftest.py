"""Fixtures of the CLI tests: fakes for the parser and backends, and a CLI runner."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import cli_fakes

from foliosim.cli.main import main


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake parser, model and kernel stand in for the real ones."""
    for name, module in cli_fakes.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cli_fakes.FakeKernel, "reason", None)


def _real(module: str, attr: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{module} is not there yet ({e})")
    if not hasattr(mod, attr):
        pytest.skip(f"{module} has no {attr} yet")


@pytest.fixture
def real_parser() -> None:
    """Skip unless the real scenario parser exists."""
    _real("foliosim.scenario.parser", "parse_text")


@pytest.fixture
def real_model() -> None:
    """Skip unless the real parser and model backend exist."""
    _real("foliosim.scenario.parser", "parse_text")
    _real("foliosim.model.backend", "ModelBackend")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `foliosim ARGS...`; returns (exit status, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def scn(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a scenario file; returns its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
