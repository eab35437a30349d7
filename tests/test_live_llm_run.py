"""``alband run`` with real SDK annotators talking to a local wire-format server on 127.0.0.1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alband.cli.main import main

from fake_llm_server import fake_llm_server, film_review_reply, write_film_reviews  # noqa: F401 - fixture

SECRET = "sk-test-secret-never-written"


def _config(tmp_path: Path, kind: str, base_url: str, budget: float = 1.0) -> Path:
    text = f"""
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0
annotator = "llm"

[budget]
usd = {budget}

[annotators.llm]
kind = "{kind}"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 32
max_retries = 0
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_run_with_sdk_annotator_records_dollars_from_usage(tmp_path, fake_llm_server, monkeypatch, kind, capsys):
    fake_llm_server.api_key = SECRET
    monkeypatch.setenv("ALBAND_TEST_KEY", SECRET)
    fake_llm_server.responder = film_review_reply
    write_film_reviews(tmp_path)
    base = fake_llm_server.openai_base_url if kind == "openai" else fake_llm_server.anthropic_base_url
    out = tmp_path / "run"
    assert main(["run", str(_config(tmp_path, kind, base)), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("SELECT pool_index, label, cost_usd, input_tokens, output_tokens, response_id, status "
                          "FROM annotations").fetchall()
    assert len(rows) == 4 + 3 * 4 == fake_llm_server.request_count
    assert len({r[0] for r in rows}) == len(rows)
    for _, label, cost, tokens_in, tokens_out, response_id, status in rows:
        assert status == "settled" and response_id and label in (0, 1)
        assert cost == pytest.approx((tokens_in * 2.0 + tokens_out * 10.0) / 1e6, rel=1e-12)
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key was written to {path}"


def test_budget_stops_a_paid_run_before_it_is_exceeded(tmp_path, fake_llm_server, monkeypatch, capsys):
    fake_llm_server.api_key = SECRET
    monkeypatch.setenv("ALBAND_TEST_KEY", SECRET)
    fake_llm_server.responder = film_review_reply
    write_film_reviews(tmp_path)
    out = tmp_path / "run"
    budget = 0.004  # a few requests' worst case
    config = _config(tmp_path, "openai", fake_llm_server.openai_base_url, budget=budget)
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert "stopped: budget exhausted" in capsys.readouterr().out
    with sqlite3.connect(out / "ledger.sqlite") as db:
        spent = db.execute("SELECT sum(cost_usd) FROM annotations").fetchone()[0]
        n = db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    assert 0 < n < 16 and spent <= budget
