"""The CPUs racing with reclaim's lazyfree unmap, each written once, and the tests they make.

Reclaim (CPU 0) is recorded from the model (foliosim.race.record).  Against it:

- `gup-fast` (store buffering): GUP-fast, gup_fast_pte_range() in mm/gup.c,
  Linux 6.18: read the PTE locklessly, take a reference with
  try_grab_folio_fast() -> folio_try_get() (atomic_add_unless(), fully ordered
  when it succeeds), re-read the PTE and back off (gup_put_folio()) if it
  changed.  Bad: reclaim discards the folio while GUP-fast goes on using it.
- `gup-put` (message passing): a GUP user that got its reference earlier
  writes the page, folio_mark_dirty() (set_bit(PG_dirty); for an anon folio
  noop_dirty_folio()'s test-and-set, modelled as the weaker plain store) and
  drops the reference with folio_put() (atomic_dec_and_test(), fully
  ordered).  Bad: reclaim sees the reference gone but PG_dirty clear, and
  discards data that was just written.

Locations: pte (1 = present, mapping the folio; 0 = cleared), refcount
(folio->_refcount), mapcount (folio_mapcount()), pg_dirty (PG_dirty), data
(the page's contents).
"""

from __future__ import annotations

from foliosim.race.ir import (
    AddUnless,
    DecAndTest,
    If,
    Let,
    Op,
    Read,
    Reg,
    Test,
    Thread,
    Write,
)
from foliosim.race.record import Setup

ORDERINGS = ("gup-fast-ordering",)


def gup_fast(relaxed: bool = False) -> Thread:
    """GUP-fast on the folio's PTE: gup_fast_pte_range(), mm/gup.c, Linux 6.18."""
    order = "relaxed" if relaxed else "mb"
    body = (
        Read(
            "pte_seen", "pte", "READ_ONCE", "ptep_get_lockless", "ptep_get_lockless(): read the PTE"
        ),
        If(
            Reg("pte_seen"),
            (
                AddUnless(
                    "took",
                    "refcount",
                    1,
                    0,
                    order,
                    "folio_try_get",
                    "try_grab_folio_fast() -> folio_try_get(): "
                    "atomic_add_unless(&folio->_refcount, 1, 0)",
                ),
                If(
                    Reg("took"),
                    (
                        Read(
                            "pte_again",
                            "pte",
                            "READ_ONCE",
                            "ptep_get",
                            "ptep_get(): re-read the PTE",
                        ),
                        If(
                            Op("!=", (Reg("pte_again"), Reg("pte_seen"))),
                            (
                                DecAndTest(
                                    "put",
                                    "refcount",
                                    "gup_put_folio",
                                    "gup_put_folio(): the PTE changed, back off",
                                ),
                            ),
                            (Let("gup_uses", 1, "GUP-fast returns the page to its caller"),),
                        ),
                    ),
                ),
            ),
        ),
    )
    return Thread("GUP-fast", "get_user_pages_fast() -> gup_fast_pte_range() (mm/gup.c)", body)


def gup_put() -> Thread:
    """A GUP user that holds a reference: write, folio_mark_dirty(), folio_put()."""
    body = (
        Write("data", 1, "WRITE_ONCE", "memcpy", "the write through the GUP reference"),
        Write(
            "pg_dirty",
            1,
            "WRITE_ONCE",
            "folio_mark_dirty",
            "folio_mark_dirty(): set PG_dirty (no ordering of its own)",
        ),
        DecAndTest(
            "put", "refcount", "folio_put", "folio_put(): atomic_dec_and_test(&folio->_refcount)"
        ),
    )
    return Thread(
        "GUP user", "a get_user_pages() reference: write, folio_mark_dirty(), folio_put()", body
    )


def tests(reclaim: Thread, setup: Setup, without: tuple[str, ...] = ()) -> list[Test]:
    """The two tests: reclaim against GUP-fast, and against a GUP user dropping its reference."""
    init = {
        "pte": 1,
        "refcount": setup.refcount,
        "mapcount": setup.mapcount,
        "pg_dirty": setup.dirty,
    }
    relaxed = "gup-fast-ordering" in without
    sb = Test(
        name="lazyfree-gup-fast",
        doc="reclaim clears the PTE, then reads the refcount; GUP-fast raises the refcount, "
        "then re-reads the PTE (store buffering: smp_mb() against folio_try_get())",
        init=dict(init),
        threads=[reclaim, gup_fast(relaxed)],
        exists=[{"0:discarded": 1, "1:gup_uses": 1}],
        bad="reclaim discards the folio while GUP-fast goes on using it",
    )
    mp = Test(
        name="lazyfree-gup-put",
        doc="a GUP user writes the page, sets PG_dirty and drops its reference; reclaim reads "
        "the refcount, then PG_dirty (message passing: folio_put() against smp_rmb())",
        init={**init, "refcount": setup.refcount + 1, "data": 0},
        threads=[reclaim, gup_put()],
        exists=[{"0:discarded": 1}],
        bad="reclaim discards the folio although a write made through a GUP reference "
        "is in it (the write is lost)",
    )
    return [sb, mp]
