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
