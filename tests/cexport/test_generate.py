"""foliosim export-c: what the generated C file is, without running it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from foliosim.cexport.backend import GeneratorBug, compile_c, compiler
from foliosim.cexport.generate import export_c
from foliosim.cli.main import main
from foliosim.scenario.parser import parse_file, parse_text

LIBRARY = sorted((Path(__file__).parents[2] / "scenarios").glob("*.scn"))
needs_cc = pytest.mark.skipif(compiler() is None, reason="no C compiler")

FORK = """mmap A 16K
write A all as parent
fork p1
p1: write A 0 as child
madvise A 0-1,3 pageout
p1: exit
observe after
"""


@needs_cc
@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_every_library_scenario_exports_and_compiles_warning_free(path: Path) -> None:
    # compile_c builds with -O2 -Wall -Wextra -Werror and raises GeneratorBug otherwise.
    assert compile_c(export_c(parse_file(path), path.read_text()), path.name).exists()


@needs_cc
def test_the_assert_modes_compile_warning_free_too() -> None:
    sc = parse_text(FORK + "expect A 2 present\nexpect vmstat pswpout 0\n", "f.scn")
    from foliosim.model.backend import ModelBackend

    compile_c(export_c(sc, None, "scenario"), "f-scenario")
    compile_c(export_c(sc, None, "model", ModelBackend().run(sc)), "f-model")


@needs_cc
def test_a_static_build_works(tmp_path: Path) -> None:
    sc = parse_text(FORK, "f.scn")
    assert compile_c(export_c(sc), "f-static", extra=("-static",)).exists()


def test_each_line_is_a_comment_above_the_code_of_the_process_that_runs_it() -> None:
    text = export_c(parse_text(FORK, "f.scn"), FORK)
    p1 = text[text.index("static void fs_proc_P_p1(void)\n{") :]
    p1 = p1[: p1.index("\n}\n")]
    # p1's own lines, in order, each followed by its turn and its syscall.
    assert re.search(
        r"/\* 4: p1: write A 0 as child \*/\n\tfs_turn\(4\);\n\tr = fs_write\(M_A, 0, 0, L_0\);",
        p1,
    )
    assert "/* 6: p1: exit */\n\tfs_turn(6);\n\tfs_exit(6);" in p1
    assert "madvise" not in p1  # p0's line, not p1's
    p0 = text[text.index("static void fs_proc_P_p0(void)\n{") :]
    # A non-contiguous range is one syscall per run; the first failure stops the line.
    assert (
        "r = fs_madvise(M_A, 0, 1, MADV_PAGEOUT);\n\tif (!r)\n\t\tr = fs_madvise(M_A, 3, 3, "
        "MADV_PAGEOUT);" in p0
    )
    assert "fs_fork(3, P_p1, fs_proc_P_p1);" in p0


def test_the_program_has_no_command_loop_of_its_own() -> None:
    text = export_c(parse_text(FORK, "f.scn"))
    # Straight-line: no request switch like the worker's; the worker's source is not in it.
    assert "switch (q.op)" not in text and "OP_MADVISE" not in text
    assert "recv_req" not in text


def test_mapping_slots_are_the_contracts_2m_slots_with_a_2m_gap() -> None:
    # B: 3M + 5 pages need two slots (4M), then the 2M gap.
    sc = parse_text("mmap A 4\nmmap B 3M offset 5\nmmap C 4\n", "s.scn")
    text = export_c(sc)
    addrs = [int(a, 16) for a in re.findall(r'\{ "\\"[ABC]\\"", (0x[0-9a-f]+),', text)]
    assert addrs == [0x200000000000, 0x200000400000 + 5 * 4096, 0x200000A00000]


def test_a_scenario_it_cannot_place_is_refused_with_file_line_col(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "big.scn"
    f.write_text("".join(f"mmap M{i} 64G\n" for i in range(2100)))
    assert main(["export-c", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{f}:1520:12: export-c: mapping 'M1519' does not fit")
    assert err.count("\n") == 1


def test_bad_scenario_text_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, out = tmp_path / "bad.scn", tmp_path / "bad.c"
    f.write_text("mmap A 4\nwrite B 0\n")
    assert main(["export-c", str(f), "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"{f}:2:7: unknown mapping 'B'")
    assert not out.exists()


def test_export_c_writes_the_file_it_is_given(tmp_path: Path) -> None:
    f, out = tmp_path / "f.scn", tmp_path / "f.c"
    f.write_text(FORK)
    assert main(["export-c", str(f), "-o", str(out), "--assert", "scenario"]) == 0
    text = out.read_text()
    assert text.startswith("/* f.scn: exported by `foliosim export-c --assert scenario`.")
    assert " *   p1: write A 0 as child" in text  # the scenario, quoted in the head


@needs_cc
def test_a_compile_failure_is_a_generator_bug_with_the_first_error() -> None:
    with pytest.raises(GeneratorBug) as e:
        compile_c("int main(void) { return undeclared; }\n", "broken")
    msg = str(e.value)
    assert msg.startswith("export-c: generator bug: the C file of broken does not compile:")
    assert "undeclared" in msg and "\n" not in msg
