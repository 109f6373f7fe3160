"""Fixtures of the CLI tests: a runner of `foliosim ARGS...` in-process, and scenario files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from foliosim.cli.main import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `foliosim ARGS...`; returns (exit status, stdout, stderr)."""

    def run(*argv: object) -> tuple[int, str, str]:
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
