"""Errors raised inside the model."""

from __future__ import annotations


class InvariantError(Exception):
    """A model state that Linux could never be in: a bug in the model.

    The message names the validate_* function, the object and both sides; the
    backend prefixes the scenario line that led there.
    """


class SyscallError(Exception):
    """A modelled syscall failed with `errno` (its name, e.g. "EINVAL")."""

    def __init__(self, errno: str) -> None:
        super().__init__(errno)
        self.errno = errno


class NotModelled(Exception):
    """A kernel path the model does not have yet (memcg, issue 13): the run is refused
    at that line rather than diverge from Linux."""
class OomKilled(Exception):
    """The memcg OOM killer chose the task whose fault charged (memcg, issue 13):
    mem_cgroup_out_of_memory() sent it SIGKILL, its charge failed (try_charge_memcg():
    passed_oom && task_is_dying()), and it dies on the way back to user space."""

    def __init__(self, victim: str) -> None:
        super().__init__(victim)
        self.victim = victim


class AccessError(SyscallError):
    """A user access, or a GUP, stopped at page `vpn`: `errno` is "SIGSEGV" (a load or
    store the kernel answered with the signal) or "EFAULT" (a GUP it refused).

    `pages` holds what a GUP took before it stopped (its references are held).
    """

    def __init__(self, errno: str, vpn: int, pages: list[int] | None = None) -> None:
        super().__init__(errno)
        self.vpn = vpn
        self.pages = pages if pages is not None else []
