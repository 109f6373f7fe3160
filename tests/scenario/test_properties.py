"""Property tests of the scenario parser and printer (hypothesis).

(a) No text, random or a mutation of a valid scenario, makes the parser raise
    anything but ScenarioError, and every error points inside the text with a
    non-empty one-line reason.
(b) Valid scenarios, generated as commands, print to text that parses back to
    the same commands.
"""

import dataclasses
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foliosim.observation import SMAPS_KEYS
from foliosim.scenario import ast
from foliosim.scenario.errors import ScenarioError
from foliosim.scenario.parser import FLAG_NAMES, parse_text
from foliosim.scenario.printer import to_text

PATH = "prop.scn"
NAME_ALPHABET = string.ascii_letters + string.digits + "_.+-"

names = st.text(NAME_ALPHABET, min_size=1, max_size=6) | st.text(
    NAME_ALPHABET, min_size=1, max_size=64
)
labels = names.filter(lambda s: s not in ("zero", "garbage"))
# What an observe label may hold: no '#', no controls but tab, no blanks at the ends.
observe_labels = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="#") | st.just("\t"),
        max_size=12,
    )
    .map(lambda s: s.strip(" \t"))
    .filter(lambda s: not s.startswith(":"))
)  # ':x' reads as a prefix
page_counts = st.integers(1, 40) | st.sampled_from([255, 256, 512, 513, 262144])
counters = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=24)


def without_positions(scenario):
    # `expect result` names its command by line: compare by that command's position.
    index = {c.line: i for i, c in enumerate(scenario.commands)}
    return [
        dataclasses.replace(c, line=0, text="", of_line=index[c.of_line])
        if isinstance(c, ast.ExpectResult)
        else dataclasses.replace(c, line=0, text="")
        for c in scenario.commands
    ]


@st.composite
def runs_of(draw, pages):
    """Disjoint inclusive runs inside 0..pages-1, in any order."""
    points = sorted(draw(st.sets(st.integers(0, pages - 1), min_size=1, max_size=6)))
    runs = []
    i = 0
    while i < len(points):
        if i + 1 < len(points) and draw(st.booleans()):
            runs.append((points[i], points[i + 1]))
            i += 2
        else:
            runs.append((points[i], points[i]))
            i += 1
    return tuple(draw(st.permutations(runs)))


@st.composite
def scenarios(draw, max_commands=25):
    """A valid Scenario built as commands, tracking what the parser tracks."""
    procs = {"p0": {}}  # live process -> {mapping: pages}
    refs = set()
    written = set()
    last = {}  # process -> line of its last command with an outcome (expect result)
    cmds = []
    for line in range(1, draw(st.integers(0, max_commands)) + 1):
        if not procs:
            break
        proc = draw(st.sampled_from(sorted(procs)))
        maps = procs[proc]
        # Hypothesis favours the first choices: mapping commands first, exit last.
        kinds = []
        if maps:
            kinds += [
                "write",
                "madvise",
                "data",
                "read",
                "state",
                "gup",
                "poke",
                "smaps",
                "mlock",
                "munlock",
                "munmap",
                # page expectations
                "order",
                "mapcount",
                "exclusive",
                "flags",
                "mlock_onfault",
                "mprotect",
                "munmap_range",
                "mremap",
            ]
        if proc in last:
            kinds.append("result")
        if refs:
            kinds += ["release", "refdata"]
        if maps:
            kinds.append("pin")
        if any(procs.values()):
            kinds.append("pmadvise")
        kinds += ["mmap", "fork", "observe", "vmstat", "swap", "thp", "mthp", "mlockall", "munlockall", "exit"]
        kind = draw(st.sampled_from(kinds))
        at = {"line": line, "proc": proc, "text": ""}
        if maps:
            name = draw(st.sampled_from(sorted(maps)))
            runs = draw(runs_of(maps[name]))
        if kind == "mthp":
            cmd = ast.Mthp(
                **at,
                size_kb=draw(st.sampled_from(ast.MTHP_SIZES_KB)),
                mode=draw(st.sampled_from(ast.MTHP_MODES)),
            )
        elif kind == "thp":
            cmd = ast.Thp(**at, mode=draw(st.sampled_from(ast.THP_MODES)))
        elif kind == "swap":
            cmd = ast.Swap(**at, pages=draw(st.none() | st.integers(16, 1 << 20)))
        elif kind == "mmap":
            new = draw(names.filter(lambda n, taken=frozenset(maps): n not in taken))
            pages = draw(page_counts)
            maps[new] = pages
            cmd = ast.Mmap(
                **at,
                name=new,
                pages=pages,
                droppable=draw(st.booleans()),
                offset=draw(st.sampled_from([0, 0, 1, 511]) | st.integers(0, 511)),
                prot=draw(st.sampled_from(ast.PROTS)),
            )
        elif kind == "munmap":
            del maps[name]
            cmd = ast.Munmap(**at, name=name)
        elif kind == "munmap_range":
            cmd = ast.Munmap(**at, name=name, runs=runs)
        elif kind == "mprotect":
            cmd = ast.Mprotect(**at, name=name, runs=runs, prot=draw(st.sampled_from(ast.PROTS)))
        elif kind == "mremap":
            pages = draw(page_counts)
            move = draw(st.booleans())
            offset = draw(st.integers(0, 511)) if move else 0
            maps[name] = pages
            cmd = ast.Mremap(**at, name=name, pages=pages, move=move, offset=offset)
        elif kind == "result":
            value = draw(st.sampled_from(["ok", "EINVAL", "ENOMEM", "EFAULT", "SIGSEGV", "EAGAIN"]))
            cmd = ast.ExpectResult(**at, value=value, of_line=last[proc])
        elif kind in ("write", "poke"):
            label = draw(labels)
            written.add(label)
            cls = ast.Write if kind == "write" else ast.Poke
            cmd = cls(**at, name=name, runs=runs, label=label)
        elif kind == "read":
            cmd = ast.Read(**at, name=name, runs=runs)
        elif kind == "madvise":
            cmd = ast.Madvise(**at, name=name, runs=runs, advice=draw(st.sampled_from(ast.ADVICES)))
        elif kind == "mlock":
            cmd = ast.Mlock(**at, name=name, runs=runs)
        elif kind == "munlock":
            cmd = ast.Munlock(**at, name=name, runs=runs)
        elif kind == "fork":
            child = draw(names.filter(lambda n, taken=frozenset(procs): n not in taken))
            procs[child] = dict(maps)
            last.pop(child, None)
            cmd = ast.Fork(**at, child=child)
        elif kind == "exit":
            del procs[proc]
            cmd = ast.Exit(**at)
        elif kind == "gup":
            ref = draw(names.filter(lambda n, taken=frozenset(refs): n not in taken))
            refs.add(ref)
            cmd = ast.Gup(**at, name=name, runs=runs, ref=ref)
        elif kind == "release":
            ref = draw(st.sampled_from(sorted(refs)))
            refs.remove(ref)
            cmd = ast.Release(**at, ref=ref)
        elif kind == "pin":
            ref = draw(names.filter(lambda n, taken=frozenset(refs): n not in taken))
            refs.add(ref)
            cmd = ast.Pin(**at, name=name, runs=runs, ref=ref, readonly=draw(st.booleans()))
        elif kind == "refdata":
            value = draw(st.sampled_from(sorted(written) + [ast.DATA_ZERO, ast.DATA_GARBAGE]))
            cmd = ast.ExpectRefData(**at, ref=draw(st.sampled_from(sorted(refs))), value=value)
        elif kind == "pmadvise":
            target = draw(st.sampled_from(sorted(p for p, pm in procs.items() if pm)))
            tname = draw(st.sampled_from(sorted(procs[target])))
            cmd = ast.ProcessMadvise(
                **at,
                target=target,
                name=tname,
                runs=draw(runs_of(procs[target][tname])),
                advice=draw(st.sampled_from(ast.ADVICES)),
            )
        elif kind == "observe":
            cmd = ast.Observe(**at, label=draw(observe_labels))
        elif kind == "data":
            value = draw(st.sampled_from(sorted(written) + [ast.DATA_ZERO, ast.DATA_GARBAGE]))
            cmd = ast.ExpectData(**at, name=name, runs=runs, value=value)
        elif kind == "state":
            cmd = ast.ExpectState(
                **at, name=name, runs=runs, state=draw(st.sampled_from(ast.PAGE_STATES))
            )
        elif kind == "smaps":
            cmd = ast.ExpectSmaps(
                **at,
                name=name,
                field=draw(st.sampled_from(SMAPS_KEYS)),
                kb=draw(st.integers(0, 1 << 40)),
            )
        elif kind == "mlock_onfault":
            cmd = ast.Mlock(**at, name=name, runs=runs, onfault=True)
        elif kind == "mlockall":
            current, future = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
            cmd = ast.Mlockall(**at, current=current, future=future, onfault=draw(st.booleans()))
        elif kind == "munlockall":
            cmd = ast.Munlockall(**at)
        elif kind == "order":
            cmd = ast.ExpectOrder(**at, name=name, runs=runs, order=draw(st.integers(0, 9)))
        elif kind == "mapcount":
            cmd = ast.ExpectMapcount(**at, name=name, runs=runs, mapcount=draw(st.integers(0, 1 << 40)))
        elif kind == "exclusive":
            cmd = ast.ExpectExclusive(**at, name=name, runs=runs, exclusive=draw(st.booleans()))
        elif kind == "flags":
            chosen = draw(st.lists(st.sampled_from(FLAG_NAMES), min_size=1, max_size=4, unique=True))
            signs = draw(st.lists(st.sampled_from("+-"), min_size=len(chosen), max_size=len(chosen)))
            flags = tuple(sg + f for sg, f in zip(signs, chosen))
            cmd = ast.ExpectFlags(**at, name=name, runs=runs, flags=flags)
        else:
            cmd = ast.ExpectVmstat(
                **at, counter=draw(counters), value=draw(st.integers(-(1 << 63), 1 << 63))
            )
        if not isinstance(cmd, ast.Observe) and not type(cmd).__name__.startswith("Expect"):
            last[proc] = line
        cmds.append(cmd)
    return ast.Scenario(path=PATH, commands=tuple(cmds))


# -- (b) round trip -----------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_generated_scenarios_round_trip_through_to_text(scenario):
    text = to_text(scenario)
    back = parse_text(text, PATH)
    assert without_positions(back) == without_positions(scenario)
    assert [c.line for c in back.commands] == [c.line for c in scenario.commands]
    assert to_text(back) == text


# -- (a) robustness -----------------------------------------------------------------

HANDWRITTEN = [
    (
        "thp never\nswap 1M\nmmap A 16K\nwrite A all as old\nmadvise A all free\n"
        "write A 0 as new\nmadvise A all pageout\nexpect A 0 data new\nexpect A 1-3 data zero\n"
    ),
    (
        "mthp 64K always\nmmap A 64K droppable offset 3 # c\nfork p1\np1: gup A 0-3,8 as R\n"
        "p1:poke A 4\nrelease R\nexpect A smaps Rss 64\nexpect vmstat pswpout -1\nobserve  x y\n"
        "p1: exit\nmunmap A\n"
    ),
    (
        "mmap A 16 prot read\nmprotect A 0-3 readwrite\nexpect result ok\nwrite A 4\n"
        "expect result SIGSEGV\nmunmap A 8-9\nmremap A 32 move offset 7\nmremap A 8\n"
    ),
    "\ufeffmmap vmstat 4\r\nexpect vmstat 0 present\r\nexpect vmstat pswpin 0\r\n",
]
# Characters that matter to the grammar, plus some that must be refused cleanly.
NOISE = st.text(
    st.sampled_from(
        list("0123456789-,:# \t\nKMGkAB_.+pasl")
        + ["\r", "\x00", "\u2028", "é", "\ud800", "\x85", "\ufeff"]
    ),
    min_size=1,
    max_size=6,
)


def check_outcome(text):
    """Parse `text`: a Scenario that round-trips, or a well-formed ScenarioError."""
    try:
        scenario = parse_text(text, PATH)
    except ScenarioError as e:
        lines = text.removeprefix("\ufeff").split("\n")
        assert e.path == PATH
        assert 1 <= e.line <= len(lines), (e.line, len(lines))
        assert 1 <= e.col <= len(lines[e.line - 1].removesuffix("\r")) + 2, str(e)
        assert e.reason and e.reason == e.reason.strip()
        assert len(str(e).splitlines()) == 1, repr(str(e))
        return
    back = parse_text(to_text(scenario), PATH)
    assert without_positions(back) == without_positions(scenario)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(HANDWRITTEN) | scenarios(max_commands=10).map(to_text))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["delete", "insert", "replace", "swap_words", "dup_line", "drop_line", "swap_lines"]
            )
        )
        n = len(text)
        if op in ("delete", "insert", "replace"):
            i = draw(st.integers(0, n))
            j = min(n, i + draw(st.integers(0 if op == "insert" else 1, 4)))
            new = "" if op == "delete" else draw(NOISE)
            text = text[:i] + new + text[j:]
        elif op == "swap_words":
            words = text.split(" ")
            if len(words) > 1:
                i, j = draw(st.lists(st.integers(0, len(words) - 1), min_size=2, max_size=2))
                words[i], words[j] = words[j], words[i]
                text = " ".join(words)
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(draw(st.integers(0, len(lines))), lines[i])
            elif op == "drop_line":
                del lines[i]
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_scenarios_parse_or_raise_a_well_formed_scenario_error(text):
    check_outcome(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_a_well_formed_scenario_error(text):
    check_outcome(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            sorted(set(ast.ADVICES + ast.PAGE_STATES + ast.THP_MODES))
            + [
                "mmap",
                "write",
                "read",
                "expect",
                "vmstat",
                "smaps",
                "data",
                "as",
                "A",
                "p1:",
                "fork",
                "exit",
                "gup",
                "release",
                "pin",
                "readonly",
                "process_madvise",
                "p0",
                "pageout",
                "R",
                "0",
                "0-3",
                "all",
                "16K",
                "swap",
                "off",
                "offset",
                "droppable",
                "mthp",
                "64K",
                "\n",
                "#",
                "observe",
                "Rss",
                "pswpout",
                "munmap",
                "poke",
                "order",
                "mapcount",
                "exclusive",
                "yes",
                "no",
                "flags",
                "+dirty",
                "-mlocked",
                "+lru",
                "dirty",
                "mlock",
                "onfault",
                "mlockall",
                "current",
                "future",
                "munlockall",
                "mprotect",
                "mremap",
                "move",
                "prot",
                "result",
                "ok",
                "SIGSEGV",
                "EINVAL",
                *ast.PROTS,
            ]
        ),
        max_size=40,
    ).map(" ".join)
)
def test_sequences_of_grammar_words_parse_or_raise_a_well_formed_scenario_error(text):
    check_outcome(text)
