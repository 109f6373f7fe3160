#!/usr/bin/env python3
"""Generate scenarios/peer/cow-*.scn and the cow.c table of docs/peer-coverage.md.

tools/testing/selftests/mm/cow.c (Linux 6.18) runs each of its anonymous test
functions in every context of run_anon_test_case(): a base page, a swapped-out
base page, and for each THP size (this machine: 16K..1M mTHP and the 2M PMD
size) a PTE-mapped THP, its swapped-out form, a single PTE of it (swapped out
or not), a partially mremap()'ed THP and a partially shared one, plus a
PMD-mapped and a swapped-out PMD-mapped THP at the PMD size.  Then come the
four collapse tests (PMD THP only) and the non-anonymous tests, of which the
shared zeropage and the huge zeropage are anonymous private mappings.

This script lists every one of those results (hugetlb ones are listed as out of
scope: the model has no hugetlb), says which scenario words each one needs,
finds out which of those words the parser of this checkout accepts (by parsing
a one-line probe per word), writes one scenario per result that can be written
now, and rewrites the part of docs/peer-coverage.md between its BEGIN/END
markers with the per-test table and the counts.

    python tools/gen_peer_cow.py           # write scenarios and the doc table
    python tools/gen_peer_cow.py --check   # exit 1 if anything is out of date

How cow.c's steps become scenario lines (the adaptations):
- cow.c maps 2*thpsize and uses the aligned half; a scenario mapping starts at
  the start of its 2M slot, so `mmap A <thpsize>` is already aligned and what
  cow.c leaves around it (never touched) is left out; munmap(mem, size) of the
  whole test area becomes `munmap A`.
- cow.c's per-size THP_ALWAYS (PMD size THP_NEVER) becomes `mthp SIZE
  madvise` (and `mthp 2M never`): do_run_with_thp() sets MADV_HUGEPAGE on the
  area anyway, and a per-size `always` would give every process on the machine
  large folios (scenarios/README.md).
- cow.c's "did we get a THP / was it swapped out" checks, which turn into SKIP,
  become `expect` lines (present, swap): a scenario that did not get its
  context fails instead of skipping.
- vmsplice() fills a default-sized pipe (16 pages) and returns early; cow.c
  compares the `transferred` bytes only, so `gup` takes the first 16 pages.
- The child's memcpy(old, mem) backup is `c: expect A R data old` (it reads
  the pages in the child before the parent writes, as cow.c does); memcmp()
  after the parent's memset() is the second one.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "scenarios" / "peer"
DOC = ROOT / "docs" / "peer-coverage.md"
BEGIN = "<!-- BEGIN tools/gen_peer_cow.py: do not edit by hand -->"
END = "<!-- END tools/gen_peer_cow.py -->"

PAGE = 4096
PMD_PAGES = 512
# detect_thp_sizes(): every hugepages-<size>kB with an anon "enabled" file;
# on this machine 16K..2M (8kB is shmem-only).
THP_SIZES_KB = [16, 32, 64, 128, 256, 512, 1024, 2048]

# Words a result may need: the probe line that parses only when the word
# exists, and where the word comes from.
WORDS: dict[str, tuple[str, str]] = {
    "mprotect": ("mmap A 2\nmprotect A 0 read\n", "issue 11 (prot)"),
    "mmap-prot": ("mmap A 1 prot read\n", "issue 11 (prot)"),
    "munmap-range": ("mmap A 2\nmunmap A 0\n", "issue 11 (prot)"),
    "dontfork": ("mmap A 2\nmadvise A 0 dontfork\nmadvise A 0 dofork\n", "issue 11 (forkctl)"),
    "pin": ("mmap A 1\npin A 0 as P\n", "issue 12 (pins)"),
    "pin-readonly": ("mmap A 1\npin A 0 as P readonly\n", "issue 12 (pins)"),
    "ref-data": ("mmap A 1\nwrite A 0 as x\ngup A 0 as R\nexpect R data x\n", "issue 12 (pins)"),
    "collapse": ("mmap A 1\nmadvise A 0 collapse\n", "issue 12 (pins)"),
    # No issue asks for these; the probes never parse.
    "mremap-part": (None, "none: mremap moves a whole mapping; cow.c moves half of one"),
    "gup-fast": (None, "none: no word picks pin_user_pages_fast() over pin_user_pages()"),
}
# Words the parser accepts but the kernel backend refuses on this machine (no
# gup_test; io_uring pins FOLL_WRITE): their scenarios could only run on the
# model, so they are counted but not written into the library.
KERNEL_REFUSED = {"pin-readonly"}
ISSUE11 = {"mprotect", "mmap-prot", "munmap-range", "dontfork"}
ISSUE12 = {"pin", "pin-readonly", "ref-data", "collapse"}


def available_words() -> set[str]:
    """The words of WORDS that this checkout's parser accepts."""
    sys.path.insert(0, str(ROOT / "src"))
    from foliosim.scenario.errors import ScenarioError
    from foliosim.scenario.parser import parse_text

    ok = set()
    for word, (probe, _) in WORDS.items():
        if probe is None:
            continue
        try:
            parse_text(probe, f"<probe {word}>")
        except ScenarioError:
            continue
        ok.add(word)
    return ok


@dataclass
class Result:
    """One cow.c result: a test function run in one context."""

    name: str  # file stem
    desc: str  # cow.c's log line
    test: str  # cow.c test function
    context: str
    needs: set[str]
    lines: list[str] = field(default_factory=list)  # scenario body, None if not written
    see: str = ""
    claim: str = ""
    out_of_scope: str = ""


@dataclass(frozen=True)
class Context:
    """The memory a test function gets: cow.c's do_run_with_*() setups."""

    key: str
    log: str  # cow.c's " ... with ..." suffix
    size_kb: int  # THP size, 4 for the base page
    setup: list[str]
    area: str  # the range fn(mem, size) gets
    area_pages: int
    area_is_mapping: bool  # fn's (mem, size) is the whole scenario mapping
    needs: frozenset[str]


def contexts() -> list[Context]:
    """run_anon_test_case()'s contexts, in its order (hugetlb aside)."""
    out = []
    base_setup = ["mmap A 4K", "madvise A all nohugepage", "write A all as old"]
    out.append(Context("base", "with base page", 4, base_setup, "all", 1, True, frozenset()))
    out.append(
        Context(
            "base-swap",
            "with swapped out base page",
            4,
            [
                "swap 64M",
                *base_setup,
                "madvise A all pageout",
                "expect A all swap  # else cow.c skips: MADV_PAGEOUT did not work",
            ],
            "all",
            1,
            True,
            frozenset(),
        )
    )
    for kb in THP_SIZES_KB:
        pages = kb // 4
        last = pages - 1
        pmd = pages == PMD_PAGES
        sz = f"{kb // 1024}M" if kb >= 1024 else f"{kb}K"
        mthp = [f"mthp {sz} madvise"] if pmd else ["mthp 2M never", f"mthp {sz} madvise"]
        thp = [
            *mthp,
            f"mmap A {sz}",
            "madvise A all hugepage",
            "write A 0 as old",
            f"expect A {last} present  # else cow.c skips: did not get a THP populated",
            "write A all as old",
        ]
        swapped = lambda rng: [
            f"madvise A {rng} pageout",
            f"expect A {rng} swap  # else cow.c skips: MADV_PAGEOUT did not work",
        ]
        tag = f"{kb}k"
        if pmd:
            out.append(
                Context(
                    f"thp-{tag}", f"with THP ({kb} kB)", kb, thp, "all", pages, True, frozenset()
                )
            )
            out.append(
                Context(
                    f"thp-swap-{tag}",
                    f"with swapped-out THP ({kb} kB)",
                    kb,
                    ["swap 64M", *thp, *swapped("all")],
                    "all",
                    pages,
                    True,
                    frozenset(),
                )
            )
        pte = [*thp, "mprotect A 1 read  # PTE-map the THP", "mprotect A 1 readwrite"]
        out.append(
            Context(
                f"pte-{tag}",
                f"with PTE-mapped THP ({kb} kB)",
                kb,
                pte,
                "all",
                pages,
                True,
                frozenset({"mprotect"}),
            )
        )
        out.append(
            Context(
                f"pte-swap-{tag}",
                f"with swapped-out, PTE-mapped THP ({kb} kB)",
                kb,
                ["swap 64M", *pte, *swapped("all")],
                "all",
                pages,
                True,
                frozenset({"mprotect"}),
            )
        )
        single = [*thp, f"madvise A 1-{last} dontneed  # all but a single subpage"]
        out.append(
            Context(
                f"single-pte-{tag}",
                f"with single PTE of THP ({kb} kB)",
                kb,
                single,
                "0",
                1,
                False,
                frozenset(),
            )
        )
        out.append(
            Context(
                f"single-pte-swap-{tag}",
                f"with single PTE of swapped-out THP ({kb} kB)",
                kb,
                ["swap 64M", *single, *swapped("0")],
                "0",
                1,
                False,
                frozenset(),
            )
        )
        out.append(
            Context(
                f"partial-mremap-{tag}",
                f"with partially mremap()'ed THP ({kb} kB)",
                kb,
                thp,
                f"0-{pages // 2 - 1}",
                pages // 2,
                False,
                frozenset({"mremap-part"}),
            )
        )
        shared = [
            *thp,
            f"madvise A 1-{last} dontfork",
            "fork c0  # share only the first page with a child",
            "c0: exit",
            f"madvise A 1-{last} dofork",
        ]
        out.append(
            Context(
                f"partial-shared-{tag}",
                f"with partially shared THP ({kb} kB)",
                kb,
                shared,
                "all",
                pages,
                True,
                frozenset({"dontfork"}),
            )
        )
    return out


def munmap_area(ctx: Context, proc: str = "") -> tuple[str, set[str]]:
    """munmap(mem, size) of the test area: the whole mapping or a partial munmap."""
    if ctx.area_is_mapping:
        return f"{proc}munmap A", set()
    return f"{proc}munmap A {ctx.area}", {"munmap-range"}


# PIPE_DEF_BUFFERS (include/linux/pipe_fs_i.h): cow.c vmsplice()s into a pipe of
# the default size, which takes the first 16 pages and returns early; cow.c then
# compares only the `transferred` bytes.
PIPE_DEF_BUFFERS = 16


def vmsplice_range(ctx: Context) -> str:
    """The pages one vmsplice() of the test area puts into a default-sized pipe."""
    if ctx.area_pages <= PIPE_DEF_BUFFERS:
        return ctx.area
    first = 0 if ctx.area in ("all",) else int(ctx.area.split("-")[0])
    return f"{first}-{first + PIPE_DEF_BUFFERS - 1}"


SEE_FORK = "copy_present_ptes(), do_wp_page(), wp_can_reuse_anon_folio(), mm/memory.c"


def anon_results() -> list[Result]:
    """anon_test_cases[] x run_anon_test_case()'s contexts."""
    out = []
    for ctx in contexts():
        r = ctx.area
        tests = []
        # do_test_cow_in_parent(): fork; child backs up; parent [mprotect dance] writes; child compares.
        for fn, desc, mprot, vmsplice in [
            ("cow_in_parent", "Basic COW after fork()", False, False),
            (
                "cow_in_parent_mprotect",
                "Basic COW after fork() with mprotect() optimization",
                True,
                False,
            ),
            ("vmsplice_in_child", "vmsplice() + unmap in child", False, True),
            (
                "vmsplice_in_child_mprotect",
                "vmsplice() + unmap in child with mprotect() optimization",
                True,
                True,
            ),
        ]:
            needs = set(ctx.needs)
            body = ["fork c", f"c: expect A {r} data old  # child: memcpy(old, mem, size)"]
            if vmsplice:
                um, n = munmap_area(ctx, "c: ")
                needs |= n | {"ref-data"}
                body += [
                    f"c: gup A {vmsplice_range(ctx)} as R  # child: vmsplice() (R/O GUP)",
                    f"{um}  # child unmaps it",
                ]
            if mprot:
                needs.add("mprotect")
                body += [f"mprotect A {r} read", f"mprotect A {r} readwrite"]
            body.append(f"write A {r} as new  # parent: memset(mem, 0xff, size)")
            if vmsplice:
                body.append("c: expect R data old  # the child reads the old data from the pipe")
                claim = (
                    "the child's vmsplice()d pages still hold the old data after the parent wrote"
                )
            else:
                body.append(f"c: expect A {r} data old  # memcmp(old, mem, size) == 0")
                claim = "the child still reads the old data after the parent wrote"
            tests.append((fn, desc, needs, body, claim))
        # do_test_vmsplice_in_parent(): vmsplice before/after fork, parent unmaps, child writes.
        for fn, desc, before in [
            (
                "vmsplice_before_fork",
                "vmsplice() before fork(), unmap in parent after fork()",
                True,
            ),
            ("vmsplice_after_fork", "vmsplice() + unmap in parent after fork()", False),
        ]:
            um, n = munmap_area(ctx)
            needs = set(ctx.needs) | n | {"ref-data"}
            gup = f"gup A {vmsplice_range(ctx)} as R  # parent: vmsplice() (R/O GUP)"
            body = ([gup, "fork c"] if before else ["fork c", gup]) + [
                f"{um}  # parent unmaps it",
                f"c: write A {r} as new  # child: memset(mem, 0xff, size)",
                "c: exit",
                "expect R data old  # the parent reads the old data from the pipe",
            ]
            tests.append(
                (
                    fn,
                    desc,
                    needs,
                    body,
                    "the parent's vmsplice()d pages still hold the old data after the child wrote",
                )
            )
        # do_test_iouring(): R/W longterm pin, then mprotect dance or fork; write; the pin sees it.
        for fn, desc, use_fork in [
            ("iouring_ro", "R/O-mapping a page registered as iouring fixed buffer", False),
            ("iouring_fork", "fork() with an iouring fixed buffer", True),
        ]:
            needs = set(ctx.needs) | {"pin", "ref-data"}
            body = [f"pin A {r} as P  # io_uring_register_buffers()"]
            if use_fork:
                body.append("fork c")
            else:
                needs.add("mprotect")
                body += [f"mprotect A {r} read", f"mprotect A {r} readwrite"]
            body += [
                f"write A {r} as new  # memset(mem, 0xff, size)",
                "expect P data new  # IORING_OP_WRITE_FIXED sees the new data",
            ]
            tests.append((fn, desc, needs, body, "the pinned pages hold what the process wrote"))
        # do_test_ro_pin(): R/O longterm pin on shared / previously shared / R/O exclusive pages.
        for kind, kdesc in [
            ("shared", "shared"),
            ("previously_shared", "previously-shared"),
            ("ro_exclusive", "exclusive"),
        ]:
            for fast in (False, True):
                fn = f"ro_{'fast_' if fast else ''}pin_on_{'ro_' if kind != 'shared' else ''}{kind.replace('ro_', '')}"
                desc = f"R/O GUP{'-fast' if fast else ''} pin on R/O-mapped {kdesc} page"
                needs = (
                    set(ctx.needs)
                    | {"pin-readonly", "ref-data"}
                    | ({"gup-fast"} if fast else set())
                )
                body = []
                if kind in ("shared", "previously_shared"):
                    body.append("fork c")
                    if kind == "previously_shared":
                        body.append("c: exit")
                else:
                    needs.add("mprotect")
                    body += [f"mprotect A {r} read", f"mprotect A {r} readwrite"]
                body += [
                    f"pin A {r} as P readonly  # PIN_LONGTERM_TEST_START: unshares",
                    f"write A {r} as new  # memset(mem, 0xff, size)",
                    "expect P data new  # PIN_LONGTERM_TEST_READ sees the new data",
                ]
                tests.append((fn, desc, needs, body, "the R/O pin sees what the process wrote"))
        for fn, desc, needs, body, claim in tests:
            name = f"cow-{fn.replace('_', '-')}-{ctx.key}"
            see = f"cow.c test_{fn}(), {ctx.log.replace('with ', 'run_with ')}; {SEE_FORK}"
            out.append(
                Result(
                    name,
                    f"{desc} ... {ctx.log}",
                    f"test_{fn}",
                    ctx.key,
                    needs,
                    [*ctx.setup, *body],
                    see,
                    claim,
                )
            )
    for fn in [
        "cow_in_parent",
        "cow_in_parent_mprotect",
        "vmsplice_in_child",
        "vmsplice_in_child_mprotect",
        "vmsplice_before_fork",
        "vmsplice_after_fork",
        "iouring_ro",
        "iouring_fork",
        "ro_pin_on_shared",
        "ro_fast_pin_on_shared",
        "ro_pin_on_ro_previously_shared",
        "ro_fast_pin_on_ro_previously_shared",
        "ro_pin_on_ro_exclusive",
        "ro_fast_pin_on_ro_exclusive",
    ]:
        out.append(
            Result(
                f"cow-{fn}-hugetlb",
                "... with hugetlb",
                f"test_{fn}",
                "hugetlb",
                set(),
                out_of_scope="hugetlb: the model has no hugetlb (MAP_HUGETLB)",
            )
        )
    return out


def collapse_results() -> list[Result]:
    """anon_thp_test_cases[]: do_test_anon_thp_collapse() on a PMD THP."""
    out = []
    thp = [
        "mthp 2M madvise",
        "mmap A 2M",
        "madvise A all hugepage",
        "write A 0 as old",
        "expect A 511 present",
        "write A all as old",
        "mprotect A 1 read  # PTE-map the THP",
        "mprotect A 1 readwrite",
    ]
    # cow.c turns a failed MADV_COLLAPSE into SKIP: here an expectation.
    collapse = ["madvise A all collapse", "expect result ok"]
    for kind, desc, pre, area, post in [
        ("unshared", "collapsing before fork()", [*collapse], "all", []),
        (
            "fully-shared",
            "collapsing after fork() (fully shared)",
            [],
            "all",
            [*collapse],
        ),
        (
            "lower-shared",
            "collapsing after fork() (lower shared)",
            ["madvise A 256-511 dontfork"],
            "0-255",
            ["madvise A all dofork", *collapse],
        ),
        (
            "upper-shared",
            "collapsing after fork() (upper shared)",
            ["madvise A 0-255 dontfork"],
            "256-511",
            ["madvise A all dofork", *collapse],
        ),
    ]:
        needs = {"mprotect", "collapse"} | ({"dontfork"} if "dontfork" in " ".join(pre) else set())
        body = [
            *thp,
            *pre,
            "fork c",
            f"c: expect A {area} data old",
            *post,
            "write A all as new",
            f"c: expect A {area} data old",
        ]
        out.append(
            Result(
                f"cow-anon-thp-collapse-{kind}",
                f"Basic COW after fork() when {desc}",
                f"test_anon_thp_collapse_{kind.replace('-', '_')}",
                "thp-2048k",
                needs,
                body,
                "cow.c do_test_anon_thp_collapse(); collapse_huge_page(), mm/khugepaged.c",
                "the child still reads the old data after the parent wrote the collapsed THP",
            )
        )
    return out


def zeropage_results() -> list[Result]:
    """non_anon_test_cases[] on the shared zeropage and the huge zeropage (both anonymous)."""
    out = []
    for zp, log, setup, area in [
        (
            "zeropage",
            "with shared zeropage",
            ["mmap A 4K", "mmap S 4K prot read", "read A 0", "read S 0"],
            "all",
        ),
        (
            "huge-zeropage",
            "with huge zeropage",
            [
                "thp madvise",
                "mmap A 2M",
                "mmap S 2M prot read",
                "madvise A all hugepage",
                "madvise S all hugepage",
                "read A 0",
                "read S 0",
                "expect A 1 present  # else cow.c skips: did not get THPs populated",
                "expect S 1 present",
            ],
            "all",
        ),
    ]:
        out.append(
            Result(
                f"cow-basic-cow-{zp}",
                f"Basic COW ... {log}",
                "test_cow",
                zp,
                {"mmap-prot"},
                [*setup, f"write A {area} as new", f"expect S {area} data zero  # smem unchanged"],
                "cow.c test_cow(); do_wp_page() on the zero page, mm/memory.c",
                "a write to a page mapping the shared zeropage does not show in another mapping",
            )
        )
        for fast in (False, True):
            fn = f"ro{'_fast' if fast else ''}_pin"
            out.append(
                Result(
                    f"cow-{fn.replace('_', '-')}-{zp}",
                    f"R/O longterm GUP{'-fast' if fast else ''} pin ... {log}",
                    f"test_{fn}",
                    zp,
                    {"mmap-prot", "pin-readonly", "ref-data"} | ({"gup-fast"} if fast else set()),
                    [
                        *setup,
                        "pin A all as P readonly  # unshares the zero page",
                        "write A all as new",
                        "expect P data new",
                    ],
                    "cow.c do_test_ro_pin(RO_PIN_TEST); gup_must_unshare(), mm/gup.c",
                    "the R/O pin of the zero page sees what the process wrote",
                )
            )
    return out


def all_results() -> list[Result]:
    return [*anon_results(), *collapse_results(), *zeropage_results()]


def scenario_text(res: Result) -> str:
    head = [
        f'# {res.name}: cow.c "{res.desc}": {res.claim}.',
        "# Expect: pass on model and kernel.",
        f"# See: {res.see}",
        "# Generated by tools/gen_peer_cow.py from tools/testing/selftests/mm/cow.c (Linux 6.18).",
    ]
    return "\n".join([*head, *res.lines]) + "\n"


def table(results: list[Result], words: set[str]) -> str:
    in_scope = [r for r in results if not r.out_of_scope]
    # Main before issues 11 and 12 had none of the words of WORDS.
    today_words: set[str] = set()
    base = ISSUE11 | ISSUE12

    def count(allowed: set[str]) -> int:
        return sum(1 for r in in_scope if r.needs <= allowed)

    n = len(in_scope)
    lines = [
        (
            f"cow.c's anonymous-memory results here: {n} (14 anon tests x 52 contexts, 4 collapse "
            "tests, 3 zeropage and 3 huge-zeropage tests); the hugetlb runs "
            f"({len(results) - n} per hugetlb size) are out of scope: the model has no hugetlb."
        ),
        "",
        "| language | results expressible | share |",
        "|---|---|---|",
    ]
    for label, allowed in [
        ("today (main, before issues 11 and 12)", today_words),
        ("with issue 11's words", ISSUE11),
        ("with issues 11 and 12", base),
        ("with 11, 12 and a GUP-fast pin word", base | {"gup-fast"}),
        (
            "with 11, 12, GUP-fast and mremap of part of a mapping",
            base | {"gup-fast", "mremap-part"},
        ),
        ("this checkout's parser", words),
        ("this checkout's parser and kernel backend (written below)", words - KERNEL_REFUSED),
    ]:
        c = count(allowed)
        lines.append(f"| {label} | {c} | {100 * c / n:.1f}% |")
    lines += [
        "",
        "Per test function (contexts expressible with this checkout's parser / all; what blocks the rest):",
        "",
        "| cow.c test | written | blocked by |",
        "|---|---|---|",
    ]
    by_test: dict[str, list[Result]] = {}
    for r in in_scope:
        by_test.setdefault(r.test, []).append(r)
    for test, rs in by_test.items():
        done = [r for r in rs if r.needs <= words - KERNEL_REFUSED]
        blockers: dict[str, int] = {}
        for r in rs:
            for w in sorted(r.needs - (words - KERNEL_REFUSED)):
                blockers[w] = blockers.get(w, 0) + 1
        why = (
            ", ".join(
                f"`{w}` ({'model only: the kernel backend refuses it' if w in words else WORDS[w][1]})"
                f" x{k}"
                for w, k in blockers.items()
            )
            or "-"
        )
        lines.append(f"| `{test}` | {len(done)}/{len(rs)} | {why} |")
    lines += ["", "Written scenarios (`scenarios/peer/`):", ""]
    for r in in_scope:
        if r.needs <= words - KERNEL_REFUSED:
            lines.append(f"- `{r.name}.scn`: {r.desc}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = ap.parse_args(argv)
    words = available_words()
    results = all_results()
    want = {
        f"{r.name}.scn": scenario_text(r)
        for r in results
        if not r.out_of_scope and r.needs <= words - KERNEL_REFUSED
    }
    stale = []
    have = {p.name for p in OUT_DIR.glob("cow-*.scn")}
    for name in sorted(have - set(want)):
        stale.append(name)
        if not args.check:
            (OUT_DIR / name).unlink()
    for name, text in want.items():
        path = OUT_DIR / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not args.check:
                OUT_DIR.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    doc = DOC.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    new_doc = doc[:start] + "\n" + table(results, words) + doc[end:]
    if new_doc != doc:
        stale.append(str(DOC.relative_to(ROOT)))
        if not args.check:
            DOC.write_text(new_doc)
    if args.check and stale:
        print("out of date (run python tools/gen_peer_cow.py): " + ", ".join(stale))
        return 1
    print(f"{len(want)} cow.c scenarios; words available: {', '.join(sorted(words)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
