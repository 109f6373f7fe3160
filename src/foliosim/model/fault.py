"""The user page fault's entry: arch/x86/mm/fault.c (do_user_addr_fault()).

What happens between the MMU refusing a user load or store and
handle_mm_fault(): find the VMA, check the access against its flags, and
deliver SIGSEGV where either fails.  The runner catches the signal (the
kernel backend's worker does so with sigsetjmp()/siglongjmp()), so the
process lives on; the model raises AccessError("SIGSEGV").
"""

from __future__ import annotations

from foliosim.model import memory
from foliosim.model.errors import AccessError
from foliosim.model.machine import Machine
from foliosim.model.mprotect import vma_is_accessible
from foliosim.model.types import VM_WRITE, Mm, Vma


def access_error(write: bool, vma: Vma) -> bool:
    """access_error(), arch/x86/mm/fault.c, Linux 6.18: the VMA does not allow this access."""
    if write:
        return not vma.flags & VM_WRITE
    return not vma_is_accessible(vma)


def do_user_addr_fault(m: Machine, mm: Mm, vpn: int, write: bool) -> None:
    """do_user_addr_fault(), arch/x86/mm/fault.c, Linux 6.18: handle_mm_fault(), or SIGSEGV.

    No VMA at the address is bad_area(); one whose flags refuse the access is
    bad_area_access_error(): both end in SIGSEGV (SEGV_MAPERR, SEGV_ACCERR).
    """
    vma = mm.find_vma(vpn)
    if vma is None or access_error(write, vma):
        if m.tracing:
            why = "no VMA" if vma is None else "VMA refuses the access"
            m.trace("do_user_addr_fault", f"{'write' if write else 'read'} at {vpn << 12:#x}: {why}: SIGSEGV")
        raise AccessError("SIGSEGV", vpn)
    memory.handle_mm_fault(m, vma, vpn, write)
