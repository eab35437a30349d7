"""``alband run`` with a [generator] against the local wire-format server: generated, filtered, trained on, tagged.

Every rejection reason but ``unaffordable`` occurs (the scripted items of
:mod:`generation_server`); the accepted items are tagged synthetic in the
ledger, the metrics and the export, change the learner, and never enter the
test set; the budget holds every charge; a resume asks the server nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from alband.cli.main import main
from alband.export import read_annotations_export
from alband.generation.filters import REASONS

from fake_llm_server import fake_llm_server, write_film_reviews  # noqa: F401 - fixture
from generation_server import GenerationResponder

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 16

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0
annotator = "sim"

[budget]
usd = {budget}

[annotators.sim]
kind = "simulated"
usd_per_label = 0.001

[annotators.checker]
kind = "openai"
model = "checker-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 4.0
max_tokens = 64
max_retries = 0

[generator]
provider = "openai"
model = "writer-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 1024
max_retries = 0
items_per_round = 8
k_samples = 2
verifier = "checker"
novelty_floor = 0.02
max_share = 0.4
validation_rows = 4
"""


def write_run(tmp_path: Path, base_url: str, budget: float = 1.0) -> Path:
    write_film_reviews(tmp_path, n=40)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(base_url=base_url, budget=budget))
    return config


def ledger_rows(run: Path, kind: str) -> list[dict]:
    with sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM annotations WHERE kind = ? ORDER BY id", (kind,))]


def spent(run: Path) -> float:
    with sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT sum(CASE status WHEN 'reserved' THEN reserved_usd ELSE cost_usd END) "
                          "FROM annotations").fetchone()[0]


@pytest.mark.slow
def test_live_run_generates_filters_trains_and_tags(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    responder = GenerationResponder()
    fake_llm_server.responder = responder
    config = write_run(tmp_path, fake_llm_server.openai_base_url)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0

    synthetic = ledger_rows(out, "synthetic")
    extras = [json.loads(r["extra"]) for r in synthetic]
    assert len(synthetic) == 8 * 3 and all(e["synthetic"] for e in extras)
    reasons = {e["reason"] for e in extras if e["verdict"] == "rejected"}
    assert reasons == set(REASONS) - {"unaffordable"}
    accepted = [(r, e) for r, e in zip(synthetic, extras) if e["verdict"] == "accepted"]
    assert accepted and all(e["reason"] is None for _, e in accepted)
    for row, extra in accepted:  # every accepted item passed every check it was given
        assert extra["checks"]["novelty"] >= 0.02
        assert extra["checks"]["consistency"] == 1.0
        assert extra["checks"]["verifier"]["label"] == extra["label"]
        file, j = extra["embedding"].split("#")
        assert np.linalg.norm(np.load(out / file)[int(j)]) > 0
    # the generation, consistency and verification calls are paid charges, one settled row per key
    for kind in ("generation", "consistency", "verification"):
        rows = ledger_rows(out, kind)
        keys = [r["charge_key"] for r in rows if r["status"] == "settled"]
        assert keys and len(keys) == len(set(keys)) and all(r["cost_usd"] > 0 for r in rows)
        assert len(keys) == responder.calls[kind]
    assert spent(out) <= 1.0

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for before, line in zip(metrics, metrics[1:]):  # the share cap held when each round's items were accepted
        n_synthetic = line["synthetic"]["n_synthetic"]
        assert n_synthetic <= 0.4 * (before["n_labeled"] + n_synthetic) + 1e-9
    assert metrics[-1]["synthetic"]["n_synthetic"] == len(accepted)
    assert sum(sum(m["synthetic"].get("rejected", {}).values()) for m in metrics[1:]) == 24 - len(accepted)

    export = tmp_path / "export.jsonl"
    assert main(["export", str(out), "--out", str(export), "--format", "jsonl"]) == 0
    records = read_annotations_export(export)
    tagged = [r for r in records if r["synthetic"]]
    assert sorted(r["item_id"] for r in tagged) == sorted(r["charge_key"] for r in synthetic)
    assert {r["item_id"] for r in tagged if r["used_for_training"]} == {r["charge_key"] for r, _ in accepted}
    assert all(r["pool_index"] is not None for r in records if not r["synthetic"])

    calls = dict(responder.calls)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert responder.calls == calls  # a finished run asks the server nothing more
