"""foliosim explain: the model functions each scenario line went through."""

from __future__ import annotations


def _section(out: str, line_head: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index(line_head) + 1
    end = next(
        (i for i in range(start, len(lines)) if not lines[i].startswith("     ")), len(lines)
    )
    return lines[start:end]


def test_explain_lists_the_kernel_functions_each_line_entered_by_call_depth(cli, scn):
    path = scn("e.scn", "mmap A 2\nwrite A all\nmadvise A 0 free\nmadvise A 0 pageout\n")
    code, out, err = cli("explain", path)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "foliosim explain: model (profile linux-6.18)  scenario e.scn"
    assert _section(out, "   1 mmap A 2") == ["       do_mmap"]
    write = _section(out, "   2 write A all")
    assert write[0] == "       do_user_addr_fault"  # arch/x86/mm/fault.c
    assert "         handle_mm_fault" in write  # called by do_user_addr_fault
    assert "           do_anonymous_page" in write  # called by handle_mm_fault
    assert "               folio_add_lru" in write
    free = _section(out, "   3 madvise A 0 free")
    assert "             madvise_free_pte_range" in free
    assert "               folio_mark_lazyfree" in free
    pageout = [s.strip() for s in _section(out, "   4 madvise A 0 pageout")]
    # The path of the seed review: reclaim reaches the lazyfree decision.
    order = ["shrink_folio_list", "try_to_unmap", "try_to_unmap_one", "lazyfree_range"]
    assert [pageout.index(f) for f in order] == sorted(pageout.index(f) for f in order)


def test_explain_messages_show_every_trace_step(cli, scn):
    path = scn("e.scn", "mmap A 2\nwrite A all\n")
    _code, out, _ = cli("explain", "--messages", path)
    assert "         do_anonymous_page: write fault: new order-0 folio p0 A 1" in out.splitlines()


def test_explain_exits_1_when_an_expectation_fails(cli, scn):
    code, _, _ = cli("explain", scn("e.scn", "mmap A 2\nexpect A 0 present\n"))
    assert code == 1
