"""foliosim.scenario.printer: text that parses back to the same scenario."""

import dataclasses

import pytest

from foliosim.scenario import ast
from foliosim.scenario.parser import parse_text
from foliosim.scenario.printer import range_text, size_text, to_text


def without_positions(scenario):
    return [dataclasses.replace(c, line=0, text="") for c in scenario.commands]


SOURCE = """\
# every command once, in odd spellings
thp never
swap 16
swap 1G
swap off
mthp 1024K always
mthp 16K inherit
mmap A 64K
mmap D 2048K droppable offset 4K
mmap E 3 offset 7 droppable
write A all
write A 3,0-1 as old
poke A 2
madvise A 0-3 free
mlock A 1
munlock A 1
read A 15,0
fork p1
p1:gup A 0-1 as R
p1: release R
observe   two   words  # and a comment
observe
expect A 0 data old
expect A 2 data w13
expect A 1-3 swap
expect A smaps LazyFree 0
expect vmstat nr_anon_pages -12
pin A 0-1 as P readonly
expect P data old
p1:process_madvise p0 A 0-3 pageout
release P
p1: munmap A
p1: exit
munmap E
"""

PRINTED = """\
thp never
swap 64K
swap 1G
swap off
mthp 1M always
mthp 16K inherit
mmap A 64K
mmap D 2M droppable offset 1
mmap E 12K droppable offset 7
write A 0-15 as w11
write A 3,0-1 as old
poke A 2 as w13
madvise A 0-3 free
mlock A 1
munlock A 1
read A 15,0
fork p1
p1: gup A 0-1 as R
p1: release R
observe two   words
observe
expect A 0 data old
expect A 2 data w13
expect A 1-3 swap
expect A smaps LazyFree 0
expect vmstat nr_anon_pages -12
pin A 0-1 as P readonly
expect P data old
p1: process_madvise p0 A 0-3 pageout
release P
p1: munmap A
p1: exit
munmap E
"""


def test_every_command_prints_in_canonical_form():
    assert to_text(parse_text(SOURCE, "all.scn")) == PRINTED


def test_printed_text_parses_back_to_the_same_commands():
    s = parse_text(SOURCE, "all.scn")
    back = parse_text(to_text(s), "all.scn")
    assert without_positions(back) == without_positions(s)
    assert back.path == s.path
    assert [c.line for c in back.commands] == list(range(1, len(s.commands) + 1))


def test_default_labels_survive_reprinting_at_other_line_numbers():
    s = parse_text("\n\n\nmmap A 4\nwrite A 0\nexpect A 0 data w5\n", "x.scn")
    text = to_text(s)
    assert text == "mmap A 16K\nwrite A 0 as w5\nexpect A 0 data w5\n"
    assert parse_text(text, "x.scn").commands[1].label == "w5"


def test_empty_scenario_prints_as_empty_text():
    assert to_text(ast.Scenario(path="e.scn")) == ""


@pytest.mark.parametrize(
    "pages, text",
    [
        (1, "4K"),
        (3, "12K"),
        (256, "1M"),
        (257, "1028K"),
        (512, "2M"),
        (262144, "1G"),
        (262144 * 3 + 256, "3073M"),
    ],
)
def test_size_text_uses_the_largest_unit_that_divides(pages, text):
    assert size_text(pages) == text


def test_range_text_keeps_run_order_and_single_pages():
    assert range_text(((10, 11), (0, 3), (8, 8))) == "10-11,0-3,8"


@pytest.mark.parametrize(
    "cmd",
    [
        ast.Observe(line=3, proc="p0", text="", label="a # b"),
        ast.Observe(line=3, proc="p0", text="", label=" padded"),
        ast.Observe(line=3, proc="p0", text="", label="two\nlines"),
        ast.Read(line=3, proc="p0", text="", name="A B", runs=((0, 0),)),
        ast.Write(line=3, proc="p0", text="", name="A", runs=(), label="x"),
        ast.Fork(line=3, proc="p0", text="", child=""),
        ast.ExpectVmstat(line=3, proc="p0", text="", counter="Pswpout", value=1),
    ],
)
def test_what_no_scenario_text_can_say_is_refused(cmd):
    with pytest.raises(ValueError):
        to_text(ast.Scenario(path="x.scn", commands=(cmd,)))
