"""The runner's side of the C worker protocol (worker.c): one handle per process."""

from __future__ import annotations

import array
import errno
import os
import select
import signal
import socket
import struct
import subprocess
from pathlib import Path

from foliosim.kernel.errors import KernelBackendError

OP_PING = 1
OP_MMAP = 2
OP_MUNMAP = 3
OP_WRITE = 4
OP_READ = 5
OP_MADVISE = 6
OP_MLOCK = 7
OP_MUNLOCK = 8
OP_FORK = 9
OP_EXIT = 10
OP_GUP_BEGIN = 11
OP_GUP_SPLICE = 12
OP_GUP_END = 13
OP_DRAIN_ALL = 14
OP_DRAIN_LRU_ADD = 15
OP_POKE = 16
OP_BREAK_COW = 17
# Observations: opcodes 40-49.
OP_HARNESS_FAULTS = 40  # val: the worker's own faults, minflt | majflt << 32
OP_MLOCK2 = 41  # arg: mlock2() flags
OP_MLOCKALL = 42  # arg: MCL_* flags; addr, length: the scenario's address range
OP_MUNLOCKALL = 43
# protections, partial unmaps, mremap: 30-39
OP_MPROTECT = 30
OP_MREMAP = 31
# A load or store that ended in a caught signal: ret = -(FAULT_SIG_BASE + signo).
FAULT_SIG_BASE = 4096
# References (issue 12): opcodes 50-59.
OP_PIN = 50
OP_PROCESS_MADVISE = 51
# memcg (issue 13): 60-69
OP_MEMCG_WRITE = 60
OP_MEMCG_FLUSH = 61

NAME_LEN = 72
REQ = struct.Struct(f"<Ii QQQq {NAME_LEN}s{NAME_LEN}s")
REP = struct.Struct("<qq")
REC = struct.Struct(f"<B{NAME_LEN - 1}s")

# How long a worker may take to answer one request before the run is abandoned.
TIMEOUT_S = 30.0


class WorkerError(OSError):
    """A worker's syscall failed; `errno_name` is what the observation reports.

    `page`: for a write, read, poke or splice, the page of the request where it stopped.
    """

    page: int = 0

    @property
    def errno_name(self) -> str:
        return errno.errorcode.get(self.errno or 0, f"E{self.errno}")


class WorkerSignal(WorkerError):
    """A load or store the kernel answered with a signal; the worker caught it."""

    @property
    def errno_name(self) -> str:
        return signal.Signals(self.errno - FAULT_SIG_BASE).name


def _worker_error(ret: int, val: int) -> WorkerError:
    code = -ret
    e: WorkerError
    if code >= FAULT_SIG_BASE:
        e = WorkerSignal(code, signal.strsignal(code - FAULT_SIG_BASE) or "signal")
    else:
        e = WorkerError(code, os.strerror(code))
    e.page = val
    return e


class Worker:
    """A live scenario process (or the poke helper) driven over a SEQPACKET socket."""

    def __init__(self, sock: socket.socket, pid: int, popen: subprocess.Popen | None = None):
        self.sock = sock
        self.pid = pid
        self.popen = popen
        self.pidfd = os.pidfd_open(pid)

    @classmethod
    def spawn(cls, binary: Path, mode: str, cpu: int) -> Worker:
        """Start worker.c as `mode` (worker or helper) pinned to `cpu`."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            popen = subprocess.Popen(
                [str(binary), mode, str(theirs.fileno()), str(cpu)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            theirs.close()
        ours.settimeout(TIMEOUT_S)
        ret, pid = cls._recv_rep(ours)
        if ret != 0 or pid != popen.pid:
            popen.kill()
            raise KernelBackendError(f"kernel backend: worker failed to start ({ret})")
        return cls(ours, pid, popen)

    @staticmethod
    def _recv_rep(sock: socket.socket) -> tuple[int, int]:
        try:
            data = sock.recv(REP.size)
        except TimeoutError:
            raise KernelBackendError("kernel backend: a worker stopped answering") from None
        if len(data) != REP.size:
            raise KernelBackendError("kernel backend: a worker died unexpectedly")
        return REP.unpack(data)

    def _send(
        self,
        op: int,
        arg: int = 0,
        addr: int = 0,
        length: int = 0,
        index0: int = 0,
        pid: int = 0,
        label: str = "",
        mapname: str = "",
        fds: list[int] | None = None,
    ) -> None:
        msg = REQ.pack(op, arg, addr, length, index0, pid, label.encode(), mapname.encode())
        if fds:
            self.sock.sendmsg(
                [msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            )
        else:
            self.sock.send(msg)

    def call(self, op: int, **kw: object) -> int:
        """Send one request; return its value or raise WorkerError with the worker's errno."""
        self._send(op, **kw)  # type: ignore[arg-type]
        ret, val = self._recv_rep(self.sock)
        if ret < 0:
            raise _worker_error(ret, val)
        return val

    def read(self, addr: int, npages: int, index0: int, mapname: str) -> list[str]:
        """Load each page and classify it: its label, 'zero' or 'garbage'."""
        self._send(OP_READ, addr=addr, length=npages, index0=index0, mapname=mapname)
        out: list[str] = []
        while len(out) < npages:
            data = self.sock.recv(REP.size + 512 * REC.size)
            if len(data) < REP.size:
                raise KernelBackendError("kernel backend: a worker died during a read")
            ret, k = REP.unpack_from(data)
            if ret < 0:
                raise _worker_error(ret, k)
            for i in range(k):
                kind, label = REC.unpack_from(data, REP.size + i * REC.size)
                if kind == 0:
                    out.append("zero")
                elif kind == 1:
                    out.append(label.rstrip(b"\0").decode())
                else:
                    out.append("garbage")
        return out

    def fork(self) -> Worker:
        """Fork this worker; the child answers on a new socket of its own."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.settimeout(TIMEOUT_S)
        try:
            self._send(OP_FORK, fds=[theirs.fileno()])
        finally:
            theirs.close()
        ret, child = self._recv_rep(self.sock)
        if ret < 0:
            ours.close()
            raise WorkerError(-ret, os.strerror(-ret))
        cret, cpid = self._recv_rep(ours)
        if cret != 0 or cpid != child:
            raise KernelBackendError("kernel backend: forked worker failed to start")
        return Worker(ours, child)

    def call_with_fd(self, op: int, fd: int, extra: bytes = b"", **kw: object) -> int:
        """Send one request with `fd` (SCM_RIGHTS) and, if given, a second message `extra`."""
        self._send(op, fds=[fd], **kw)  # type: ignore[arg-type]
        if extra:
            self.sock.send(extra)
        ret, val = self._recv_rep(self.sock)
        if ret < 0:
            raise WorkerError(-ret, os.strerror(-ret))
        return val

    def gup_end(self) -> int:
        """Receive the read end of the gup pipe (SCM_RIGHTS); the caller owns it."""
        self._send(OP_GUP_END)
        fds = array.array("i")
        msg, anc, _flags, _addr = self.sock.recvmsg(REP.size, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if len(msg) != REP.size or not fds:
            raise KernelBackendError("kernel backend: no pipe came back from a gup")
        return fds[0]

    def harness_faults(self) -> tuple[int, int]:
        """(minflt, majflt) the worker took for the harness (start, drains, COW breaking)."""
        val = self.call(OP_HARNESS_FAULTS)
        return val & 0xFFFFFFFF, val >> 32

    def exit(self) -> None:
        """Make the process exit and wait until its memory is gone."""
        self.call(OP_EXIT)
        self.wait_gone()

    def wait_gone(self, timeout: float = TIMEOUT_S) -> None:
        # pidfd turns readable once the task has exited, after exit_mm().
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        if not ready:
            raise KernelBackendError(f"kernel backend: process {self.pid} did not exit")
        if self.popen is not None:
            self.popen.wait()
        self.close()

    def kill(self) -> None:
        """Kill the process (cleanup path) and forget it."""
        if self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.close()

    def alive(self) -> bool:
        if self.pidfd < 0:
            return False
        ready, _, _ = select.select([self.pidfd], [], [], 0)
        return not ready

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.sock.close()
