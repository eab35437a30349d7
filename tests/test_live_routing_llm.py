"""``alband run`` with two real SDK annotators (OpenAI cheap, Anthropic strong) under a cascade router,
both talking to the wire-format server of ``fake_llm_server`` on 127.0.0.1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alband.cli.main import main

from fake_llm_server import fake_llm_server, film_review_reply, write_film_reviews  # noqa: F401 - fixture

SECRET = "sk-test-secret-never-written"


def _config(tmp_path: Path, server, budget: float = 1.0) -> Path:
    text = f"""
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "margin"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0

[budget]
usd = {budget}

[annotators.cheap]
kind = "openai"
model = "cheap-model"
base_url = "{server.openai_base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
max_tokens = 32
max_retries = 0

[annotators.strong]
kind = "anthropic"
model = "strong-model"
base_url = "{server.anthropic_base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
max_tokens = 32
max_retries = 0

[routing]
router = "cascade"
annotators = ["cheap", "strong"]
auditor = "strong"
label_weight = "audited"
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_cascade_over_an_openai_and_an_anthropic_annotator(tmp_path, fake_llm_server, monkeypatch, capsys):
    fake_llm_server.api_key = SECRET
    monkeypatch.setenv("ALBAND_TEST_KEY", SECRET)
    fake_llm_server.responder = film_review_reply
    write_film_reviews(tmp_path)
    out = tmp_path / "run"
    budget = 1.0
    assert main(["run", str(_config(tmp_path, fake_llm_server, budget)), "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("SELECT pool_index, annotator, label, cost_usd, reserved_usd, input_tokens, "
                          "output_tokens, status FROM annotations").fetchall()
    assert len(rows) == fake_llm_server.request_count
    by = {name: [r for r in rows if r[1] == name] for name in ("cheap", "strong")}
    assert by["cheap"] and by["strong"], "the cascade paid both annotators"
    paths = {r.path for r in fake_llm_server.requests}
    assert any("chat/completions" in p for p in paths) and any("messages" in p for p in paths)
    pairs = [(r[0], r[1]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert len({r[0] for r in rows}) == 4 + 3 * 4  # every proposed item labelled once
    for _, name, label, cost, reserved, tokens_in, tokens_out, status in rows:
        assert status == "settled" and label in (0, 1) and cost <= reserved
        p_in, p_out = (0.15, 0.60) if name == "cheap" else (3.0, 15.0)
        assert cost == pytest.approx((tokens_in * p_in + tokens_out * p_out) / 1e6, rel=1e-12)
    assert sum(r[3] for r in rows) <= budget

    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    for name in ("cheap", "strong"):
        assert f"  {name}" in report and f"{len(by[name]):>6} calls" in report
        assert f"${sum(r[3] for r in by[name]):.6f}" in report
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the API key was written to {path}"
