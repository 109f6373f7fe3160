"""How `--trace` names the model's objects: folios and user pages by their scenario home.

No kernel counterpart: the kernel's tracepoints print pfns and addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foliosim.model.machine import Machine
    from foliosim.model.types import Mm


def folio_name(m: Machine, folio: int) -> str:
    """How traces name a folio: its scenario home, e.g. 'p0 A 3'."""
    # Model: the linear index plus the mapping that owns that address in any mm.
    index = int(m.mem.index[folio])
    for mm in m.mms.values():
        for mp in mm.mappings.values():
            if mp.start <= index < mp.start + mp.pages:
                return f"{mm.name} {mp.name} {index - mp.start}"
    return f"pfn {folio}"


def vpn_name(mm: Mm, vpn: int) -> str:
    """How traces name a user page: 'p0 A 3'."""
    for mp in mm.mappings.values():
        if mp.start <= vpn < mp.start + mp.pages:
            return f"{mm.name} {mp.name} {vpn - mp.start}"
    return f"{mm.name} {vpn << 12:#x}"
