"""The core never imports the shell (ARCHITECTURE.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "alband"
CORE = ["kernels", "pool", "models", "policies", "design", "costs", "stopping", "routing", "simulate", "rounds",
        "stats", "annotation", "purchase"]
SHELL = ["annotators", "store", "data", "loop", "cli", "runner", "demo", "report", "config", "replay",
         "benchmarks", "task", "sweep", "plugins", "jax_cache", "cpu_threads", "export"]
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


def test_the_live_loop_does_not_import_the_simulator():
    """The live driver shares the round's steps and the purchase rule through alband.rounds and alband.purchase."""
    for module in _modules("loop") + _modules("live"):
        for name in _imports(module):
            parts = name.split(".")
            assert not (parts[0] == "alband" and len(parts) > 1 and parts[1] == "simulate"), f"{module}: imports {name}"


def _calls(path: Path, attribute: str, owner: str) -> int:
    """Calls ``<...owner>.attribute(...)`` in a module (e.g. ``spec.policy.select``)."""
    return sum(1 for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute
               and ast.unparse(node.func.value).endswith(owner))


def test_the_round_step_sequence_and_the_pay_rule_are_written_once():
    """Outside the policies and routers themselves, only alband.rounds calls a policy's select / update and a
    learner's fit, and only alband.purchase decides what a routed item pays."""
    drivers = [path for room in ("rounds", "loop", "live", "simulate", "runner", "purchase") for path in _modules(room)]
    for owner, attribute, home in (("policy", "select", "rounds.py"), ("policy", "update", "rounds.py"),
                                   ("policy", "init", "rounds.py"), ("learner", "fit", "rounds.py"),
                                   ("router", "decide", "routed.py"), ("router", "update", "routed.py")):
        callers = [path.name for path in drivers if _calls(path, attribute, owner)]
        assert callers == [home], (owner, attribute, callers)
    rule = [path.name for path in drivers if "item_purchase(" in path.read_text()]
    assert sorted(rule) == ["episode.py", "loop.py", "rule.py"]  # defined once, called by the two drivers
