"""foliosim main: dispatch, exit statuses, and one-line errors instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import foliosim.cli.run as run_cmd
from foliosim.cli import main as cli_main
from foliosim.kernel.errors import KernelBackendError


def test_no_subcommand_prints_help_and_exits_2(cli):
    code, _out, err = cli()
    assert code == 2
    assert "run" in err and "diff" in err and "explain" in err


def test_help_lists_every_subcommand_and_exits_0(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for name in ("run", "diff", "fuzz", "explain"):
        assert name in out


def test_bad_option_is_one_line_and_exit_2(cli, fakes, scn):
    code, _out, err = cli("run", scn("a.scn", "mmap A 4\n"), "--backend", "nowhere")
    assert code == 2
    assert err.count("\n") == 1
    assert "invalid choice: 'nowhere'" in err and "Traceback" not in err


def test_missing_subcommand_module_is_one_line_not_a_crash(cli, monkeypatch):
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "fuzz", ("foliosim.cli._not_written_yet", "search"))
    code, _out, err = cli("fuzz", "--anything")
    assert code == 2
    assert err == (
        "foliosim fuzz: not available in this installation "
        "(foliosim.cli._not_written_yet is missing)\n"
    )


def test_unexpected_exception_is_one_line_internal_error_exit_3(cli, fakes, scn, monkeypatch):
    def boom(args):
        raise RuntimeError("state went\nsideways")

    monkeypatch.setattr(run_cmd, "main", boom)
    monkeypatch.delenv("FOLIOSIM_DEBUG", raising=False)
    code, _out, err = cli("run", scn("a.scn", "mmap A 4\n"))
    assert code == 3
    assert err == (
        "foliosim: internal error: RuntimeError: state went; sideways "
        "(rerun with FOLIOSIM_DEBUG=1 for the traceback)\n"
    )


def test_foliosim_debug_shows_the_traceback(cli, fakes, scn, monkeypatch):
    def boom(args):
        raise RuntimeError("sideways")

    monkeypatch.setattr(run_cmd, "main", boom)
    monkeypatch.setenv("FOLIOSIM_DEBUG", "1")
    code, _, err = cli("run", scn("a.scn", "mmap A 4\n"))
    assert code == 3 and "Traceback" in err and "sideways" in err


def test_keyboard_interrupt_exits_130_quietly(cli, fakes, scn, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_cmd, "main", interrupted)
    code, _out, err = cli("run", scn("a.scn", "mmap A 4\n"))
    assert (code, err) == (130, "")


def test_kernel_backend_refusal_mid_run_is_one_line_exit_2(cli, fakes, scn, monkeypatch):
    import cli_fakes

    def refuse(self, scenario, trace=None):
        raise KernelBackendError("zram0 is busy: another swap device is active")

    monkeypatch.setattr(cli_fakes.FakeKernel, "run", refuse)
    code, _out, err = cli("run", "--backend", "kernel", scn("a.scn", "mmap A 4\n"))
    assert (code, err) == (2, "zram0 is busy: another swap device is active\n")


def test_unavailable_kernel_backend_is_refused_before_anything_runs(cli, fakes, scn, monkeypatch):
    import cli_fakes

    monkeypatch.setattr(cli_fakes.FakeKernel, "reason", "not root (uid 1000)")
    code, out, err = cli("run", "--backend", "both", scn("a.scn", "mmap A 4\nobserve\n"))
    assert code == 2
    assert out == ""  # not even the model ran
    assert err == "foliosim: the kernel backend cannot run here: not root (uid 1000)\n"


def test_model_invariant_error_prints_the_report_and_exits_3(cli, fakes, scn):
    path = scn("a.scn", "mmap A 4\nwrite A all\nmadvise A 0 pageout\n")
    code, _out, err = cli("run", "--check", path)
    assert code == 3
    assert "validate_folio_mapcount: folio #1" in err and "line 3" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "/nonexistent/x.scn"],
        ["diff", "/nonexistent/a.json", "/nonexistent/b.json"],
        ["explain", "/nonexistent/x.scn"],
    ],
)
def test_missing_file_in_a_real_process_is_one_line_exit_2(argv):
    proc = subprocess.run(
        [sys.executable, "-m", "foliosim.cli.main", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "/nonexistent/" in proc.stderr
