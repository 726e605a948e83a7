"""Where the repository's files are, for tests and helper scripts (importable through pytest.ini's pythonpath)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent
#: the parameter file the launch files give refseg_node
PARAMS_FILE = REPO / "config" / "refseg.yaml"
