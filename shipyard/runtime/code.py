"""Shipyard's own flows/ and blocks/ folders, which are loaded from the source tree, not installed.

`flows` and `blocks` are generic names: installed into site-packages they would shadow (or be
shadowed by) any other distribution's modules of the same name. Prefect loads a deployment's
flow by its entrypoint path; Shipyard's own processes (the CLI, in-process runs) put the source
folder on sys.path once, here, before importing a flow or a block type.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from shipyard.compiler.compile import CODE_DIR


def ensure_code_on_path() -> None:
    """Make `flows.*` and `blocks.*` importable in this process."""
    folder = str(CODE_DIR)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def import_code(module: str) -> ModuleType:
    """Import `flows.<name>` or `blocks.<name>` from the source folder."""
    ensure_code_on_path()
    return importlib.import_module(module)
