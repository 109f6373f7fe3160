"""The scenario processes' capabilities: capable(), kernel/capability.c, Linux 6.18.

Both kernel harnesses start the scenario's processes as themselves, so those
have the effective capabilities of the foliosim process (cred->cap_effective).
The model gives its processes the same set, read from /proc/self/status; on
this machine root runs in a container whose bounding set lacks
CAP_SYS_RESOURCE (CapEff 0x1fffeffffff), which F_SETPIPE_SZ checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foliosim.model.machine import Machine

# include/uapi/linux/capability.h
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
CAP_FULL_SET = (1 << 41) - 1  # CAP_LAST_CAP 40: root with every capability


def cap_effective_of_caller() -> int:
    """The CapEff mask of this process (/proc/self/status), root's full set where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return CAP_FULL_SET


def capable(m: Machine, cap: int) -> bool:
    """capable(), kernel/capability.c, Linux 6.18: the capability is in the caller's effective set."""
    return bool(m.cap_effective >> cap & 1)
