"""The core never imports the shell (ARCHITECTURE.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "alband"
CORE = ["kernels", "pool", "models", "policies", "design", "costs", "stopping", "routing", "simulate", "rounds",
        "stats", "annotation"]
SHELL = ["annotators", "store", "data", "loop", "cli", "runner", "demo", "report", "config", "replay",
         "benchmarks", "task", "sweep", "plugins", "jax_cache"]
FORBIDDEN_LIBRARIES = {"sqlite3", "anthropic", "openai", "httpx", "httpx2", "tqdm", "matplotlib", "requests"}


def _modules(room: str) -> list[Path]:
    path = SRC / room
    return sorted(path.rglob("*.py")) if path.is_dir() else ([path.with_suffix(".py")] if path.with_suffix(".py").exists() else [])


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("room", CORE)
def test_core_room_imports_no_shell(room):
    for module in _modules(room):
        for name in _imports(module):
            parts = name.split(".")
            assert not (parts[0] == "alband" and len(parts) > 1 and parts[1] in SHELL), f"{module}: imports {name}"
            assert parts[0] not in FORBIDDEN_LIBRARIES, f"{module}: imports {name}"


def test_store_imports_no_annotators():
    """The ledger records :class:`alband.annotation.Annotation` records; it never needs an annotator."""
    modules = _modules("store")
    assert modules
    for module in modules:
        for name in _imports(module):
            parts = name.split(".")
            assert parts[:2] != ["alband", "annotators"], f"{module}: imports {name}"


def test_import_alband_is_light():
    import subprocess
    import sys

    code = "import sys, alband; print(','.join(m for m in ('jax','anthropic','openai','cvxpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
