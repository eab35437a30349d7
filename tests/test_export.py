"""``alband export``: every settled annotation of the ledger, nothing more (round trip); DPO rows of judged pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from alband.annotation import Annotation
from alband.cli.main import main
from alband.config import parse_config
from alband.runner import load_task
from alband.export import read_annotations_export
from alband.store.ledger import KIND_LABEL, STATUS_SETTLED, Ledger
from alband.store.run_dir import RunDir
from fake_llm_server import write_film_reviews

RUN = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 2
initial_labels = 4
seed = 0

[budget]
usd = 1.0

[annotators.sim]
kind = "simulated"
usd_per_label = 0.01
flip_rate = 0.3
"""


def settled_label_rows(run: Path):
    with Ledger.open(run / "ledger.sqlite", create=False, read_only=True) as ledger:
        return [r for r in ledger.rows(STATUS_SETTLED) if r.kind == KIND_LABEL]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_round_trip_gives_every_settled_annotation_and_nothing_more(tmp_path, capsys, fmt):
    write_film_reviews(tmp_path, n=40)
    (tmp_path / "run.toml").write_text(RUN)
    run = tmp_path / "run"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(run), "--quiet"]) == 0
    with Ledger.open(run / "ledger.sqlite", create=False) as ledger:  # rows that are not settled answers
        released = ledger.reserve(9, 0, "not-an-item-answer", "sim", 0.5)
        ledger.release(released, reason="HTTP 429")
        ledger.skip(9, 1, "given-up", "sim", "gave up after 3 attempts")
        charge = ledger.reserve(9, None, "sel-1", "sim", 0.2, kind="selection", key="sel-1")
        ledger.settle_charge(charge, 0.1)
        ledger.reserve(9, 2, "left-reserved", "sim", 0.3)
    capsys.readouterr()
    assert main(["export", str(run), "--format", fmt]) == 0
    assert "settled annotations" in capsys.readouterr().out
    records = read_annotations_export(run / f"annotations.{fmt}")
    rows = settled_label_rows(run)
    assert len(rows) >= 8 and len(records) == len(rows)
    by_id = {r["row_id"]: r for r in records}
    assert set(by_id) == {row.id for row in rows}
    task = load_task(parse_config(RUN, base_dir=tmp_path))
    for row in rows:
        record = by_id[row.id]
        assert (record["item_id"], record["pool_index"], record["annotator"], record["round"]) == (
            row.item_id, row.pool_index, row.annotator, row.round)
        assert record["label"] == row.label and record["valid"] == (row.label is not None)
        assert record["label_name"] == task.label_names[row.label]
        assert math.isclose(record["cost_usd"], row.cost_usd, rel_tol=1e-12)
        assert (record["input_tokens"], record["output_tokens"]) == (row.input_tokens or 0, row.output_tokens or 0)
        assert record["text"] == task.text(row.pool_index) and record["text"]
        assert record["used_for_training"] is True  # one simulated annotator: every answer trains


PAIRS = """
[data]
kind = "pairs"
source = "trl"
path = "prefs.jsonl"
embedder = "tfidf"
dims = 4
test_fraction = 0.25

[policy]
name = "random_pairs"

[loop]
batch_size = 2
rounds = 1
initial_labels = 2

[budget]
usd = 1.0

[annotators.judge]
kind = "simulated"
usd_per_label = 0.01
"""


def test_dpo_export_of_pairs_judged_in_both_orders_skips_ties_and_disagreements(tmp_path, capsys):
    rows = [{"id": f"t{i}", "prompt": f"Question {i} about topic {i * 7}?", "chosen": f"Helpful answer {i} with care.",
             "rejected": f"Rude reply {i}."} for i in range(8)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "run.toml").write_text(PAIRS)
    config = parse_config(PAIRS, base_dir=tmp_path)
    task = load_task(config)
    run = tmp_path / "run"
    RunDir.create(run, PAIRS, budget_limit_usd=1.0)
    # four pairs: agree on 'first', agree on 'second', orders disagree, a tie in one order
    answers = {0: (0, 0), 1: (1, 1), 2: (0, 1), 3: (None, 0)}
    with Ledger.open(run / "ledger.sqlite", create=False) as ledger:
        ledger.set_meta("base_dir", str(tmp_path))
        for pool_index, labels in answers.items():
            for order, label in zip(("AB", "BA"), labels):
                item_id = f"{task.ids[pool_index]}#{order}"
                row = ledger.reserve(0, pool_index, item_id, "judge", 0.02)
                extra = {"invalid_reason": "tie"} if label is None else {}
                ledger.settle(row, Annotation(pool_index, item_id, "judge", label, 0.01, 100, 5, 0.9, extra=extra))
    capsys.readouterr()
    assert main(["export", str(run), "--format", "dpo"]) == 0
    out = capsys.readouterr().out
    assert "2 pairs" in out and "skipped 2 (1 orders disagree, 1 tie)" in out
    dpo = [json.loads(line) for line in (run / "export" / "dpo.jsonl").read_text().splitlines()]
    reward = [json.loads(line) for line in (run / "export" / "reward_pairs.jsonl").read_text().splitlines()]
    assert len(dpo) == len(reward) == 2
    for record, pool_index, label in zip(dpo, (0, 1), (0, 1)):
        prompt, first, second = task.pair_texts(pool_index)
        assert record == {"prompt": prompt, "chosen": first if label == 0 else second,
                          "rejected": second if label == 0 else first}
    assert [r["preferred"] for r in reward] == ["first", "second"]
    assert all(math.isclose(r["cost_usd"], 0.02) for r in reward)
    assert main(["export", str(run), "--format", "jsonl"]) == 0
    records = read_annotations_export(run / "annotations.jsonl")
    assert len(records) == 8
    assert sum(r["used_for_training"] for r in records) == 4  # the two pairs whose orders agree
    assert {r["invalid_reason"] for r in records if not r["valid"]} == {"tie"}


def test_dpo_export_of_a_classification_run_is_one_line_exit_2(tmp_path, capsys):
    write_film_reviews(tmp_path, n=20)
    run = tmp_path / "run"
    RunDir.create(run, RUN, budget_limit_usd=1.0)
    with Ledger.open(run / "ledger.sqlite", create=False) as ledger:
        ledger.set_meta("base_dir", str(tmp_path))
    assert main(["export", str(run), "--format", "dpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a preference run" in err
