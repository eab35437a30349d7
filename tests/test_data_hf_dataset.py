"""A `table` source that is a Hugging Face dataset folder, checked in a separate interpreter.

The checks (``tests/hf_dataset_checks.py``) import ``datasets`` and so pyarrow and its thread pools; they
run in their own process so that none of it stays in a test worker that compiles JAX programs. (Workers
that aborted in XLA's compiler in full runs had reached the per-process limit on memory mappings; see
tests/conftest.py. pyarrow was suspected first and is not known to be involved.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# find_spec, not importorskip: importing datasets here would load it into this worker.
if importlib.util.find_spec("datasets") is None:
    pytest.skip("the 'datasets' library (alband[hf]) is not installed", allow_module_level=True)
CHECKS = Path(__file__).with_name("hf_dataset_checks.py")


def test_hf_dataset_folders_as_table_sources(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider", "-p", "no:xdist",
         "--rootdir", str(CHECKS.parent.parent), "--basetemp", str(tmp_path / "checks")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
