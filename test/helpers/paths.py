"""Where the repository's files are, for tests and helper scripts (importable through pytest.ini's pythonpath)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent
TOOLS = REPO / "tools"


def load_tool(name: str) -> ModuleType:
    """The script ``tools/<name>.py`` as a module (registered under ``name``, which dataclasses
    need to find their module)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
#: the parameter file the launch files give refseg_node
PARAMS_FILE = REPO / "config" / "refseg.yaml"
