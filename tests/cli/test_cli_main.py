"""foliosim main: dispatch, exit statuses, and one-line errors instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import foliosim.cli.run as run_cmd
from foliosim.cli import main as cli_main
from foliosim.kernel.backend import KernelBackend
from foliosim.model import rmap


def test_no_subcommand_prints_help_and_exits_2(cli):
    code, _out, err = cli()
    assert code == 2
    assert "run" in err and "diff" in err and "explain" in err


def test_help_lists_every_subcommand_and_exits_0(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for name in cli_main.SUBCOMMANDS:
        assert f"    {name} " in out


@pytest.mark.parametrize("name", list(cli_main.SUBCOMMANDS))
def test_each_subcommand_help_states_the_exit_statuses(cli, name):
    code, out, _ = cli(name, "--help")
    assert code == 0
    table = out[out.index("exit status:") :]
    assert [line.split()[0] for line in table.splitlines()[1:] if line[2:3].isdigit()] == [
        "0",
        "1",
        "2",
        "3",
        "130",
    ]
    assert "input refused" in table and "internal error" in table


def test_bad_option_is_one_line_and_exit_2(cli, scn):
    code, _out, err = cli("run", scn("a.scn", "mmap A 4\n"), "--backend", "nowhere")
    assert code == 2
    assert err.count("\n") == 1
    assert "invalid choice: 'nowhere'" in err and "Traceback" not in err


def test_a_broken_installation_is_one_line_internal_error_exit_3(cli, monkeypatch):
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "fuzz", ("foliosim.cli._not_installed", "search"))
    monkeypatch.delenv("FOLIOSIM_DEBUG", raising=False)
    code, _out, err = cli("fuzz", "--anything")
    assert code == 3
    assert err == (
        "foliosim: internal error: ModuleNotFoundError: No module named "
        "'foliosim.cli._not_installed' (rerun with FOLIOSIM_DEBUG=1 for the traceback)\n"
    )


def test_unexpected_exception_is_one_line_internal_error_exit_3(cli, scn, monkeypatch):
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


def test_foliosim_debug_shows_the_traceback(cli, scn, monkeypatch):
    def boom(args):
        raise RuntimeError("sideways")

    monkeypatch.setattr(run_cmd, "main", boom)
    monkeypatch.setenv("FOLIOSIM_DEBUG", "1")
    code, _, err = cli("run", scn("a.scn", "mmap A 4\n"))
    assert code == 3 and "Traceback" in err and "sideways" in err


def test_keyboard_interrupt_exits_130_quietly(cli, scn, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_cmd, "main", interrupted)
    code, _out, err = cli("run", scn("a.scn", "mmap A 4\n"))
    assert (code, err) == (130, "")


def test_kernel_backend_refusal_mid_run_is_one_line_exit_2(cli, scn, monkeypatch):
    # The kernel backend refuses a scenario in run(), before it changes anything.
    monkeypatch.setattr(KernelBackend, "unavailable_reason", staticmethod(lambda: None))
    monkeypatch.setattr(
        KernelBackend, "refusal", lambda self, scenario: "zram0 is busy: another swap device"
    )
    code, _out, err = cli("run", "--backend", "kernel", scn("a.scn", "mmap A 4\n"))
    assert (code, err) == (2, "zram0 is busy: another swap device\n")


def test_unavailable_kernel_backend_is_refused_before_anything_runs(cli, scn, monkeypatch):
    monkeypatch.setattr(
        KernelBackend, "unavailable_reason", staticmethod(lambda: "not root (uid 1000)")
    )
    code, out, err = cli("run", "--backend", "both", scn("a.scn", "mmap A 4\nobserve\n"))
    assert code == 2
    assert out == ""  # not even the model ran
    assert err == "foliosim: the kernel backend cannot run here: not root (uid 1000)\n"


def test_model_invariant_error_is_reported_at_its_line_and_exits_3(cli, scn, monkeypatch):
    # A model that ignored PG_dirty would discard page 0, written again after MADV_FREE.
    monkeypatch.setattr(rmap, "folio_test_dirty", lambda m, folio: False)
    path = scn(
        "a.scn",
        "swap 1M\nmmap A 8\nwrite A all\nmadvise A all free\nwrite A 0\nmadvise A all pageout\n",
    )
    code, out, err = cli("run", "--check", path)
    assert (code, out) == (3, "")
    assert err.startswith("foliosim: model invariant broken (a model bug):\n")
    assert f"{path.name}:6: after 'madvise A all pageout'" in err
    assert "validate_no_data_loss: p0 A page 0" in err
    assert "Traceback" not in err
    # Without --check the same model runs to the end, data silently lost.
    code, out, err = cli("run", path)
    assert (code, err) == (0, "")


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
