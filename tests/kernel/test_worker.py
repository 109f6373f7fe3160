"""The C worker faults no page of its own once started: the batches see only scenario pages."""

from __future__ import annotations

import os
import socket

import pytest

from foliosim.kernel.build import worker_binary
from foliosim.kernel.worker import (
    OP_DRAIN_ALL,
    OP_DRAIN_LRU_ADD,
    OP_MADVISE,
    OP_MLOCKALL,
    OP_MMAP,
    OP_MUNMAP,
    OP_PING,
    OP_POKE,
    OP_WRITE,
    Worker,
)

pytestmark = pytest.mark.kernel

ADDR = 0x300000000000
RW = 0x3  # PROT_READ | PROT_WRITE: OP_MMAP takes the PROT_* bits in index0
CPU = max(os.sched_getaffinity(0))


def faults(pid: int) -> tuple[int, int]:
    """(minflt, majflt) of /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7]), int(fields[9])


@pytest.fixture
def worker():
    w = Worker.spawn(worker_binary(), "worker", CPU)
    yield w
    w.kill()


class TestWorkerIsQuiet:
    def test_commands_that_touch_no_scenario_page_fault_nothing(self, worker):
        before = faults(worker.pid)
        for _ in range(50):
            worker.call(OP_PING)
        worker.call(OP_MMAP, addr=ADDR, length=1 << 16, index0=RW)
        worker.call(OP_MADVISE, arg=20, addr=ADDR, length=1 << 16)  # MADV_COLD
        worker.call(OP_DRAIN_ALL)
        worker.call(OP_MUNMAP, addr=ADDR, length=1 << 16)
        assert faults(worker.pid) == before

    def test_a_write_faults_exactly_the_pages_written(self, worker):
        worker.call(OP_MMAP, addr=ADDR, length=8 * 4096, index0=RW)
        before = faults(worker.pid)
        worker.call(OP_WRITE, addr=ADDR, length=8, index0=0, label="x", mapname="A")
        assert faults(worker.pid)[0] - before[0] == 8

    def test_forked_child_is_quiet_after_it_settles(self, worker):
        child = worker.fork()
        try:
            before = faults(child.pid), faults(worker.pid)
            for _ in range(20):
                child.call(OP_PING)
                worker.call(OP_PING)
            assert (faults(child.pid), faults(worker.pid)) == before
        finally:
            child.kill()

    def test_poke_helper_faults_only_the_target_pages(self, worker):
        # GUP faults in the target's pages from the helper's context, and mm_account_fault()
        # counts them in the helper's min_flt: 4 pages poked, 4 faults, none of its own.
        helper = Worker.spawn(worker_binary(), "helper", CPU)
        try:
            worker.call(OP_MMAP, addr=ADDR, length=4 * 4096, index0=RW)
            before = faults(helper.pid)
            helper.call(
                OP_POKE, pid=worker.pid, addr=ADDR, length=4, index0=0, label="p", mapname="A"
            )
            assert faults(helper.pid)[0] - before[0] == 4
            assert worker.read(ADDR, 4, 0, "A") == ["p"] * 4
        finally:
            helper.kill()


class TestHarnessFaults:
    """The worker counts its own faults apart, so minflt less them is the scenario's."""

    def test_a_fresh_worker_counts_every_fault_so_far_as_its_own(self, worker):
        assert worker.harness_faults() == faults(worker.pid)

    def test_a_forked_child_counts_only_the_scenario_pages_it_touches(self, worker):
        worker.call(OP_MMAP, addr=ADDR, length=4 * 4096, index0=RW)
        worker.call(OP_WRITE, addr=ADDR, length=4, index0=0, label="x", mapname="A")
        child = worker.fork()
        try:
            # Reads of present pages fault nothing; one write is one COW fault.  The
            # child's code pages were loaded while it settled (touch_read_only()).
            assert child.read(ADDR, 4, 0, "A") == ["x"] * 4
            child.call(OP_WRITE, addr=ADDR, length=1, index0=0, label="y", mapname="A")
            hmin, hmaj = child.harness_faults()
            minflt, majflt = faults(child.pid)
            assert (minflt - hmin, majflt - hmaj) == (1, 0)
            pmin, _ = worker.harness_faults()
            assert faults(worker.pid)[0] - pmin == 4
        finally:
            child.kill()


    def test_mlockall_current_counts_the_population_of_its_own_memory_as_its_own(self, worker):
        # mm_populate(0, TASK_SIZE) faults the worker's ballast and scratch pages;
        # the worker counts them and unlocks its own VMAs again.
        before, hbefore = faults(worker.pid), worker.harness_faults()
        worker.call(OP_MLOCKALL, arg=1, addr=0x200000000000, length=0x100000000000)
        after, hafter = faults(worker.pid), worker.harness_faults()
        assert after[0] - before[0] == hafter[0] - hbefore[0] > 0
        with open(f"/proc/{worker.pid}/smaps") as f:
            assert not any(ln.startswith("VmFlags:") and " lo " in ln for ln in f)
        worker.call(OP_DRAIN_LRU_ADD)  # the ballast works as before


class TestContentTokens:
    def test_another_pages_token_reads_as_garbage(self, worker):
        worker.call(OP_MMAP, addr=ADDR, length=2 * 4096, index0=RW)
        # Page 0 holds the token of page 1; page 1 the token of mapping B's page 1.
        worker.call(OP_WRITE, addr=ADDR, length=1, index0=1, label="a", mapname="A")
        worker.call(OP_WRITE, addr=ADDR + 4096, length=1, index0=1, label="a", mapname="B")
        assert worker.read(ADDR, 2, 0, "A") == ["garbage", "garbage"]
        assert worker.read(ADDR + 4096, 1, 1, "B") == ["a"]

    def test_reply_of_a_long_read_spans_several_messages(self, worker):
        n = 1300
        worker.call(OP_MMAP, addr=ADDR, length=n * 4096, index0=RW)
        worker.call(
            OP_WRITE, addr=ADDR + 1000 * 4096, length=1, index0=1000, label="m", mapname="A"
        )
        data = worker.read(ADDR, n, 0, "A")
        assert len(data) == n and data[1000] == "m" and data.count("zero") == n - 1


def test_worker_exits_when_its_socket_closes():
    w = Worker.spawn(worker_binary(), "worker", CPU)
    child = w.fork()
    child.sock.shutdown(socket.SHUT_RDWR)
    child.wait_gone(timeout=5)
    w.kill()
