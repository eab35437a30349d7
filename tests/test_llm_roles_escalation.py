"""experiments/llm_roles/escalation/report.py builds its table from recorded responses alone (no server)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import random
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "experiments" / "llm_roles" / "escalation" / "report.py"
LABELS = ["Alpha", "Beta"]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("llm_roles_escalation_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def response(label: int, p: float, stated: float, completion_tokens: int = 12) -> dict:
    """A chat-completion body whose label token has probability ``p`` against the other label."""
    head, name, tail = '{"label": "', LABELS[label], f'", "confidence": {stated}}}'
    top = [{"token": name, "logprob": math.log(p)}, {"token": LABELS[1 - label], "logprob": math.log(1.0 - p)}]
    content = [{"token": head, "logprob": 0.0, "top_logprobs": []},
               {"token": name, "logprob": math.log(p), "top_logprobs": top},
               {"token": tail, "logprob": 0.0, "top_logprobs": []}]
    return {"choices": [{"message": {"content": head + name + tail}, "logprobs": {"content": content}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": completion_tokens}}


def write(path: Path, records: list[dict], cut: bool = False) -> None:
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    path.write_bytes(data[:-20] if cut else data)


def synthetic(folder: Path, n: int = 400, cut: bool = False) -> None:
    """Strong = gold; the cheap model agrees with it when its label-set p is high, at chance when low."""
    rng = random.Random(0)
    cheap, strong = [], []
    for i in range(n):
        gold = rng.randrange(2)
        confident = rng.random() < 0.6
        label = gold if confident else rng.randrange(2)
        p = rng.uniform(0.75, 0.85) if confident else rng.uniform(0.5, 0.7)
        base = {"dataset": ["ag_news", "trec"][i % 2], "id": str(i), "gold": gold, "labels": LABELS, "threads": 1,
                "seconds": 1.0}
        cheap.append({**base, "model": "cheap", "response": response(label, p, 0.9)})
        strong.append({**base, "model": "strong", "response": response(gold, 0.9, 0.9)})
    write(folder / "cheap.jsonl.gz", cheap, cut=cut)
    write(folder / "strong.jsonl.gz", strong)


def test_report_builds_from_records_and_certifies_the_confident_slice(report, tmp_path):
    synthetic(tmp_path)
    out = tmp_path / "out"
    code = report.main(["--records", str(tmp_path), "--cheap", "cheap", "--strong", "strong", "--seeds", "5",
                        "--out", str(out)])
    assert code == 0
    result = json.loads((out / "escalation.json").read_text())
    assert result["items"] == 400 and result["calibration"] == 200 and result["test"] == 200
    rows = result["rows"]
    assert all(s["agreement"] == 1.0 and s["accuracy"] == 1.0 for s in rows["always strong (1.5B)"])
    # confidences below 0.99: the default grid's first threshold has no audited item, so nothing is certified
    assert all(s["coverage"] == 0.0 for s in rows["0.5B (label-set p, grid 0.99..0) -> 1.5B, alpha 0.1, delta 0.1"])
    route = rows["0.5B (label-set p, stream-quantile grid) -> 1.5B, alpha 0.1, delta 0.1"]
    # the confident 60% agree with the strong model, the rest at chance: the threshold lands near the gap
    mean = lambda key: sum(s[key] for s in route) / len(route)  # noqa: E731
    assert 0.5 < mean("coverage") < 0.8 and mean("kept_agreement") >= 0.88
    assert all(0.6 <= s["threshold"][0] <= 0.85 for s in route)
    per_dataset = rows["0.5B (label-set p, per-dataset thresholds) -> 1.5B, alpha 0.1, delta 0.1"]
    assert 0.4 < sum(s["coverage"] for s in per_dataset) / len(per_dataset) < 0.8
    # a stated confidence that is 0.9 on every item cannot separate them: at alpha 0.1 it keeps nothing
    stated = rows["0.5B (stated confidence, stream-quantile grid) -> 1.5B, alpha 0.1, delta 0.1"]
    assert all(s["coverage"] == 0.0 for s in stated)
    # a kept item pays only the cheap call: cheaper than always strong
    assert all(a["usd"] < b["usd"] for a, b in zip(route, rows["always strong (1.5B)"]))
    summary = (out / "summary.md").read_text()
    assert "0.5B (label-set p, stream-quantile grid) -> 1.5B, alpha 0.3, delta 0.1" in summary and "$0.15/$0.6" in summary


def test_a_file_cut_off_mid_recording_is_read_up_to_the_cut(report, tmp_path):
    synthetic(tmp_path, n=200, cut=True)
    items = report.load(tmp_path, "cheap", "strong")
    assert 100 < len(items["keys"]) < 200


def test_a_record_without_usage_is_one_error_line_naming_file_and_line(report, tmp_path, capsys):
    synthetic(tmp_path, n=20)
    with gzip.open(tmp_path / "strong.jsonl.gz", "rt") as handle:
        records = [json.loads(line) for line in handle]
    del records[4]["response"]["usage"]
    write(tmp_path / "strong.jsonl.gz", records)
    code = report.main(["--records", str(tmp_path), "--cheap", "cheap", "--strong", "strong",
                        "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "strong.jsonl.gz: line 5: missing or malformed field 'usage'" in err[0]
