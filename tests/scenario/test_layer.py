"""The scenario layer stands alone: parsing and printing import nothing above it."""

from __future__ import annotations

import subprocess
import sys


def test_scenario_modules_import_only_the_scenario_layer():
    # A fresh interpreter, so modules other tests imported do not hide an import.
    code = (
        "import sys\n"
        "import foliosim.scenario.ast, foliosim.scenario.errors\n"
        "import foliosim.scenario.parser, foliosim.scenario.printer\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('foliosim.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    above = [m for m in out if not m.startswith("foliosim.scenario")]
    assert above == [], f"the scenario layer imports {above}"
