"""A preference run killed with SIGKILL while buying, then resumed: no pair paid twice, the budget holds."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import sigkill_when, start_alband

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[data]
kind = "pairs"
source = "synthetic_candidates"
n_prompts = 60
k = 4
dims = 8

[policy]
name = "{policy}"

[loop]
batch_size = 4
rounds = 40
initial_labels = 4
seed = 2

[budget]
usd = {budget}

[annotators.judge]
kind = "simulated"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 5.0
usd_per_label = 0.001
beta = 1.0
tie_rate = 0.05
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def _rows(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT id, item_id, annotator, label, cost_usd, reserved_usd, status "
                          "FROM annotations ORDER BY id").fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("policy,budget", [("pair_d_design", 5.0), ("gated", 0.08)])
def test_sigkill_mid_preference_run_then_resume(tmp_path, env, policy, budget):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(policy=policy, budget=budget))
    out = tmp_path / "run"
    ledger = out / "ledger.sqlite"
    proc = start_alband("run", str(config), "--out", str(out), "--quiet", env=env)
    sigkill_when(proc, lambda: sum(r[-1] == "settled" for r in _rows(ledger)) >= 30)
    at_kill = _rows(ledger)
    resumed = subprocess.run([sys.executable, "-m", "alband", "resume", str(out), "--quiet"], capture_output=True,
                             text=True, timeout=300, env=env, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(ledger)
    by_id = {r[0]: r for r in rows}
    assert all(by_id.get(r[0]) == r for r in at_kill)  # nothing written before the kill changed
    assert len(rows) > len(at_kill)
    settled = [r for r in rows if r[-1] == "settled"]
    keys = [(r[1], r[2]) for r in settled]
    assert len(keys) == len(set(keys)), "a pair was paid twice"
    reserved = sum(r[5] for r in rows if r[-1] == "reserved")
    assert sum(r[4] for r in settled) + reserved <= budget
    assert any(r[3] is None for r in settled)  # ties are paid invalid answers
    reused = re.search(r"bought (\d+) annotations now, (\d+) taken from the ledger", resumed.stdout)
    assert reused and int(reused.group(1)) + int(reused.group(2)) == len(settled), resumed.stdout
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == list(range(len(metrics)))
    if budget < 1:
        assert "stopped: budget exhausted" in resumed.stdout
