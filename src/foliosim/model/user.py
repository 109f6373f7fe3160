"""The user program: its stores and loads, and the data tokens it writes and reads back.

Not kernel code: this is the scenario's process touching its memory through the
MMU, faulting into the model (handle_mm_fault(), mm/memory.c) where the PTE does
not allow the access, as the kernel backend's worker does with real loads and
stores.  Each page stored gets a token naming (label, mapping, page index), so a
later load says whether the page holds what was written there, zeroes, or
something else ("garbage"), as the worker's data check does.
"""

from __future__ import annotations

import numpy as np

from foliosim.model import fault, memory
from foliosim.model import fastpath
from foliosim.model.fastpath import is_fast_run
from foliosim.model.machine import Machine
from foliosim.model.mprotect import vma_is_accessible
from foliosim.model.types import (
    PTE_DIRTY,
    PTE_PRESENT,
    PTE_SPECIAL,
    PTE_SWAP,
    PTE_WRITE,
    PTE_YOUNG,
    ZERO_PFN,
    Mm,
)
from foliosim.scenario.ast import DATA_GARBAGE, DATA_ZERO, Runs

# A token: label id << LABEL_SHIFT | mapping id << MAP_SHIFT | page index; 0 is zeroes.
LABEL_SHIFT = 40
MAP_SHIFT = 24


class UserProgram:
    """What the scenario's processes stored: label and mapping ids of the data tokens."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.labels: dict[str, int] = {}
        self.label_names: list[str] = []
        self.map_ids: dict[str, int] = {}
        self.map_names: list[str] = []

    def token(self, label: str, name: str, index: int) -> int:
        """The token user space stores in page `index` of mapping `name` under `label`."""
        lid = self.labels.get(label)
        if lid is None:
            lid = self.labels[label] = len(self.label_names) + 1
            self.label_names.append(label)
        mid = self.map_ids.get(name)
        if mid is None:
            mid = self.map_ids[name] = len(self.map_names)
            self.map_names.append(name)
        return (lid << LABEL_SHIFT) | (mid << MAP_SHIFT) | index

    def tokens(self, label: str, name: str, first: int, nr: int) -> list[int]:
        """The tokens of `nr` pages from index `first` of mapping `name` under `label`."""
        return [self.token(label, name, first + k) for k in range(nr)]

    def classify(self, tok: int, name: str, index: int) -> str:
        """What a load of page `index` of mapping `name` finds: a label, zero or garbage."""
        if tok == 0:
            return DATA_ZERO
        lid = tok >> LABEL_SHIFT
        mid = (tok >> MAP_SHIFT) & ((1 << (LABEL_SHIFT - MAP_SHIFT)) - 1)
        idx = tok & ((1 << MAP_SHIFT) - 1)
        if self.map_ids.get(name) == mid and idx == index:
            return self.label_names[lid - 1]
        return DATA_GARBAGE

    def user_write(self, mm: Mm, name: str, start: int, end: int, first: int, label: str) -> None:
        """Stores to pages [start, end): a write fault where the PTE does not allow it.

        A fault the kernel answers with SIGSEGV raises AccessError at that page;
        the pages before it hold what was stored.
        """
        m = self.m
        data = m.mem.data
        base = self.token(label, name, first) - start  # + vpn: the page's token
        t = None
        vpn = start - 1
        while vpn + 1 < end:
            vpn += 1
            if t is None or not vpn & 511:
                t = mm.pte_table(vpn)
            i = vpn & 511
            if (
                t is not None
                and not t.bits[i]
                and end - vpn >= fastpath.FAST_RUN_MIN
                and (nr := self._none_run(mm, t, vpn, end)) > 1
            ):
                vma = mm.find_vma(vpn)
                if vma is not None:
                    nr = min(nr, vma.end - vpn)
                if vma is not None and memory.can_do_anonymous_page_run(m, vma, vpn, nr, True):
                    # The faults of a run of none PTEs at once (memory.do_anonymous_page_run()).
                    memory.do_anonymous_page_run(m, vma, vpn, nr, True)
                    t.bits_v[i : i + nr] |= PTE_DIRTY | PTE_YOUNG
                    np.frombuffer(data, np.int64)[t.pfn_v[i : i + nr]] = np.arange(
                        base + vpn, base + vpn + nr, dtype=np.int64
                    )
                    vpn += nr - 1
                    continue
            if t is None or not t.bits[i] & PTE_WRITE:
                pmd = mm.pmds.get(vpn >> 9) if t is None else None
                if pmd is None or not pmd[0] & PTE_WRITE:
                    fault.do_user_addr_fault(m, mm, vpn, write=True)
                t = mm.pte_table(vpn)
                if t is None:
                    # A store through a huge PMD.
                    pmd = mm.pmds[vpn >> 9]
                    pmd[0] |= PTE_DIRTY | PTE_YOUNG
                    data[pmd[1] + i] = base + vpn
                    continue
            t.bits[i] |= PTE_DIRTY | PTE_YOUNG  # the MMU sets them on the store
            data[t.pfn[i]] = base + vpn

    @staticmethod
    def _none_run(mm: Mm, t, vpn: int, end: int) -> int:
        """How many PTEs from vpn's, up to end and the page table's end, are none."""
        i = vpn & 511
        ahead = t.bits_v[i : i + min(end - vpn, 512 - i)]
        nz = np.flatnonzero(ahead)
        return int(nz[0]) if len(nz) else len(ahead)

    @staticmethod
    def _present_run(t, vpn: int, end: int) -> int:
        """How many PTEs from vpn's, up to end and the page table's end, are present."""
        i = vpn & 511
        ahead = t.bits_v[i : i + min(end - vpn, 512 - i)] & PTE_PRESENT
        other = np.flatnonzero(ahead == 0)
        return int(other[0]) if len(other) else len(ahead)

    @staticmethod
    def _swap_run(t, vpn: int, end: int) -> int:
        """How many PTEs from vpn's, up to end and the page table's end, are swap entries."""
        i = vpn & 511
        ahead = t.bits_v[i : i + min(end - vpn, 512 - i)] & (PTE_PRESENT | PTE_SWAP | PTE_SPECIAL)
        other = np.flatnonzero(ahead != PTE_SWAP)
        return int(other[0]) if len(other) else len(ahead)

    def user_read(self, mm: Mm, name: str, runs: Runs) -> list[str]:
        """Loads of every page of the runs: a read fault where nothing is mapped.

        A fault the kernel answers with SIGSEGV raises AccessError at that page.
        """
        m = self.m
        start = mm.mappings[name].start
        out = []
        vma = None
        for first, last in runs:
            skip = 0
            short_until = 0  # the present pages before it are a run too short to batch
            for idx in range(first, last + 1):
                vpn = start + idx
                if vpn < skip:
                    continue  # done by a run
                if vma is None or not vma.start <= vpn < vma.end:
                    vma = mm.find_vma(vpn)
                if vma is None or not vma_is_accessible(vma):
                    # A hole, or a PROT_NONE entry (pte_protnone(): the MMU faults
                    # on it although it maps a page): SIGSEGV.
                    fault.do_user_addr_fault(m, mm, vpn, write=False)
                t = mm.pte_table(vpn)
                i = vpn & 511
                if (
                    t is not None
                    and not t.bits[i]
                    and start + last + 1 - vpn >= fastpath.FAST_RUN_MIN
                    and (nr := self._none_run(mm, t, vpn, min(start + last + 1, vma.end))) > 1
                    and memory.can_do_anonymous_page_run(m, vma, vpn, nr, False)
                    and not m.mem.data[ZERO_PFN]
                ):
                    # The read faults of a run of none PTEs at once: the zero page, zeroes.
                    memory.do_anonymous_page_run(m, vma, vpn, nr, False)
                    t.bits_v[i : i + nr] |= PTE_YOUNG
                    out.extend([DATA_ZERO] * nr)
                    skip = vpn + nr
                    continue
                if (
                    t is not None
                    and t.bits[i] & PTE_SWAP
                    and start + last + 1 - vpn >= fastpath.FAST_RUN_MIN
                    and memory.vma_allows_swap_page_run(m, vma)
                    and (nr := self._swap_run(t, vpn, min(start + last + 1, vma.end))) > 1
                    and memory.can_do_swap_page_run(m, vma, vpn, nr)
                ):
                    # The swap-in faults of a run of swap PTEs at once.
                    memory.do_swap_page_run(m, vma, vpn, nr)
                    t.bits_v[i : i + nr] |= PTE_YOUNG
                    toks = m.mem.view("data")[t.pfn_v[i : i + nr]].tolist()
                    out.extend(self.classify(tok, name, idx + k) for k, tok in enumerate(toks))
                    skip = vpn + nr
                    continue
                nr = 0
                if (
                    t is not None
                    and t.bits[i] & PTE_PRESENT
                    and vpn >= short_until
                    and start + last + 1 - vpn >= fastpath.FAST_RUN_MIN
                ):
                    nr = self._present_run(t, vpn, min(start + last + 1, vma.end))
                    if nr > 1 and not is_fast_run(m, nr):
                        short_until = vpn + nr  # measured once: page by page below
                        nr = 0
                if nr > 1:
                    assert t is not None
                    # Loads of a run of present pages: no fault; the MMU sets young on each.
                    t.bits_v[i : i + nr] |= PTE_YOUNG
                    toks = m.mem.view("data")[t.pfn_v[i : i + nr]].tolist()
                    out.extend(self.classify(tok, name, idx + k) for k, tok in enumerate(toks))
                    skip = vpn + nr
                    continue
                if t is None or not int(t.bits[i]) & PTE_PRESENT:
                    if t is not None or (vpn >> 9) not in mm.pmds:
                        fault.do_user_addr_fault(m, mm, vpn, write=False)
                    t = mm.pte_table(vpn)
                    if t is None:
                        # A load through a huge PMD.
                        pmd = mm.pmds[vpn >> 9]
                        pmd[0] |= PTE_YOUNG
                        out.append(self.classify(int(m.mem.data[pmd[1] + i]), name, idx))
                        continue
                t.bits[i] |= PTE_YOUNG
                out.append(self.classify(int(m.mem.data[int(t.pfn[i])]), name, idx))
        return out
