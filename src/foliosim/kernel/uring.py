"""io_uring from the runner, by raw system calls (no liburing): the rings of `pin`.

The runner creates one ring per pinned run; the worker takes its fd (pidfd_getfd(2):
an io_uring fd cannot be sent by SCM_RIGHTS), registers the run as the ring's
fixed buffer (IORING_REGISTER_BUFFERS:
io_sqe_buffer_register(), io_uring/rsrc.c pins the pages FOLL_WRITE |
FOLL_LONGTERM against the worker's mm) and closes its copy.  The runner keeps
the ring, reads the pinned pages back with IORING_OP_WRITE_FIXED into a pipe
(`expect REF data`), and unpins them with IORING_UNREGISTER_BUFFERS
(`release REF`), which is synchronous, unlike closing the ring (the ring's
teardown runs later in a workqueue, io_ring_exit_work()).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

NR_io_uring_setup = 425
NR_io_uring_enter = 426
NR_io_uring_register = 427
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_OP_WRITE_FIXED = 5
IORING_ENTER_GETEVENTS = 1
IORING_FEAT_SINGLE_MMAP = 1
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
SPLICE_F_NONBLOCK = 2
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032

SQE = struct.Struct("<BBHiQQIIQHHiQQ")  # struct io_uring_sqe, 64 bytes
CQE = struct.Struct("<QiI")  # struct io_uring_cqe, 16 bytes
PAGE_SIZE = 4096


class _SqOff(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped", "array",
                 "resv1")] + [("user_addr", ctypes.c_uint64)]  # fmt: skip


class _CqOff(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes", "flags",
                 "resv1")] + [("user_addr", ctypes.c_uint64)]  # fmt: skip


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in
                ("sq_entries", "cq_entries", "flags", "sq_thread_cpu", "sq_thread_idle",
                 "features", "wq_fd")] + [("resv", ctypes.c_uint32 * 3), ("sq_off", _SqOff),
                                          ("cq_off", _CqOff)]  # fmt: skip


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: int | ctypes._Pointer | ctypes.c_void_p | None) -> int:
    conv = [a if not isinstance(a, int) else ctypes.c_long(a) for a in args]
    r = _libc.syscall(ctypes.c_long(nr), *conv)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int(r)


class Ring:
    """One io_uring (2 entries): its fd, its mmapped rings, at most one fixed buffer."""

    def __init__(self) -> None:
        p = _Params()
        self.fd = _syscall(NR_io_uring_setup, 2, ctypes.byref(p))
        self.p = p
        try:
            sq_sz = p.sq_off.array + p.sq_entries * 4
            cq_sz = p.cq_off.cqes + p.cq_entries * CQE.size
            if p.features & IORING_FEAT_SINGLE_MMAP:
                sq_sz = cq_sz = max(sq_sz, cq_sz)
            self.sq = mmap.mmap(self.fd, sq_sz, offset=IORING_OFF_SQ_RING)
            self.cq = (
                self.sq
                if p.features & IORING_FEAT_SINGLE_MMAP
                else mmap.mmap(self.fd, cq_sz, offset=IORING_OFF_CQ_RING)
            )
            self.sqes = mmap.mmap(self.fd, p.sq_entries * SQE.size, offset=IORING_OFF_SQES)
        except BaseException:
            os.close(self.fd)
            raise

    def _u32(self, m: mmap.mmap, off: int) -> int:
        return int(struct.unpack_from("<I", m, off)[0])

    def write_fixed(self, fd: int, addr: int, length: int) -> int:
        """IORING_OP_WRITE_FIXED of [addr, addr+length) of fixed buffer 0 to `fd`: bytes written."""
        p = self.p
        tail = self._u32(self.sq, p.sq_off.tail)
        idx = tail & self._u32(self.sq, p.sq_off.ring_mask)
        off_any = (1 << 64) - 1  # -1: the file's position (a pipe has none)
        SQE.pack_into(
            self.sqes, idx * SQE.size, IORING_OP_WRITE_FIXED, 0, 0, fd, off_any, addr, length,
            0, 1, 0, 0, 0, 0, 0,
        )  # fmt: skip
        struct.pack_into("<I", self.sq, p.sq_off.array + idx * 4, idx)
        struct.pack_into("<I", self.sq, p.sq_off.tail, (tail + 1) & 0xFFFFFFFF)
        _syscall(NR_io_uring_enter, self.fd, 1, 1, IORING_ENTER_GETEVENTS, None, 0)
        head = self._u32(self.cq, p.cq_off.head)
        cidx = head & self._u32(self.cq, p.cq_off.ring_mask)
        _data, res, _flags = CQE.unpack_from(self.cq, p.cq_off.cqes + cidx * CQE.size)
        struct.pack_into("<I", self.cq, p.cq_off.head, (head + 1) & 0xFFFFFFFF)
        if res < 0:
            raise OSError(-res, os.strerror(-res))
        return int(res)

    def unregister_buffers(self) -> None:
        """IORING_UNREGISTER_BUFFERS: the pinned pages are unpinned before it returns."""
        _syscall(NR_io_uring_register, self.fd, IORING_UNREGISTER_BUFFERS, None, 0)

    def close(self) -> None:
        for m in {id(x): x for x in (self.sq, self.cq, self.sqes)}.values():
            m.close()
        os.close(self.fd)


def tee(fd_in: int, fd_out: int, length: int) -> int:
    """tee(2), SPLICE_F_NONBLOCK: duplicate up to `length` bytes of one pipe into another."""
    _libc.tee.restype = ctypes.c_ssize_t
    r = _libc.tee(
        ctypes.c_int(fd_in), ctypes.c_int(fd_out), ctypes.c_size_t(length),
        ctypes.c_uint(SPLICE_F_NONBLOCK),
    )  # fmt: skip
    if r < 0:
        e = ctypes.get_errno()
        if e == 11:  # EAGAIN: the pipe is empty
            return 0
        raise OSError(e, os.strerror(e))
    return int(r)


def token_page(label: bytes, mapname: str, index: int) -> bytes:
    """The page worker.c stores for (label, mapping, index): make_token_page()."""
    tok = b"fsim:" + label + b":" + mapname.encode() + b":" + str(index).encode() + b"\n"
    return (tok * (PAGE_SIZE // len(tok) + 1))[:PAGE_SIZE]


def classify_page(buf: bytes, mapname: str, index: int) -> str:
    """What a page holds, as worker.c's do_read() says it: its label, 'zero' or 'garbage'."""
    if buf.count(0) == len(buf):
        return "zero"
    if buf.startswith(b"fsim:"):
        label = buf[5:].split(b":", 1)[0]
        if label and buf == token_page(label, mapname, index):
            return label.decode()
    return "garbage"


def read_pipe_pages(fd: int, nbytes: int) -> list[bytes]:
    """Read exactly `nbytes` (whole pages) from a pipe holding them; a page per entry."""
    data = bytearray()
    while len(data) < nbytes:
        chunk = os.read(fd, nbytes - len(data))
        if not chunk:
            break
        data += chunk
    return [bytes(data[k : k + PAGE_SIZE]) for k in range(0, len(data), PAGE_SIZE)]
