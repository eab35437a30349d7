"""Shared fixtures: where the project and ../shared/data are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ALBAND_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; skips the test when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="module")
def _compiled_code_released():
    """Drop JAX's compiled executables after each test module.

    Every XLA:CPU compilation maps its machine code, read-only data and data as
    separate memory regions (about three per executable), and they stay mapped
    while JAX caches the executable. A test worker gained about 10,000
    mappings in three minutes of simulator tests; over a whole suite it nears
    the kernel's limit per process (``vm.max_map_count``, 65,530 by default),
    where XLA can no longer map new code ("LLVM compilation error: Cannot
    allocate memory") and workers died with "Fatal Python error: Aborted" in
    the compiler. ``jax.clear_caches()`` unmaps them (200 executables: 1,093
    mappings before, 502 after). Modules rarely share a compiled function, so
    clearing between modules costs little.
    """
    yield
    import jax

    jax.clear_caches()
