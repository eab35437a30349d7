"""A routed live run killed with SIGKILL while buying, then resumed: nothing bought twice, the budget holds.

The run routes every item with a cascade over three simulated annotators priced
apart (a cheap LLM, a strong LLM about 20x its price, a human auditor). It is
killed once the ledger holds enough settled rows, and ``alband resume`` finishes
it. After resume: at most one settled row per (item, annotator), settled plus
still-reserved dollars within the budget, every row present at kill time
unchanged, contiguous metrics rounds, and resume reports the annotations it
took from the ledger instead of buying them again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import three_simulated_annotators_toml

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("cheap", "strong", "human")
CONFIG = """
[data]
source = "bbc_news"

[policy]
name = "entropy"

[loop]
batch_size = 10
rounds = {rounds}
initial_labels = 10
seed = 0

[budget]
usd = {budget}

""" + three_simulated_annotators_toml(cheap_flip_rate=0.20, strong_label_weight=None, human_usd_per_label=0.002) + """
[routing]
router = "cascade"
annotators = ["cheap", "strong", "human"]
auditor = "human"
audit_rate = 0.3
min_count = 5
"""
_COLUMNS = "id, round, pool_index, annotator, label, cost_usd, reserved_usd, status"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The children's environment: CPU, and one persistent XLA cache so that only the first process compiles."""
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}


def _rows(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT {_COLUMNS} FROM annotations ORDER BY id").fetchall()


def _n_settled(ledger: Path) -> int:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM annotations WHERE status = 'settled'").fetchone()[0]


def _run_until(config: Path, out: Path, settled_rows: int, env: dict[str, str]) -> list[tuple]:
    """Start ``alband run``, SIGKILL it once ``settled_rows`` rows are settled; the ledger's rows at that moment."""
    proc = subprocess.Popen([sys.executable, "-m", "alband", "run", str(config), "--out", str(out), "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ledger = out / "ledger.sqlite"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if ledger.exists():
                try:
                    if _n_settled(ledger) >= settled_rows:
                        break
                except sqlite3.Error:
                    pass
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _rows(ledger)


@pytest.mark.slow
@pytest.mark.parametrize("budget,rounds,kill_at", [(50.0, 10, 80), (0.01, 15, 40)], ids=["ample", "binding"])
def test_sigkill_mid_routed_run_then_resume(tmp_path, env, budget, rounds, kill_at):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(budget=budget, rounds=rounds))
    out = tmp_path / "run"
    ledger = out / "ledger.sqlite"
    at_kill = _run_until(config, out, kill_at, env)
    settled_at_kill = [r for r in at_kill if r[-1] == "settled"]
    assert len(settled_at_kill) >= kill_at

    resumed = subprocess.run([sys.executable, "-m", "alband", "resume", str(out), "--quiet"], capture_output=True,
                             text=True, timeout=300, env=env, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr
    rows = _rows(ledger)

    # Every row present at kill time is still there, unchanged (settled answers and open reservations alike).
    by_id = {r[0]: r for r in rows}
    assert all(by_id.get(r[0]) == r for r in at_kill)
    assert len(rows) > len(at_kill)  # and the run went on from there
    settled = [r for r in rows if r[-1] == "settled"]
    pairs = [(r[2], r[3]) for r in settled]
    assert len(pairs) == len(set(pairs)), "an (item, annotator) pair was settled twice"
    assert {r[3] for r in rows} <= set(NAMES)
    reserved_usd = sum(r[6] for r in rows if r[-1] == "reserved")
    assert sum(r[5] for r in settled) + reserved_usd <= budget

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == list(range(len(metrics)))
    # The run's spend counts a row left 'reserved' by the kill at its reservation: that call may have been
    # billed (the ledger's conservative rule), even when resume bought the pair again.
    assert metrics[-1]["spent_usd"] == pytest.approx(sum(r[5] for r in settled) + reserved_usd, rel=1e-4)

    # Resume replayed the router over the ledger: the answers settled before the kill were taken from it.
    reused = re.search(r"bought (\d+) annotations now, (\d+) taken from the ledger", resumed.stdout)
    assert reused, resumed.stdout
    bought, taken = int(reused.group(1)), int(reused.group(2))
    assert bought + taken == len(settled)
    # An item whose arms were only partly settled at the kill is not bought again when the rest no longer fits.
    assert len(settled_at_kill) - (len(NAMES) - 1) <= taken <= len(settled_at_kill)
    if budget < 1:
        assert "stopped: budget exhausted" in resumed.stdout and len(metrics) - 1 < rounds
    else:
        assert "stopped: rounds done" in resumed.stdout and len(metrics) - 1 == rounds
        assert {r[3] for r in settled} == set(NAMES)  # the cascade escalated and audited
