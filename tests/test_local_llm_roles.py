"""An LLM selector played by a real local model (``real_llm``): a selection round end to end, the
simulator replaying it, and a SIGKILL during the model's selection call then resume.

SmolLM2-135M-Instruct rarely writes the 4 numbers asked for: whatever it writes is
parsed, repaired and counted, the fallback fills the shortfall, and the charge is the
server's token usage at the configured prices. The run's recorded selection replays
in ``alband simulate --selections`` to the live run's accuracies.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from alband.cli.main import main
from fake_llm_server import write_film_reviews
from helpers import sigkill_when, start_alband
from local_llm_fixtures import smollm2_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.real_llm, pytest.mark.slow]

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "margin"

[loop]
batch_size = 2
rounds = 2
initial_labels = 4
seed = {seed}

[budget]
usd = 1.0

[annotators.sim]
kind = "simulated"
usd_per_label = 0.01
flip_rate = 0.0

[selector]
kind = "llm"
provider = "openai"
model = "smollm2"
base_url = "{base_url}"
api_key_env = "ALBAND_LOCAL_LLM_KEY"
max_tokens_param = "max_tokens"
max_tokens = {max_tokens}
timeout_s = 300
max_retries = 0
input_usd_per_mtok = 1.0
output_usd_per_mtok = 4.0
n_candidates = 12
k = 4
prompt = "plain"
"""


def _selections(ledger) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT charge_key, status, cost_usd, reserved_usd, input_tokens, output_tokens, extra "
                          "FROM annotations WHERE kind = 'selection' ORDER BY id").fetchall()


def _accuracies(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["test_accuracy"] for row in rows if "test_accuracy" in row]


def test_a_selection_round_with_the_real_model_is_paid_repaired_and_replays(smollm2_server, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("ALBAND_LOCAL_LLM_KEY", "local")
    write_film_reviews(tmp_path, n=30)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(seed=0, base_url=smollm2_server.base_url, max_tokens=96))
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run), "--quiet"]) == 0, capsys.readouterr().err
    (row,) = _selections(run / "ledger.sqlite")
    key, status, cost, reserved, tokens_in, tokens_out, extra = row
    extra = json.loads(extra)
    assert status == "settled" and tokens_in > 0 and tokens_out > 0
    assert cost == pytest.approx((tokens_in * 1.0 + tokens_out * 4.0) / 1e6, rel=1e-12) and cost <= reserved
    picked, filled = extra["picked"], extra["filled"]
    assert len(picked) + len(filled) == 4 == len(set(picked + filled))
    assert set(picked) <= set(extra["candidates"]) and len(extra["candidates"]) == 12
    assert extra["repairs"]["shortfall"] == len(filled)  # what the model did not give, the fallback filled

    capsys.readouterr()
    assert main(["simulate", str(config), "--seeds", "1", "--json", "--quiet", "--selections", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["selection_replayed"]["initial"] == [True]
    np.testing.assert_allclose(result["per_seed_curves"]["test_accuracy"][0], _accuracies(run), atol=1e-5)


def test_sigkill_during_the_real_models_selection_call_then_resume(smollm2_server, tmp_path, monkeypatch, capsys):
    write_film_reviews(tmp_path, n=30)
    config = tmp_path / "run.toml"
    # a long answer keeps the call in flight long enough to kill the run inside it
    config.write_text(CONFIG.format(seed=1, base_url=smollm2_server.base_url, max_tokens=400))
    out = tmp_path / "killed"
    proc = start_alband("run", str(config), "--out", str(out), "--quiet", env={"ALBAND_LOCAL_LLM_KEY": "local"})
    sigkill_when(proc, lambda: (out / "ledger.sqlite").exists()
                 and any(r[1] == "reserved" for r in _selections(out / "ledger.sqlite")),
                 timeout_s=240, poll_s=0.02)
    at_kill = _selections(out / "ledger.sqlite")
    assert [r[1] for r in at_kill] == ["reserved"]  # killed with the model's answer not yet committed

    monkeypatch.setenv("ALBAND_LOCAL_LLM_KEY", "local")
    assert main(["resume", str(out), "--quiet"]) == 0, capsys.readouterr().err
    after = _selections(out / "ledger.sqlite")
    assert after[0][:4] == at_kill[0][:4]  # the reservation in flight stays, counted in full
    assert [r[1] for r in after] == ["reserved", "settled"] and after[1][0] == at_kill[0][0]
    assert main(["resume", str(out), "--quiet"]) == 0
    assert _selections(out / "ledger.sqlite") == after  # a finished run buys no selection again
    with sqlite3.connect(f"file:{out / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        spent = db.execute("SELECT sum(CASE status WHEN 'reserved' THEN reserved_usd ELSE cost_usd END) "
                           "FROM annotations").fetchone()[0]
    assert spent <= 1.0
