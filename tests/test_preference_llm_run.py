"""A preference run with an LLM judge asking both orders (local wire-format server), then its DPO export."""

from __future__ import annotations

import json

import pytest

from alband.cli.main import main
from alband.store.ledger import Ledger
from fake_llm_server import FakeLLMServer, Reply

KEY_ENV = "ALBAND_TEST_PAIR_RUN_KEY"


def prefer_helpful(request) -> Reply:
    """A judge that prefers the response containing 'Helpful', whichever position it is shown in."""
    text = request.prompt_text
    shown_a = text.split("<response_a>")[1].split("</response_a>")[0]
    return Reply(text=json.dumps({"label": "A" if "Helpful" in shown_a else "B", "confidence": 0.9}))


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_llm_judge_both_orders_live_run_and_dpo_export(tmp_path, monkeypatch, capsys, provider):
    monkeypatch.setenv(KEY_ENV, "test-key")
    rows = [{"id": f"t{i}", "prompt": f"Question {i} about topic {i * 7}?", "chosen": f"Helpful answer {i} with care.",
             "rejected": f"Rude reply {i}."} for i in range(12)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeLLMServer(api_key="test-key") as server:
        server.responder = prefer_helpful
        base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
        (tmp_path / "run.toml").write_text(f"""
[data]
kind = "pairs"
source = "trl"
path = "prefs.jsonl"
embedder = "tfidf"
dims = 4
test_fraction = 0.25

[policy]
name = "pair_uncertainty"

[loop]
batch_size = 2
rounds = 2
initial_labels = 2

[budget]
usd = 1.0

[annotators.judge]
kind = "{provider}"
model = "judge-model"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
both_orders = true
""")
        assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
        assert len(server.requests) == 2 * 6  # 6 pairs, each asked A/B and B/A
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        settled = ledger.settled()
    assert len(settled) == 12 and {a.item_id.rsplit("#", 1)[1] for a in settled} == {"AB", "BA"}
    assert all(a.label is not None and a.cost_usd > 0 for a in settled)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "--format", "dpo"]) == 0
    assert "6 pairs" in capsys.readouterr().out
    dpo = [json.loads(line) for line in (tmp_path / "run" / "export" / "dpo.jsonl").read_text().splitlines()]
    assert len(dpo) == 6 and all(r["chosen"].startswith("Helpful") and r["rejected"].startswith("Rude") for r in dpo)
