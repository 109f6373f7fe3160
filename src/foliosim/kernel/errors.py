"""Errors of the live-kernel backend."""

from __future__ import annotations


class KernelBackendError(Exception):
    """The kernel backend refused or could not run a scenario; `str()` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
