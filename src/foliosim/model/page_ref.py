"""Folio reference counts: include/linux/page_ref.h, Linux 6.18.

The lowest layer of the model with mm.py and page_flags.py: it imports only types.py
(and cost.py, the counting hook, which imports nothing of the model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foliosim.model import cost

if TYPE_CHECKING:
    from foliosim.model.machine import Machine


def folio_ref_count(m: Machine, folio: int) -> int:
    """The folio's reference count.
    folio_ref_count(), include/linux/page_ref.h, Linux 6.18.
    """
    return int(m.mem.refcount[folio])


def folio_ref_add(m: Machine, folio: int, nr: int) -> None:
    """Take nr references.
    folio_ref_add(), include/linux/page_ref.h, Linux 6.18.
    """
    cost.count("refcount_atomic")
    m.mem.refcount[folio] += nr


def folio_ref_sub_and_test(m: Machine, folio: int, nr: int) -> bool:
    """Drop nr references; True if none is left.
    folio_ref_sub_and_test(), include/linux/page_ref.h, Linux 6.18.
    """
    cost.count("refcount_atomic")
    m.mem.refcount[folio] -= nr
    return m.mem.refcount[folio] == 0
