"""pytest plugin: the tests see this process as uid 65534, so that a root machine checks the gates.

    PYTHONPATH=tests python -m pytest -p as_non_root -m "not kernel"

Without it a root run cannot show what a user's run skips: the kernel
backend's unavailable_reason() asks os.geteuid(), and here gets 65534.
"""

from __future__ import annotations

import os

os.geteuid = lambda: 65534
