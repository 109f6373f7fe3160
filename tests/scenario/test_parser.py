"""foliosim.scenario.parser: accepted input and every refusal, with message and column."""

import pytest

from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_file, parse_text


def parse(text):
    return parse_text(text, "t.scn").commands


def only(text):
    """The last command of `text` (earlier lines set the state up)."""
    return parse(text)[-1]


def refuse(text):
    with pytest.raises(ScenarioError) as info:
        parse_text(text, "t.scn")
    return info.value


# -- accepted input -----------------------------------------------------------------


def test_contract_example_parses_to_the_expected_commands():
    text = (
        "# lazyfree-redirty: a MADV_FREE page written again before reclaim keeps its data.\n"
        "thp never\n"
        "swap off\n"
        "mmap A 16K\n"
        "write A all as old\n"
        "madvise A all free\n"
        "write A 0 as new\n"
        "madvise A all pageout\n"
        "expect A 0 data new\n"
        "expect A 1-3 data zero\n"
    )
    assert parse(text) == (
        ast.Thp(line=2, proc="p0", text="thp never", mode="never"),
        ast.Swap(line=3, proc="p0", text="swap off", pages=None),
        ast.Mmap(line=4, proc="p0", text="mmap A 16K", name="A", pages=4),
        ast.Write(
            line=5, proc="p0", text="write A all as old", name="A", runs=((0, 3),), label="old"
        ),
        ast.Madvise(
            line=6, proc="p0", text="madvise A all free", name="A", runs=((0, 3),), advice="free"
        ),
        ast.Write(
            line=7, proc="p0", text="write A 0 as new", name="A", runs=((0, 0),), label="new"
        ),
        ast.Madvise(
            line=8,
            proc="p0",
            text="madvise A all pageout",
            name="A",
            runs=((0, 3),),
            advice="pageout",
        ),
        ast.ExpectData(
            line=9, proc="p0", text="expect A 0 data new", name="A", runs=((0, 0),), value="new"
        ),
        ast.ExpectData(
            line=10,
            proc="p0",
            text="expect A 1-3 data zero",
            name="A",
            runs=((1, 3),),
            value="zero",
        ),
    )


def test_scenario_keeps_its_path_and_name():
    s = parse_text("thp never\n", "dir/sub/x.scn")
    assert s.path == "dir/sub/x.scn"
    assert s.name == "x.scn"


def test_empty_text_and_comment_only_text_have_no_commands():
    assert parse("") == ()
    assert parse("\n\n   \t\n# nothing\n  # more\n") == ()


def test_comment_anywhere_ends_the_line_and_text_is_stripped_code():
    cmd = only("  mmap A 4   # a comment: write B 0\n")
    assert cmd == ast.Mmap(line=1, proc="p0", text="mmap A 4", name="A", pages=4)


def test_comment_right_after_a_word_needs_no_blank():
    assert only("mmap A 4#x").pages == 4


def test_tabs_separate_words():
    assert only("mmap\tA\t\t8K").pages == 2


def test_crlf_line_ends_and_a_leading_bom_are_accepted():
    cmds = parse("\ufeffmmap A 4\r\nwrite A 0\r\n")
    assert [c.line for c in cmds] == [1, 2]
    assert cmds[1].text == "write A 0"
    assert cmds[1].label == "w2"


@pytest.mark.parametrize(
    "word, pages",
    [
        ("1", 1),
        ("16", 16),
        ("4K", 1),
        ("16K", 4),
        ("1M", 256),
        ("2M", 512),
        ("1G", 262144),
        ("0016K", 4),
        ("12K", 3),
    ],
)
def test_sizes_are_pages_or_powers_of_1024(word, pages):
    assert only(f"mmap A {word}").pages == pages


@pytest.mark.parametrize(
    "rng, runs",
    [
        ("5", ((5, 5),)),
        ("0-15", ((0, 15),)),
        ("0-3,8,10-11", ((0, 3), (8, 8), (10, 11))),
        ("10-11,0-3,8", ((10, 11), (0, 3), (8, 8))),
        ("3-3", ((3, 3),)),
        ("all", ((0, 15),)),
        ("0-1,2-3", ((0, 1), (2, 3))),
        ("15", ((15, 15),)),
    ],
)
def test_ranges_resolve_to_inclusive_runs_in_written_order(rng, runs):
    assert only(f"mmap A 64K\nread A {rng}").runs == runs


def test_all_covers_the_mapping_size_at_that_line():
    cmds = parse("mmap A 4\nread A all\nmunmap A\nmmap A 2M\nread A all")
    assert cmds[1].runs == ((0, 3),)
    assert cmds[4].runs == ((0, 511),)


def test_write_and_poke_default_label_is_w_and_line_number():
    cmds = parse("mmap A 4\n\nwrite A 0\n# c\npoke A 1\nwrite A 2 as mine\npoke A 3 as x.y+z-1_")
    assert [c.label for c in cmds[1:]] == ["w3", "w5", "mine", "x.y+z-1_"]


def test_process_prefix_with_and_without_blank():
    cmds = parse("mmap A 4\nfork p1\np1: write A 0\np1:read A 1\n  p1:\tmunmap A\n")
    assert [c.proc for c in cmds] == ["p0", "p0", "p1", "p1", "p1"]
    assert isinstance(cmds[3], ast.Read)
    assert cmds[2].text == "p1: write A 0"


def test_explicit_p0_prefix_is_the_same_as_none():
    assert only("p0: mmap A 4") == ast.Mmap(
        line=1, proc="p0", text="p0: mmap A 4", name="A", pages=4
    )


def test_mthp_sizes_and_modes():
    cmds = parse("mthp 16K never\nmthp 1024K always\nmthp 1M inherit\nmthp 2M madvise")
    assert [(c.size_kb, c.mode) for c in cmds] == [
        (16, "never"),
        (1024, "always"),
        (1024, "inherit"),
        (2048, "madvise"),
    ]


@pytest.mark.parametrize("mode", ast.THP_MODES)
def test_thp_modes(mode):
    assert only(f"thp {mode}").mode == mode


def test_swap_size_and_off():
    cmds = parse("swap 64K\nswap 16\nswap 1G\nswap off")
    assert [c.pages for c in cmds] == [16, 16, 262144, None]


def test_mmap_options_in_either_order():
    a, b, c, d = parse(
        "mmap A 4 droppable\nmmap B 4 offset 3\nmmap C 4 offset 3 droppable\n"
        "mmap D 4 droppable offset 8K"
    )
    assert (a.droppable, a.offset) == (True, 0)
    assert (b.droppable, b.offset) == (False, 3)
    assert (c.droppable, c.offset) == (True, 3)
    assert (d.droppable, d.offset) == (True, 2)


def test_mmap_offset_up_to_511_pages_and_larger_than_2m_mappings():
    cmd = only("mmap A 3M offset 511")
    assert (cmd.pages, cmd.offset) == (768, 511)
    assert only("mmap A 4 offset 0").offset == 0


@pytest.mark.parametrize("advice", ast.ADVICES)
def test_every_advice(advice):
    assert only(f"mmap A 4\nmadvise A 1-2 {advice}").advice == advice


def test_mlock_munlock_read():
    cmds = parse("mmap A 4\nmlock A all\nmunlock A 0,2\nread A 3")
    assert [type(c) for c in cmds[1:]] == [ast.Mlock, ast.Munlock, ast.Read]
    assert cmds[2].runs == ((0, 0), (2, 2))


def test_fork_copies_the_parent_mappings_to_the_child():
    cmds = parse("mmap A 4\nmmap B 8\nfork c\nc: read B 7\nc: munmap A\nread A 3")
    assert cmds[3].runs == ((7, 7),)
    assert cmds[5].proc == "p0"


def test_mappings_made_after_fork_are_not_in_the_other_process():
    e = refuse("fork c\nmmap A 4\nc: read A 0")
    assert (e.line, e.col) == (3, 9)
    assert e.reason == (
        "unknown mapping 'A' (mappings of c so far: none); p0 has a mapping "
        "'A': prefix the line with 'p0: '"
    )


def test_a_process_name_can_be_reused_after_exit():
    cmds = parse("fork c\nc: exit\nfork c\nc: mmap A 4\n")
    assert cmds[-1].proc == "c"


def test_an_exited_child_does_not_take_the_parent_mappings_back():
    e = refuse("mmap A 4\nfork c\nc: munmap A\nc: exit\nfork c\nc: munmap A\nc: read A 0")
    assert (e.line, e.col) == (7, 9)
    assert e.reason == (
        "mapping 'A' of c was unmapped at line 6 (mappings of c now: none); "
        "p0 has a mapping 'A': prefix the line with 'p0: '"
    )


def test_p0_may_exit_and_children_go_on():
    cmds = parse("mmap A 4\nfork c\nexit\nc: write A 0\n")
    assert isinstance(cmds[2], ast.Exit)
    assert cmds[3].proc == "c"


def test_a_mapping_name_can_be_mapped_again_after_munmap():
    cmds = parse("mmap A 4\nmunmap A\nmmap A 8\nread A 7")
    assert cmds[2].pages == 8
    assert cmds[3].runs == ((7, 7),)


def test_gup_release_and_ref_name_reuse_across_processes():
    cmds = parse("mmap A 4\nfork c\nc: gup A 0-1 as R\nrelease R\ngup A all as R\n")
    assert cmds[2] == ast.Gup(
        line=3, proc="c", text="c: gup A 0-1 as R", name="A", runs=((0, 1),), ref="R"
    )
    assert cmds[3] == ast.Release(line=4, proc="p0", text="release R", ref="R")
    assert cmds[4].runs == ((0, 3),)


def test_a_ref_outlives_the_exit_of_its_process():
    assert isinstance(only("mmap A 4\nfork c\nc: gup A 0 as R\nc: exit\nrelease R"), ast.Release)


def test_observe_label_is_the_rest_of_the_line_with_inner_blanks_kept():
    cmds = parse("observe\nobserve   before  the\tfree   # not this\nobserve #x\nobserve x:y,z")
    assert [c.label for c in cmds] == ["", "before  the\tfree", "", "x:y,z"]
    assert cmds[1].text == "observe   before  the\tfree"


def test_expect_forms():
    data, zero, garbage, state, smaps, vm, neg = parse(
        "mmap A 4\nwrite A 0 as L\n"
        "expect A 0 data L\nexpect A 1-3 data zero\nexpect A 2 data garbage\n"
        "expect A 0,3 swap\nexpect A smaps LazyFree 16\nexpect vmstat pglazyfree 4\n"
        "expect vmstat nr_anon_pages -3"
    )[2:]
    assert data == ast.ExpectData(
        line=3, proc="p0", text="expect A 0 data L", name="A", runs=((0, 0),), value="L"
    )
    assert (zero.value, garbage.value) == ("zero", "garbage")
    assert state == ast.ExpectState(
        line=6, proc="p0", text="expect A 0,3 swap", name="A", runs=((0, 0), (3, 3)), state="swap"
    )
    assert smaps == ast.ExpectSmaps(
        line=7, proc="p0", text="expect A smaps LazyFree 16", name="A", field="LazyFree", kb=16
    )
    assert vm == ast.ExpectVmstat(
        line=8, proc="p0", text="expect vmstat pglazyfree 4", counter="pglazyfree", value=4
    )
    assert neg.value == -3


@pytest.mark.parametrize("state", ast.PAGE_STATES)
def test_expect_each_page_state(state):
    assert only(f"mmap A 4\nexpect A all {state}").state == state


def test_expect_data_accepts_a_default_label_and_a_label_written_by_another_process():
    cmds = parse(
        "mmap A 4\nfork c\nc: write A 0\nexpect A 0 data w3\nc: poke A 1 as P\nexpect A 1 data P"
    )
    assert [c.value for c in cmds if isinstance(c, ast.ExpectData)] == ["w3", "P"]


def test_expect_vmstat_with_a_mapping_named_vmstat():
    cmds = parse(
        "mmap vmstat 4\nexpect vmstat 0-1 present\nexpect vmstat smaps Rss 8\n"
        "expect vmstat all data zero\nexpect vmstat pswpout 0\nexpect vmstat 5 1"
    )
    assert [type(c) for c in cmds[1:]] == [
        ast.ExpectState,
        ast.ExpectSmaps,
        ast.ExpectData,
        ast.ExpectVmstat,
        ast.ExpectVmstat,
    ]
    assert cmds[5].counter == "5"


def test_names_may_be_64_characters_of_the_allowed_set():
    name = "aZ09_.+-" * 8
    assert only(f"mmap {name} 4").name == name


def test_command_words_are_names_when_in_name_position():
    cmds = parse(
        "mmap all 4\nmmap as 4 droppable\nwrite all all as as\nwrite as 0 as all\n"
        "expect all 0 data as"
    )
    assert cmds[2].runs == ((0, 3),)
    assert cmds[2].label == "as"
    assert cmds[4].value == "as"


def test_command_lines_have_their_own_numbers_past_blank_and_comment_lines():
    cmds = parse("\n# c\nmmap A 4\n\n\nread A 0\n")
    assert [c.line for c in cmds] == [3, 6]


# -- refusals: message and column ---------------------------------------------------

ERRORS = [
    # commands and words
    ("wirte A 0", 1, 1, "unknown command 'wirte'; did you mean 'write'?"),
    ("Mmap A 4", 1, 1, "unknown command 'Mmap'; did you mean 'mmap'?"),
    (
        "frobnicate",
        1,
        1,
        (
            "unknown command 'frobnicate' (commands: mthp, thp, swap, mmap, munmap, "
            "mprotect, mremap, write, read, madvise, mlock, munlock, fork, exit, gup, release, "
            "poke, mlockall, munlockall, observe, expect, pin, process_madvise, memcg)"
        ),
    ),
    ("mmap A 4\nwrite A", 2, 9, "write: missing RANGE (usage: write NAME RANGE [as LABEL])"),
    ("mmap A 4\nwrite", 2, 7, "write: missing mapping NAME (usage: write NAME RANGE [as LABEL])"),
    (
        "mmap A 4\nwrite A 0 bar",
        2,
        11,
        (
            "write: unexpected 'bar', expected 'as LABEL' or end of line "
            "(usage: write NAME RANGE [as LABEL])"
        ),
    ),
    (
        "mmap A 4\nwrite A 0 as",
        2,
        14,
        "write: missing LABEL after 'as' (usage: write NAME RANGE [as LABEL])",
    ),
    (
        "mmap A 4\nwrite A 0 as x y",
        2,
        16,
        "write: unexpected 'y' after 'x', expected end of line (usage: write NAME RANGE [as LABEL])",
    ),
    (
        "mmap A 4\nread A 0 1",
        2,
        10,
        "read: unexpected '1' after '0', expected end of line (usage: read NAME RANGE)",
    ),
    ("exit now", 1, 6, "exit: unexpected 'now' after 'exit', expected end of line (usage: exit)"),
    ("thp", 1, 5, "thp: missing MODE (usage: thp MODE)"),
    (
        "thp sometimes",
        1,
        5,
        "thp: unknown mode 'sometimes', expected one of never, always, madvise",
    ),
    ("thp inherit", 1, 5, "thp: unknown mode 'inherit', expected one of never, always, madvise"),
    (
        "mmap A 4\nmadvise A 0 fre",
        2,
        13,
        (
            "madvise: unknown advice 'fre', expected one of free, dontneed, pageout, cold, willneed, "
            "hugepage, nohugepage, populate_read, populate_write, dontfork, dofork, wipeonfork, "
            "keeponfork, collapse; did you mean 'free'?"
        ),
    ),
    ("mmap A 4\nmadvise A 0", 2, 13, "madvise: missing ADVICE (usage: madvise NAME RANGE ADVICE)"),
    # characters
    (
        "mmap A\x0c 4",
        1,
        7,
        "character U+000C is not allowed outside comments (words are separated by blanks and tabs)",
    ),
    (
        "mmap A 4\rread A 0",
        1,
        9,
        "character U+000D is not allowed outside comments (words are separated by blanks and tabs)",
    ),
    # process prefix
    ("p1: write A 0", 1, 1, "unknown process 'p1' (live processes: p0)"),
    ("fork p1\np2: exit", 2, 1, "unknown process 'p2' (live processes: p0, p1)"),
    (
        "fork proc1\nproc2: exit",
        2,
        1,
        "unknown process 'proc2' (live processes: p0, proc1); did you mean 'proc1'?",
    ),
    ("p1 : exit", 1, 4, "write the process prefix as 'p1:', without a blank before the colon"),
    (": exit", 1, 1, "empty process name before ':' (write e.g. 'p1: write A 0')"),
    ("p0:", 1, 5, "missing command after 'p0:'"),
    (
        "p$: exit",
        1,
        2,
        "bad process name 'p$': '$' is not allowed (names are 1-64 of A-Z a-z 0-9 _ . + -)",
    ),
    ("fork c\nc: p0: exit", 2, 4, "unknown command 'p0:' (only one PROC: prefix per line)"),
    ("exit\nthp never", 2, 1, "process 'p0' exited at line 1 (no process is alive)"),
    (
        "fork c\nexit\nthp never",
        3,
        1,
        (
            "process 'p0' exited at line 2 (live processes: c); prefix the line with a live process, "
            "e.g. 'c: '"
        ),
    ),
    ("fork c\nc: exit\nc: exit", 3, 1, "process 'c' exited at line 2 (live processes: p0)"),
    # fork and exit
    ("fork", 1, 6, "fork: missing CHILD process name (usage: fork CHILD)"),
    (
        "fork p0",
        1,
        6,
        "process 'p0' already exists (live processes: p0); choose another name for the child",
    ),
    (
        "fork c\nfork c",
        2,
        6,
        "process 'c' already exists (live processes: c, p0); choose another name for the child",
    ),
    (
        "fork a/b",
        1,
        7,
        "bad process name 'a/b': '/' is not allowed (names are 1-64 of A-Z a-z 0-9 _ . + -)",
    ),
    # mappings
    ("mmap A 16K\nwrite B 0", 2, 7, "unknown mapping 'B' (mappings of p0 so far: A)"),
    ("read B 0", 1, 6, "unknown mapping 'B' (mappings of p0 so far: none)"),
    (
        "mmap Alpha 4\nread alpha 0",
        2,
        6,
        "unknown mapping 'alpha' (mappings of p0 so far: Alpha); did you mean 'Alpha'?",
    ),
    (
        "mmap A 4\nmmap A 8",
        2,
        6,
        "mapping 'A' already exists in p0 (mapped at line 1); munmap it first or choose another name",
    ),
    (
        "mmap A 4\nfork c\nc: mmap A 4",
        3,
        9,
        "mapping 'A' already exists in c (mapped at line 1); munmap it first or choose another name",
    ),
    (
        "mmap A 4\nmunmap A\nread A 0",
        3,
        6,
        "mapping 'A' of p0 was unmapped at line 2 (mappings of p0 now: none)",
    ),
    ("munmap A", 1, 8, "unknown mapping 'A' (mappings of p0 so far: none)"),
    (
        "mmap A 4\nmunmap A A",
        2,
        10,
        "bad range run 'A': expected PAGE or FIRST-LAST, runs separated by commas "
        "(e.g. 0-3,8,10-11), or all",
    ),
    # protections, partial unmaps, mremap, results
    ('mmap A 4\nmunmap A 0 1', 2, 12, "munmap: unexpected '1' after '0', expected end of line (usage: munmap NAME [RANGE])"),
    ('mmap A 4\nmunmap A 4', 2, 10, "page 4 is outside the mapping (mapping 'A' has 4 pages: 0-3)"),
    ('mmap A 4\nmprotect A 0 rw', 2, 14, "mprotect: unknown protection 'rw', expected one of none, read, readwrite"),
    ('mmap A 4\nmprotect A 0', 2, 14, 'mprotect: missing protection (none, read or readwrite) (usage: mprotect NAME RANGE none|read|readwrite)'),
    ('mmap A 4\nmremap A 0', 2, 10, 'mremap to zero pages: the new size must not be zero (munmap it)'),
    ('mmap A 4\nmremap A 8 mvoe', 2, 12, "mremap: unexpected 'mvoe', expected 'move' or end of line (usage: mremap NAME PAGES [move [offset PAGES]]); did you mean 'move'?"),
    ('mmap A 4\nmremap A 8 move offset 512', 2, 24, "offset '512' is 512 pages; it must stay inside the 2M slot (0-511 pages)"),
    ('mmap A 4\nmremap A 8 move 3', 2, 17, "mremap: unexpected '3' after 'move', expected 'offset PAGES' or end of line (usage: mremap NAME PAGES [move [offset PAGES]])"),
    ('expect result ok', 1, 8, 'expect result: p0 has run no command before this line whose result could be expected (expect and observe lines have none)'),
    ('mmap A 4\nexpect result EFOO', 2, 15, "expect result: unknown result 'EFOO', expected ok, an errno name (EINVAL, ENOMEM, EFAULT, ...) or SIGSEGV, SIGBUS; did you mean 'ELOOP'?"),
    ('mmap A 4 prot rw', 1, 15, "mmap: unknown protection 'rw', expected one of none, read, readwrite"),
    ('mmap A 4 prot read prot none', 1, 20, "mmap: 'prot' given twice"),
    ('mmap A 4\nfork c\nc: expect result ok', 3, 11, 'expect result: c has run no command before this line whose result could be expected (expect and observe lines have none)'),
    ('mmap A 4\nmremap A 2\nwrite A 2', 3, 9, "page 2 is outside the mapping (mapping 'A' has 2 pages: 0-1)"),
    ("mmap", 1, 6, "mmap: missing mapping NAME (usage: mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite])"),
    ("mmap A", 1, 8, "mmap: missing SIZE (usage: mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite])"),
    ("mmap A 4 droppable droppable", 1, 20, "mmap: 'droppable' given twice"),
    ("mmap A 4 offset 1 offset 2", 1, 19, "mmap: 'offset' given twice"),
    (
        "mmap A 4 offset",
        1,
        17,
        "mmap: missing PAGES after 'offset' (usage: mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite])",
    ),
    (
        "mmap A 4 offset 512",
        1,
        17,
        "offset '512' is 512 pages; it must stay inside the 2M slot (0-511 pages)",
    ),
    (
        "mmap A 4 offset 2M",
        1,
        17,
        "offset '2M' is 512 pages; it must stay inside the 2M slot (0-511 pages)",
    ),
    (
        "mmap A 4 offset 2K",
        1,
        17,
        "offset '2K' is not a whole number of 4K pages (2048 bytes; e.g. 4K)",
    ),
    (
        "mmap A 4 dropable",
        1,
        10,
        (
            "mmap: unexpected 'dropable', expected 'droppable', 'offset PAGES', 'prot PROT' or end of line "
            "(usage: mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite]); did you mean 'droppable'?"
        ),
    ),
    (
        "mmap A 4 private",
        1,
        10,
        (
            "mmap: unexpected 'private', expected 'droppable', 'offset PAGES', 'prot PROT' or end of line "
            "(usage: mmap NAME SIZE [droppable] [offset PAGES] [prot none|read|readwrite])"
        ),
    ),
    # names
    (
        "mmap " + "x" * 65 + " 4",
        1,
        6,
        (
            "mapping name 'xxxxxxxxxxxxxxxxxxxx...' is 65 characters long; "
            "names are 1-64 of A-Z a-z 0-9 _ . + -"
        ),
    ),
    (
        "mmap A,B 4",
        1,
        7,
        "bad mapping name 'A,B': ',' is not allowed (names are 1-64 of A-Z a-z 0-9 _ . + -)",
    ),
    (
        "mmap Ä 4",
        1,
        6,
        "bad mapping name 'Ä': 'Ä' is not allowed (names are 1-64 of A-Z a-z 0-9 _ . + -)",
    ),
    (
        "mmap A 4\nwrite A 0 as zero",
        2,
        14,
        "'zero' is not a label: reads report 'zero' for such pages; choose another label",
    ),
    (
        "mmap A 4\npoke A 0 as garbage",
        2,
        13,
        "'garbage' is not a label: reads report 'garbage' for such pages; choose another label",
    ),
    (
        "mmap A 4\nwrite A 0 as a:b",
        2,
        15,
        "bad label name 'a:b': ':' is not allowed (names are 1-64 of A-Z a-z 0-9 _ . + -)",
    ),
    # sizes
    (
        "mmap A 3K",
        1,
        8,
        "mapping size '3K' is not a whole number of 4K pages (3072 bytes; e.g. 4K)",
    ),
    (
        "mmap A 6K",
        1,
        8,
        "mapping size '6K' is not a whole number of 4K pages (6144 bytes; e.g. 8K)",
    ),
    ("mmap A 0", 1, 8, "mapping size must not be zero"),
    ("mmap A 0K", 1, 8, "mapping size must not be zero"),
    ("mmap A 16k", 1, 10, "bad mapping size '16k': unknown size suffix 'k'; write '16K'"),
    (
        "mmap A 16kB",
        1,
        10,
        "bad mapping size '16kB': unknown size suffix 'kB', K, M or G (powers of 1024)",
    ),
    (
        "mmap A 1.5M",
        1,
        8,
        (
            "bad mapping size '1.5M': expected a page count or a number with a K, M or G suffix "
            "(powers of 1024), e.g. 16 or 64K"
        ),
    ),
    (
        "mmap A -4",
        1,
        8,
        (
            "bad mapping size '-4': expected a page count or a number with a K, M or G suffix "
            "(powers of 1024), e.g. 16 or 64K"
        ),
    ),
    (
        "mmap A K",
        1,
        8,
        (
            "bad mapping size 'K': expected a page count or a number with a K, M or G suffix "
            "(powers of 1024), e.g. 16 or 64K"
        ),
    ),
    (
        "mmap A 99999999999999999999999G",
        1,
        8,
        "mapping size '99999999999999999999999' is too large (at most 18446744073709551615)",
    ),
    (
        "mmap A 18446744073709551615G",
        1,
        8,
        "mapping size '18446744073709551615G' is too large (at most 18446744073709551615 bytes)",
    ),
    ("mthp 16 always", 1, 6, "bad mTHP size '16': needs a K or M suffix, e.g. 64K"),
    (
        "mthp 8K always",
        1,
        6,
        "mthp: no mTHP size '8K', expected one of 16K, 32K, 64K, 128K, 256K, 512K, 1M, 2M",
    ),
    (
        "mthp 4M always",
        1,
        6,
        "mthp: no mTHP size '4M', expected one of 16K, 32K, 64K, 128K, 256K, 512K, 1M, 2M",
    ),
    ("mthp 64k always", 1, 8, "bad mTHP size '64k': unknown size suffix 'k'; write '64K'"),
    ("mthp 64K", 1, 10, "mthp: missing MODE (usage: mthp SIZE MODE)"),
    (
        "mthp 64K sometimes",
        1,
        10,
        "mthp: unknown mode 'sometimes', expected one of never, always, inherit, madvise",
    ),
    ("swap 32K", 1, 6, "swap size '32K' (32K) is below the 64K minimum"),
    ("swap 15", 1, 6, "swap size '15' (60K) is below the 64K minimum"),
    ("swap", 1, 6, "swap: missing SIZE or off (usage: swap SIZE | swap off)"),
    (
        "swap on",
        1,
        6,
        (
            "bad swap size 'on': expected a page count or a number with a K, M or G suffix "
            "(powers of 1024), e.g. 16 or 64K"
        ),
    ),
    (
        "swap off 1M",
        1,
        10,
        "swap: unexpected '1M' after 'off', expected end of line (usage: swap SIZE | swap off)",
    ),
    # ranges
    ("mmap A 16K\nwrite A 4", 2, 9, "page 4 is outside the mapping (mapping 'A' has 4 pages: 0-3)"),
    ("mmap A 4K\nwrite A 1", 2, 9, "page 1 is outside the mapping (mapping 'A' has 1 page: 0)"),
    (
        "mmap A 16K\nread A 0,2-9",
        2,
        12,
        "page 9 is outside the mapping (mapping 'A' has 4 pages: 0-3)",
    ),
    (
        "mmap A 16K\nread A 1,5-9",
        2,
        10,
        "page 5 is outside the mapping (mapping 'A' has 4 pages: 0-3)",
    ),
    ("mmap A 16K\nwrite A 0-3,2", 2, 13, "page 2 appears twice in range '0-3,2'"),
    ("mmap A 16K\nwrite A 1,1", 2, 11, "page 1 appears twice in range '1,1'"),
    ("mmap A 64K\nwrite A 5-9,0-3,2-6", 2, 17, "page 2 appears twice in range '5-9,0-3,2-6'"),
    ("mmap A 64K\nwrite A 5-9,0-3,4-5", 2, 17, "page 5 appears twice in range '5-9,0-3,4-5'"),
    ("mmap A 16K\nwrite A 3-1", 2, 9, "run '3-1' goes backwards; write 1-3"),
    ("mmap A 16K\nwrite A 0,,1", 2, 11, "bad range '0,,1': empty run between commas"),
    ("mmap A 16K\nwrite A 0,", 2, 11, "bad range '0,': empty run between commas"),
    ("mmap A 16K\nwrite A all,1", 2, 9, "'all' cannot be combined with other runs in a range"),
    ("mmap A 16K\nwrite A 1,all", 2, 11, "'all' cannot be combined with other runs in a range"),
    (
        "mmap A 16K\nwrite A 1-",
        2,
        9,
        (
            "bad range run '1-': expected PAGE or FIRST-LAST, runs separated by commas "
            "(e.g. 0-3,8,10-11), or all"
        ),
    ),
    (
        "mmap A 16K\nwrite A 0-1-2",
        2,
        9,
        (
            "bad range run '0-1-2': expected PAGE or FIRST-LAST, runs separated by commas "
            "(e.g. 0-3,8,10-11), or all"
        ),
    ),
    (
        "mmap A 16K\nwrite A -1",
        2,
        9,
        (
            "bad range run '-1': expected PAGE or FIRST-LAST, runs separated by commas "
            "(e.g. 0-3,8,10-11), or all"
        ),
    ),
    (
        "mmap A 16K\nwrite A ALL",
        2,
        9,
        (
            "bad range run 'ALL': expected PAGE or FIRST-LAST, runs separated by commas "
            "(e.g. 0-3,8,10-11), or all"
        ),
    ),
    ("mmap A 16K\nwrite A 0-3, 8", 2, 13, "bad range '0-3,': empty run between commas"),
    (
        "mmap A 16K\nread A 0-" + "9" * 30,
        2,
        10,
        "page index '999999999999999999999999' is too large (at most 18446744073709551615)",
    ),
    # gup and release
    ("mmap A 4\ngup A 0", 2, 9, "gup: missing 'as REF' (usage: gup NAME RANGE as REF)"),
    (
        "mmap A 4\ngup A 0 R",
        2,
        9,
        "gup: expected 'as REF', found 'R' (usage: gup NAME RANGE as REF)",
    ),
    ("mmap A 4\ngup A 0 as", 2, 12, "gup: missing REF after 'as' (usage: gup NAME RANGE as REF)"),
    (
        "mmap A 4\ngup A 0 as R\ngup A 1 as R",
        3,
        12,
        "reference 'R' is already held (taken at line 2); release it first or choose another name",
    ),
    ("release R", 1, 9, "unknown reference 'R' (held references: none)"),
    (
        "mmap A 4\ngup A 0 as Ref1\nrelease Ref2",
        3,
        9,
        "unknown reference 'Ref2' (held references: Ref1); did you mean 'Ref1'?",
    ),
    (
        "mmap A 4\ngup A 0 as R\nrelease R\nrelease R",
        4,
        9,
        "reference 'R' was already released at line 3 (held references: none)",
    ),
    ("release", 1, 9, "release: missing REF (usage: release REF)"),
    # expect
    (
        "expect",
        1,
        8,
        (
            "expect: missing mapping NAME or 'vmstat' (usage: expect NAME RANGE data "
            "LABEL|zero|garbage, expect NAME RANGE present|swap|none, expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, "
            "expect vmstat COUNTER N, or expect result ok|ERRNAME)"
        ),
    ),
    (
        "mmap A 4\nexpect A 0 data foo",
        2,
        17,
        (
            "expect: label 'foo' was never written before this line (labels so far: none; "
            "or zero, garbage)"
        ),
    ),
    (
        "mmap A 4\nwrite A 0 as old\nexpect A 0 data olf",
        3,
        17,
        (
            "expect: label 'olf' was never written before this line (labels so far: old; "
            "or zero, garbage); did you mean 'old'?"
        ),
    ),
    (
        "mmap A 4\nexpect A 0 data w3\nwrite A 0",
        2,
        17,
        (
            "expect: label 'w3' was never written before this line (labels so far: none; "
            "or zero, garbage)"
        ),
    ),
    (
        "mmap A 4\nexpect A 0 data",
        2,
        17,
        (
            "expect: missing LABEL, 'zero' or 'garbage' (usage: expect NAME RANGE data "
            "LABEL|zero|garbage, expect NAME RANGE present|swap|none, expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, "
            "expect vmstat COUNTER N, or expect result ok|ERRNAME)"
        ),
    ),
    (
        "mmap A 4\nexpect A 0 swapped",
        2,
        12,
        (
            "expect: unexpected 'swapped' after the range, expected one of data, present, swap, none, "
            "order, mapcount, exclusive, flags; "
            "did you mean 'swap'?"
        ),
    ),
    (
        "mmap A 4\nexpect A smaps rss 4",
        2,
        16,
        (
            "expect: unknown smaps field 'rss', expected one of AnonHugePages, Anonymous, LazyFree, "
            "Locked, Private_Clean, Private_Dirty, Pss, Rss, Shared_Clean, Shared_Dirty, Swap, "
            "SwapPss; did you mean 'Rss'?"
        ),
    ),
    (
        "mmap A 4\nexpect A smaps Referenced 4",
        2,
        16,
        (
            "expect: unknown smaps field 'Referenced', expected one of AnonHugePages, Anonymous, "
            "LazyFree, Locked, Private_Clean, Private_Dirty, Pss, Rss, Shared_Clean, Shared_Dirty, "
            "Swap, SwapPss"
        ),
    ),
    (
        "mmap A 4\nexpect A smaps Rss 16kB",
        2,
        20,
        "bad kB value '16kB': expected a number (digits only)",
    ),
    (
        "mmap A 4\nexpect A smaps Rss -4",
        2,
        20,
        "bad kB value '-4': expected a number (digits only)",
    ),
    (
        "mmap A 4\nexpect A smaps Rss 4 kB",
        2,
        22,
        (
            "expect: unexpected 'kB' after '4', expected end of line (usage: expect NAME RANGE data "
            "LABEL|zero|garbage, expect NAME RANGE present|swap|none, expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, "
            "expect vmstat COUNTER N, or expect result ok|ERRNAME)"
        ),
    ),
    (
        "expect vmstats pswpout 1",
        1,
        8,
        "unknown mapping 'vmstats' (mappings of p0 so far: none); did you mean 'vmstat'?",
    ),
    (
        "expect vmstat pswpOut 1",
        1,
        15,
        "expect: bad vmstat counter 'pswpOut': /proc/vmstat names are made of a-z 0-9 _",
    ),
    ("expect vmstat pswpout +1", 1, 23, "bad count '+1': expected a number (digits only)"),
    (
        "expect vmstat pswpout",
        1,
        23,
        (
            "expect: missing N (usage: expect NAME RANGE data LABEL|zero|garbage, expect NAME RANGE "
            "present|swap|none, expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, expect vmstat COUNTER N, or expect result ok|ERRNAME)"
        ),
    ),
    (
        "expect vmstat pswpout 1 2",
        1,
        25,
        (
            "expect: unexpected '2' after '1', expected end of line (usage: expect NAME RANGE data "
            "LABEL|zero|garbage, expect NAME RANGE present|swap|none, expect NAME RANGE order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, "
            "expect vmstat COUNTER N, or expect result ok|ERRNAME)"
        ),
    ),
    (
        "mmap vmstat 4\nexpect vmstat 4 present",
        2,
        15,
        "page 4 is outside the mapping (mapping 'vmstat' has 4 pages: 0-3)",
    ),
    # references (issue 12): pin, expect REF data, process_madvise
    (
        "mmap A 4\npin A 0 as R\npin A 1 as R",
        3,
        12,
        "reference 'R' is already held (taken at line 2); release it first or choose another name",
    ),
    (
        "mmap A 4\ngup A 0 as R\npin A 1 as R",
        3,
        12,
        "reference 'R' is already held (taken at line 2); release it first or choose another name",
    ),
    (
        "mmap A 4\npin A 0 R",
        2,
        9,
        "pin: expected 'as REF', found 'R' (usage: pin NAME RANGE as REF [readonly])",
    ),
    (
        "mmap A 4\npin A 0 as R readonl",
        2,
        14,
        "pin: unexpected 'readonl', expected 'readonly' or end of line "
        "(usage: pin NAME RANGE as REF [readonly]); did you mean 'readonly'?",
    ),
    (
        "mmap A 4\npin A 0 as R readonly x",
        2,
        23,
        "pin: unexpected 'x' after 'readonly', expected end of line "
        "(usage: pin NAME RANGE as REF [readonly])",
    ),
    ("mmap A 4\npin A 4 as R", 2, 7, "page 4 is outside the mapping (mapping 'A' has 4 pages: 0-3)"),
    (
        "mmap A 4\npin A 0 as R\nrelease R\nexpect R data zero",
        4,
        8,
        "expect: reference 'R' was released at line 3 and holds no pages (held references: none)",
    ),
    (
        "mmap A 4\ngup A 0 as Ref1\nexpect Ref2 data zero",
        3,
        8,
        "expect: unknown reference or mapping 'Ref2' (held references: Ref1; mappings of p0: A)"
        "; did you mean 'Ref1'?",
    ),
    (
        "mmap A 4\npin A 0 as R\nexpect R data olf",
        3,
        15,
        "expect: label 'olf' was never written before this line (labels so far: none; or zero, "
        "garbage)",
    ),
    (
        "mmap A 4\npin A 0 as R\nexpect R data zero 1",
        3,
        20,
        "expect: unexpected '1' after 'zero', expected end of line (usage: expect NAME RANGE "
        "data LABEL|zero|garbage, expect NAME RANGE present|swap|none, expect NAME RANGE "
        "order N|mapcount N|exclusive yes|no|flags [+|-]FLAG..., expect NAME smaps FIELD KB, "
        "expect vmstat COUNTER N, or expect result ok|ERRNAME)",
    ),
    (
        "mmap A 4\nprocess_madvise p9 A 0 cold",
        2,
        17,
        "unknown process 'p9' (live processes: p0)",
    ),
    (
        "mmap A 4\nfork c\nc: exit\nprocess_madvise c A 0 cold",
        4,
        17,
        "process 'c' exited at line 3 (live processes: p0)",
    ),
    (
        "mmap A 4\nfork c\nc: mmap B 4\nprocess_madvise c A 0-4 cold",
        4,
        23,
        "page 4 is outside the mapping (mapping 'A' has 4 pages: 0-3)",
    ),
    (
        "fork c\nc: mmap B 4\nprocess_madvise c A 0 cold",
        3,
        19,
        "unknown mapping 'A' (mappings of c so far: B)",
    ),
    (
        "mmap A 4\nprocess_madvise p0 A 0 fre",
        2,
        24,
        "process_madvise: unknown advice 'fre', expected one of free, dontneed, pageout, cold, "
        "willneed, hugepage, nohugepage, populate_read, populate_write, dontfork, dofork, "
        "wipeonfork, keeponfork, collapse; did you mean 'free'?",
    ),
    (
        "mmap A 4\nprocess_madvise p0 A 0",
        2,
        24,
        "process_madvise: missing ADVICE (usage: process_madvise OTHER NAME RANGE ADVICE)",
    ),
]


@pytest.mark.parametrize("text, line, col, reason", ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_refusal_message_and_column(text, line, col, reason):
    e = refuse(text)
    assert (e.line, e.col, e.reason) == (line, col, reason)
    assert e.path == "t.scn"
    assert str(e) == f"t.scn:{line}:{col}: {reason}"


def test_the_first_error_is_reported_and_nothing_after_it():
    e = refuse("mmap A 4\nwrite B 0\nfrobnicate\n")
    assert (e.line, e.col) == (2, 7)


def test_a_comment_does_not_hide_an_error_before_it():
    e = refuse("mmap A 4 extra # fine comment")
    assert (e.line, e.col) == (1, 10)


def test_unprintable_characters_are_escaped_in_messages():
    e = refuse("mmap A\u2028B 4")
    assert e.reason == (
        "bad mapping name 'A\\u2028B': '\\u2028' is not allowed "
        "(names are 1-64 of A-Z a-z 0-9 _ . + -)"
    )
    assert len(str(e).splitlines()) == 1


def test_errors_after_bom_and_crlf_point_at_the_right_column():
    e = refuse("\ufeffmmap A 4\r\nwrite  A  9\r\n")
    assert (e.line, e.col) == (2, 11)


# -- parse_file ---------------------------------------------------------------------


def test_parse_file_reads_utf8_and_names_the_scenario_by_the_path(tmp_path):
    p = tmp_path / "redirty.scn"
    p.write_text("# é\nmmap A 4\nobserve état\n", encoding="utf-8")
    s = parse_file(p)
    assert s.path == str(p)
    assert s.commands[1].label == "état"
    assert parse_file(str(p)) == s


def test_parse_file_missing_file_is_a_file_level_error(tmp_path):
    p = tmp_path / "nope.scn"
    with pytest.raises(ScenarioError) as info:
        parse_file(p)
    e = info.value
    assert (e.path, e.line, e.col) == (str(p), 0, 0)
    assert e.reason == "cannot read scenario file: No such file or directory"
    assert str(e) == f"{p}:0:0: cannot read scenario file: No such file or directory"


def test_parse_file_directory_is_a_file_level_error(tmp_path):
    with pytest.raises(ScenarioError) as info:
        parse_file(tmp_path)
    assert (info.value.line, info.value.col) == (0, 0)
    assert info.value.reason == "cannot read scenario file: Is a directory"


def test_parse_file_not_utf8_points_at_the_bad_byte(tmp_path):
    p = tmp_path / "latin1.scn"
    p.write_bytes("mmap A 4\nobserve é\n".encode() + b"observe caf\xe9\n")
    with pytest.raises(ScenarioError) as info:
        parse_file(p)
    e = info.value
    assert (e.line, e.col) == (3, 12)
    assert e.reason == "not UTF-8 text: byte 0xe9 cannot be decoded"


def test_parse_file_errors_carry_the_file_path(tmp_path):
    p = tmp_path / "bad.scn"
    p.write_text("mmap A 4\nread A 4\n")
    with pytest.raises(ScenarioError) as info:
        parse_file(p)
    assert str(info.value) == (
        f"{p}:2:8: page 4 is outside the mapping (mapping 'A' has 4 pages: 0-3)"
    )
