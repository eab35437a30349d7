"""JAX's persistent compilation cache: opt-in with ``ALBAND_JAX_CACHE=1``, under ``$ALBAND_CACHE_DIR/jax``.

Each case runs in a fresh interpreter: the cache folder is process-wide JAX state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import jax; from alband.jax_cache import enable_compilation_cache; "
         "print(enable_compilation_cache()); print(jax.config.jax_compilation_cache_dir)")


def _probe(tmp_path: Path, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ALBAND_JAX_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env={**clean, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT / "src"),
                               "ALBAND_CACHE_DIR": str(tmp_path / "cache"), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("value", ["1", "on", "true"])
def test_alband_jax_cache_1_turns_it_on_under_alband_s_cache_folder(tmp_path, value):
    used, configured = _probe(tmp_path, ALBAND_JAX_CACHE=value)
    assert used == configured == str(tmp_path / "cache" / "jax")
    assert (tmp_path / "cache" / "jax").is_dir()


@pytest.mark.parametrize("value", [None, "0", "off", "false"])
def test_the_cache_is_off_by_default_and_with_0(tmp_path, value):
    used, configured = _probe(tmp_path, **({} if value is None else {"ALBAND_JAX_CACHE": value}))
    assert used == configured == "None"
    assert not (tmp_path / "cache" / "jax").exists()


def test_a_folder_the_user_set_is_left_alone(tmp_path):
    mine = str(tmp_path / "mine")
    used, configured = _probe(tmp_path, JAX_COMPILATION_CACHE_DIR=mine)
    assert used == configured == mine
