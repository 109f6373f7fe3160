"""The page expectations: `expect NAME RANGE order N | mapcount N | exclusive yes|no | flags ...`."""

import pytest

from foliosim.expect import expect_event
from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import parse_text
from foliosim.scenario.printer import to_text


def parse(text):
    return parse_text(text, "t.scn").commands


def refuse(text):
    with pytest.raises(ScenarioError) as info:
        parse_text(text, "t.scn")
    return info.value


def test_each_page_expectation_parses_to_its_command():
    cmds = parse(
        "mmap A 32\nexpect A 0-15 order 4\nexpect A all mapcount 1\n"
        "expect A 3 exclusive no\nexpect A 0,2 flags +dirty -mlocked +anon_exclusive\n"
    )
    assert cmds[1] == ast.ExpectOrder(2, "p0", "expect A 0-15 order 4", "A", ((0, 15),), 4)
    assert cmds[2].mapcount == 1 and cmds[2].runs == ((0, 31),)
    assert cmds[3].exclusive is False
    assert cmds[4].flags == ("+dirty", "-mlocked", "+anon_exclusive")


def test_page_expectations_print_back_as_written():
    text = (
        "mmap A 32K\nexpect A 0-7 order 3\nexpect A 1 mapcount 2\nexpect A 2 exclusive yes\n"
        "expect A 0-3 flags -dirty +mlocked\n"
    )
    assert to_text(parse_text(text, "t.scn")) == text


PAGE_EXPECT_ERRORS = [
    ("mmap A 4\nexpect A 0 order", 2, 18, "expect: missing N"),
    ("mmap A 4\nexpect A 0 order 10", 2, 18, "expect: order 10 is above 9"),
    ("mmap A 4\nexpect A 0 mapcount -1", 2, 21, "bad mapcount '-1': expected a number"),
    ("mmap A 4\nexpect A 0 exclusive maybe", 2, 22, "expect: unknown exclusive value 'maybe'"),
    ("mmap A 4\nexpect A 0 flags", 2, 18, "expect: missing +FLAG or -FLAG"),
    ("mmap A 4\nexpect A 0 flags dirty", 2, 18, "expect: flag 'dirty' needs a sign"),
    ("mmap A 4\nexpect A 0 flags +drity", 2, 19, "expect: unknown page flag 'drity'"),
    ("mmap A 4\nexpect A 0 flags +dirty -lru", 2, 26, "expect: flag 'lru' cannot be asserted"),
    ("mmap A 4\nexpect A 0 flags +dirty -dirty", 2, 25, "expect: flag 'dirty' given twice"),
    ("mmap A 4\nexpect A 0 orders 1", 2, 12, "expect: unexpected 'orders' after the range"),
]


@pytest.mark.parametrize("text, line, col, start", PAGE_EXPECT_ERRORS)
def test_bad_page_expectations_are_refused_at_the_word(text, line, col, start):
    e = refuse(text)
    assert (e.line, e.col) == (line, col), str(e)
    assert e.reason.startswith(start), e.reason


def test_a_misspelt_flag_gets_a_suggestion():
    assert refuse("mmap A 4\nexpect A 0 flags +mlockd").reason.endswith("did you mean 'mlocked'?")


def _state(pages):
    return {"procs": {"p0": {"maps": {"A": {"pages": pages, "smaps": {}}}}}}


PRESENT = {"state": "present", "exclusive": True, "flags": ["anon", "dirty"], "mapcount": 1,
           "order": 2}
SWAP = {"state": "swap", "exclusive": False}


def test_a_page_that_is_not_present_fails_order_mapcount_and_flags_with_null():
    cmds = parse("mmap A 2\nexpect A all order 2\nexpect A all mapcount 1\n"
                 "expect A all flags +dirty\nexpect A all exclusive no\n")
    state = _state([PRESENT, SWAP])
    got = [expect_event(c, state, {}) for c in cmds[1:]]
    assert [g["got"] for g in got] == [[2, None], [1, None], ["+dirty", None], ["yes", "no"]]
    assert [g["ok"] for g in got] == [False, False, False, False]


def test_flags_hold_when_each_plus_flag_is_set_and_each_minus_flag_clear():
    (cmd,) = parse("mmap A 1\nexpect A 0 flags +dirty -mlocked")[1:]
    ev = expect_event(cmd, _state([PRESENT]), {})
    assert (ev["got"], ev["ok"]) == (["+dirty -mlocked"], True)
    (cmd,) = parse("mmap A 1\nexpect A 0 flags -anon")[1:]
    ev = expect_event(cmd, _state([PRESENT]), {})
    assert (ev["got"], ev["ok"]) == (["+anon"], False)


# -- mlock onfault, mlockall, munlockall ---------------------------------------------


def test_mlock_onfault_mlockall_and_munlockall_parse():
    cmds = parse("mmap A 4\nmlock A 0-1 onfault\nmlock A 2\nmlockall future onfault current\n"
                 "mlockall future\nmunlockall\n")
    assert (cmds[1].onfault, cmds[2].onfault) == (True, False)
    assert (cmds[3].current, cmds[3].future, cmds[3].onfault) == (True, True, True)
    assert (cmds[4].current, cmds[4].future, cmds[4].onfault) == (False, True, False)
    assert isinstance(cmds[5], ast.Munlockall)
    assert to_text(parse_text("mlockall future onfault current\n", "t.scn")) == (
        "mlockall current future onfault\n"
    )


MLOCK_ERRORS = [
    ("mmap A 4\nmlock A 0 onfalt", 2, 11, "mlock: unexpected 'onfalt', expected 'onfault'"),
    ("mmap A 4\nmlock A 0 onfault x", 2, 19, "mlock: unexpected 'x' after 'onfault'"),
    ("mlockall", 1, 10, "mlockall: needs current, future or both"),
    ("mlockall onfault", 1, 18, "mlockall: needs current, future or both"),
    ("mlockall current current", 1, 18, "mlockall: 'current' given twice"),
    ("mlockall now", 1, 10, "mlockall: unexpected 'now', expected current, future, onfault"),
    ("munlockall all", 1, 12, "munlockall: unexpected 'all' after 'munlockall'"),
]


@pytest.mark.parametrize("text, line, col, start", MLOCK_ERRORS)
def test_bad_mlock_words_are_refused_at_the_word(text, line, col, start):
    e = refuse(text)
    assert (e.line, e.col) == (line, col), str(e)
    assert e.reason.startswith(start), e.reason
