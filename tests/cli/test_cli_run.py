"""foliosim run on the real parser and model: reports, exit statuses, --json, --trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from foliosim import observation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# MADV_FREE of 34 pages: lru_lazyfree() drains one full per-CPU batch of 31
# (PAGEVEC_SIZE), so pages 0-30 are lazyfree and 31-33 still wait in the batch.
LAZYFREE = """\
mmap A 40
write A all as old
madvise A 0-33 free
read A 0-3
observe after free
expect A 0-3 present
expect A 0-3 data old
"""


def check_contract_keys(obs: dict) -> None:
    """The key sets of contract v1 (exact where the contract says 'exactly')."""
    assert set(obs) == {"format", "scenario", "backend", "events", "final"}
    assert obs["format"] == observation.FORMAT
    assert obs["backend"]["name"] in ("model", "kernel")
    states = [obs["final"]] + [e["state"] for e in obs["events"] if e["op"] == "observe"]
    for ev in obs["events"]:
        assert {"line", "proc", "op"} <= set(ev)
        if "error" in ev:
            assert set(ev) == {"line", "proc", "op", "map", "error"}
        elif ev["op"] == "read":
            assert set(ev) == {"line", "proc", "op", "map", "data"}
        elif ev["op"] == "observe":
            assert set(ev) == {"line", "proc", "op", "label", "state"}
        elif ev["op"] == "expect":
            assert set(ev) == {"line", "proc", "op", "text", "ok", "got"}
    for state in states:
        assert set(state) == {"vmstat", "mthp", "procs"}
        assert set(state["vmstat"]) == set(observation.VMSTAT_KEYS)
        assert set(state["mthp"]) == set(observation.MTHP_SIZE_NAMES)
        for stats in state["mthp"].values():
            # The kernel reports every stats file this machine has (some kernels add
            # files such as anon_fault_declined); the model those it computes.
            if obs["backend"]["name"] == "kernel":
                assert not any(k.startswith("shmem_") for k in stats)
            else:
                assert set(stats) <= set(observation.MTHP_STAT_KEYS)
        for proc in state["procs"].values():
            assert set(proc) == {"maps", *observation.PROC_FAULT_KEYS}
            assert all(isinstance(proc[k], int) and proc[k] >= 0 for k in observation.PROC_FAULT_KEYS)
            for mapping in proc["maps"].values():
                assert set(mapping) == {"smaps", "pages", "vmas"}
                assert set(mapping["smaps"]) == set(observation.SMAPS_KEYS)
                for vma in mapping["vmas"]:
                    assert set(vma) == set(observation.VMA_KEYS)
                    assert 0 <= vma["first"] <= vma["last"] < len(mapping["pages"])
                for page in mapping["pages"]:
                    assert page["state"] in ("present", "swap", "none")
                    allowed = {"state", "exclusive", "soft_dirty"}
                    if page["state"] == "present":
                        allowed |= {"flags", "mapcount", "order"}
                    assert {"state"} <= set(page) <= allowed


def test_passing_scenario_reports_pass_and_exits_0(cli, scn):
    code, out, err = cli("run", scn("lazy.scn", LAZYFREE))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "foliosim run: model (profile linux-6.18)  scenario lazy.scn"
    assert "line 4   p0 read A: 0-3 old" in lines
    assert "  PASS line 6   expect A 0-3 present" in lines
    assert lines[-1] == "2 expectations: 2 passed, 0 failed"


def test_failed_expect_shows_what_it_got_and_exits_1(cli, scn):
    path = scn(
        "f.scn", "mmap A 8\nwrite A 2-3 as x\nexpect A 1-4 present\nexpect vmstat pglazyfree 3\n"
    )
    code, out, _ = cli("run", path)
    assert code == 1
    assert "  FAIL line 3   expect A 1-4 present" in out
    assert "       got: 1 none, 2-3 present, 4 none" in out
    assert "       got: 0" in out
    assert out.splitlines()[-1] == "2 expectations: 0 passed, 2 failed"


def test_report_dumps_state_like_proc_with_collapsed_ranges(cli, scn):
    _code, out, _ = cli("run", scn("lazy.scn", LAZYFREE))
    lines = out.splitlines()
    # The observe after MADV_FREE of pages 0-33 of 40: one batch of 31 lazyfree.
    i = lines.index("line 5   p0 observe after free")
    assert lines[i + 1].startswith("  p0 A  160 kB  Rss: 160 kB  LazyFree: 124 kB  Swap: 0 kB")
    assert lines[i + 2] == "     " + "f" * 31 + "P" * 9
    assert lines[i + 3].split() == [
        "0-30",
        "present",
        "order=0",
        "mapcount=1",
        "anon,anon_exclusive,mmap,uptodate",
        "exclusive",
    ]
    assert lines[i + 4].split()[:2] == ["31-39", "present"]
    assert "swapbacked" in lines[i + 4]
    assert "  vmstat: pglazyfree 31" in lines
    assert lines[1] == "legend: f lazyfree (anon, not swapbacked)  P present"


def test_report_has_no_colour_codes_when_stdout_is_not_a_terminal(cli, scn):
    _, out, _ = cli("run", scn("lazy.scn", LAZYFREE))
    assert "\x1b[" not in out


def test_all_files_are_parsed_before_any_runs(cli, scn):
    good = scn("good.scn", LAZYFREE)
    bad = scn("bad.scn", "mmap A 4\nwrite B 0\n")
    worse = scn("worse.scn", "frobnicate\n")
    code, out, err = cli("run", good, bad, worse)
    assert code == 2
    assert out == ""
    first, second = err.splitlines()
    assert first == f"{bad}:2:7: unknown mapping 'B' (mappings of p0 so far: A)"
    assert second.startswith(f"{worse}:1:1: unknown command 'frobnicate' (commands: mthp, ")


def test_json_to_stdout_is_the_contract_object_and_report_moves_to_stderr(cli, scn):
    code, out, err = cli("run", scn("lazy.scn", LAZYFREE), "--json", "-")
    assert code == 0
    obs = json.loads(out)
    check_contract_keys(obs)
    assert out == observation.dumps(obs)
    assert "PASS" in err
    assert obs["final"]["vmstat"]["pglazyfree"] == 31


def test_json_with_several_files_fills_a_directory(cli, scn, tmp_path):
    a = scn("one.scn", LAZYFREE)
    b = scn("two.scn", "mmap A 2\nwrite A 0\n")
    out_dir = tmp_path / "obs"
    code, _, _ = cli("run", a, b, "--json", out_dir)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["one.json", "two.json"]
    two = json.loads((out_dir / "two.json").read_text())
    check_contract_keys(two)
    assert [p["state"] for p in two["final"]["procs"]["p0"]["maps"]["A"]["pages"]] == [
        "present",
        "none",
    ]


def test_json_dash_with_two_backends_is_refused_up_front(cli, scn):
    code, out, err = cli("run", "--backend", "both", "--json", "-", scn("a.scn", LAZYFREE))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "--json -" in err


def test_trace_prints_backend_steps_before_the_report(cli, scn):
    _code, out, _ = cli("run", "--trace", scn("lazy.scn", LAZYFREE))
    lines = out.splitlines()
    assert lines[0] == "   1 do_mmap: p0 A: 40 pages at 0x7f00000000"
    # Per scenario line, each function's steps come together, page runs folded.
    assert lines[1] == "   2 do_anonymous_page: write fault: new order-0 folio p0 A 0-39"
    assert "   3 lru_lazyfree: folio p0 A 0-30 now lazyfree (swapbacked cleared)" in lines
    assert lines.index(
        "   3 madvise_free_pte_range: folio p0 A 0-33: PTE cleaned, queued for lazyfree"
    ) < lines.index("foliosim run: model (profile linux-6.18)  scenario lazy.scn")


def test_check_with_kernel_backend_alone_is_refused(cli, scn):
    code, _, err = cli("run", "--backend", "kernel", "--check", scn("a.scn", LAZYFREE))
    assert code == 2 and "--check" in err and err.count("\n") == 1


def test_unknown_profile_is_refused_in_one_line(cli, scn):
    code, _, err = cli("run", "--profile", "linux-2.4", scn("a.scn", LAZYFREE))
    assert code == 2
    assert err == (
        "foliosim: --profile linux-2.4: unknown profile 'linux-2.4' "
        "(known: linux-6.18, linux-6.18.44-fc, linux-6.12, linux-6.1)\n"
    )


def test_mapping_of_65536_pages_renders_as_groups(cli, scn):
    path = scn("big.scn", "mmap A 65536\nwrite A 0-32767\nmadvise A 0-1023 free\nobserve\n")
    code, out, _ = cli("run", path)
    assert code == 0
    strip = next(line for line in out.splitlines() if "(1 char = 1024 pages)" in line)
    # Page 1023 is still in the per-CPU batch: its group of 1024 pages is mixed.
    assert strip.split()[0] == "*" + "P" * 31 + "." * 32
    assert "p0 A  256 MB  Rss: 128 MB  LazyFree: 3.996 MB  Swap: 0 kB" in out
    assert "0-1022" in out and "32768-65535 none" in " ".join(out.split())


def test_raw_keeps_sizes_in_kb(cli, scn):
    path = scn("big.scn", "mmap A 1024\nwrite A all\n")
    _, out, _ = cli("run", "--raw", path)
    assert "p0 A  4096 kB  Rss: 4096 kB" in out


def test_unreadable_scenario_is_one_line(cli, tmp_path):
    code, _, err = cli("run", tmp_path)
    assert (code, err) == (2, f"{tmp_path}: is a directory, not a file\n")
    binary = tmp_path / "b.scn"
    binary.write_bytes(b"mmap A 4\n\xff\xfe\n")
    code, _, err = cli("run", binary)
    assert (code, err) == (2, f"{binary}: not a text file (byte 9 is not UTF-8)\n")


# -- on the live kernel ------------------------------------------------------------------


# One full batch: nothing is left waiting in a per-CPU batch, which another
# process's lru_add_drain_all() could drain on the live kernel at any moment.
ONE_BATCH = "mmap A 40\nwrite A all as old\nmadvise A 0-30 free\nobserve after free\n"


@pytest.mark.kernel
def test_both_backends_agree_on_the_lazyfree_batch_and_exit_0(cli, scn, tmp_path):
    code, out, _ = cli(
        "run", "--backend", "both", scn("lazy.scn", ONE_BATCH), "--json", tmp_path / "o"
    )
    assert code == 0, out
    assert out.splitlines()[-1] == "model and kernel agree (lazy.scn)"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "lazy.kernel.json",
        "lazy.model.json",
    ]


@pytest.mark.kernel
def test_both_backends_report_differences_and_exit_1(cli, tmp_path):
    # The model with faeb2831b517 reverted sets PG_swapbacked on a lazyfree page
    # held by an extra reference; Linux 6.18 does not.
    code, out, _ = cli(
        "run",
        "--backend",
        "both",
        "--profile",
        "linux-6.18-revert-faeb2831b517",
        SCENARIOS / "lazyfree-gup-release.scn",
        "--json",
        tmp_path / "o",
    )
    assert code == 1
    assert "difference" in out and "model vs kernel (lazyfree-gup-release.scn)" in out
    flags = [line for line in out.splitlines() if "p0 A page 0-1 flags: model said" in line]
    assert flags and all("swapbacked" in line.split("kernel said")[0] for line in flags)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "lazyfree-gup-release.kernel.json",
        "lazyfree-gup-release.model.json",
    ]


@pytest.mark.kernel
def test_trace_with_both_backends_names_whose_step_it_is(cli, scn):
    _, out, _ = cli("run", "--backend", "both", "--trace", scn("lazy.scn", LAZYFREE))
    lines = out.splitlines()
    assert "model    1 do_mmap: p0 A: 40 pages at 0x7f00000000" in lines
    assert any(line.startswith("kernel    1 mmap: mmap(") for line in lines)


@pytest.mark.kernel
def test_both_backends_run_the_model_profile_of_the_running_kernel(cli, scn):
    from foliosim.model.profile import profile_for_kernel

    code, out, _ = cli("run", "--backend", "both", scn("lazy.scn", ONE_BATCH))
    name = profile_for_kernel().name
    lines = out.splitlines()
    assert (
        lines[0] == f"foliosim run: model profile {name}, the build of kernel {os.uname().release}"
    )
    assert f"foliosim run: model (profile {name})  scenario lazy.scn" in lines
    assert code == 0, out


def test_a_kernel_no_profile_describes_is_refused_in_one_line(cli, scn, monkeypatch):
    from foliosim.cli import common
    from foliosim.kernel.backend import KernelBackend
    from foliosim.model.profile import NoProfileError

    def none(*_a):
        raise NoProfileError("no model profile describes kernel 6.19.1 (known builds: x)")

    monkeypatch.setattr(KernelBackend, "unavailable_reason", staticmethod(lambda: None))
    monkeypatch.setattr(common, "profile_for_kernel", none)
    code, out, err = cli("run", "--backend", "both", scn("a.scn", LAZYFREE))
    assert (code, out) == (2, "")
    assert err == "foliosim run: no model profile describes kernel 6.19.1 (known builds: x)\n"
    # The model alone runs its default profile, whatever the kernel.
    code, _, _ = cli("run", scn("b.scn", LAZYFREE))
    assert code == 0
