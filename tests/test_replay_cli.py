"""``replay_main`` end to end: a synthetic CSV pair, the real RouteLLM matrix (1 seed), bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from alband.errors import AlbandError
from alband.replay.cli import replay_main


def synthetic_pair(tmp_path: Path, n: int = 120, seed: int = 0) -> tuple[Path, Path, dict]:
    """3 models (cheap / mid / strong) over 2 tasks; 'mid' is missing on 10% of items."""
    rng = np.random.default_rng(seed)
    acc = {"cheap": 0.55, "mid": 0.7, "strong": 0.9}
    price = {"cheap": 1e-5, "mid": 1e-4, "strong": 1e-3}
    header = ["item_id", "task", "gold"]
    for m in acc:
        header += [f"{m}__answer", f"{m}__correct", f"{m}__cost_usd"]
    rows, items, truth = [], [], {m: [] for m in acc}
    for i in range(n):
        task = "t1" if i % 2 else "t2"
        text = f"question {i} about {'cats' if i % 3 else 'dogs'} in {task}"
        row = [f"q{i}", task, "A"]
        for m in acc:
            if m == "mid" and rng.random() < 0.1:
                row += ["", "", ""]
                truth[m].append(None)
                continue
            right = rng.random() < acc[m]
            cost = price[m] * (1 + len(text) / 40)
            row += ["A" if right else "B", int(right), f"{cost:.10g}"]
            truth[m].append((right, cost))
        rows.append(row)
        items.append([f"q{i}", task, "A", text])
    wide = tmp_path / "wide.csv"
    with wide.open("w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    items_csv = tmp_path / "items.csv"
    with items_csv.open("w", newline="") as fh:
        csv.writer(fh).writerows([["item_id", "task", "gold", "text"]] + items[::-1])
    return wide, items_csv, truth


def run_json(args: list[str], capsys) -> dict:
    assert replay_main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_main_end_to_end_on_synthetic_csvs(tmp_path, capsys):
    wide, items, truth = synthetic_pair(tmp_path)
    full = {m: sum(c for r, c in (t for t in v if t)) for m, v in truth.items()}
    acc = {m: np.mean([r for r, c in (t for t in v if t)]) for m, v in truth.items()}
    budget = full["strong"] * 1.01  # every single model can label the whole stream
    plot, out = tmp_path / "frontier.png", tmp_path / "report.json"
    report = run_json(["--data", str(wide), "--items", str(items), "--budget", str(budget),
                       "--seeds", "2", "--human-price", "0.01", "--plot", str(plot), "--out", str(out),
                       "--apgr-points", "3", "--frontier-points", "3"], capsys)
    assert plot.exists() and plot.stat().st_size > 1000
    assert json.loads(out.read_text()) == report
    assert all(0 <= r["compile_seconds"] <= r["seconds"] for r in report["routers"])
    assert report["compile_seconds"] >= max(r["compile_seconds"] for r in report["routers"]) > 0
    assert report["seeds"] == 2 and report["data"]["n_items"] == 120
    assert report["data"]["auditor"] == "human"
    assert report["strongest"]["name"] == max(acc, key=acc.get)
    assert report["strongest"]["accuracy"] == pytest.approx(acc[report["strongest"]["name"]])
    assert report["strongest"]["cost_usd"] == pytest.approx(full[report["strongest"]["name"]])
    fixed = {f["name"]: f for f in report["fixed_models"]}
    for m in truth:
        assert fixed[m]["cost_usd"] == pytest.approx(full[m])
        assert fixed[m]["accuracy"] == pytest.approx(acc[m])
    assert fixed["mid"]["n_available"] == sum(t is not None for t in truth["mid"])
    assert fixed["human"]["human"] and fixed["human"]["accuracy"] == 1.0
    routers = {r["name"]: r for r in report["routers"]}
    assert set(routers) == {"always-cheapest", "always-strongest", "best-fixed", "random", "cascade",
                            "contextual_ts", "bts", "ucb_bv", "oracle"}
    for r in routers.values():
        assert r["cost_usd"] <= budget
        for key in ("accuracy", "accuracy_ci95", "cost_usd", "calls_share", "apgr",
                    "cost_to_95pct_strongest", "n_labeled"):
            assert key in r
        assert set(r["calls_share"]) <= set(fixed)
        assert len(r["curve"]) == len(report["grid"]["budgets_usd"])
    strong, weak = routers["always-strongest"], routers["always-cheapest"]
    assert strong["pgr"] == pytest.approx(1.0) and weak["pgr"] == pytest.approx(0.0)
    assert weak["apgr"] == pytest.approx(0.0, abs=1e-9)
    assert strong["calls_share"] == {report["strongest"]["name"]: 1.0}
    assert strong["cost_to_95pct_strongest"] <= full[report["strongest"]["name"]] * (1 + 1e-9)
    assert routers["oracle"]["accuracy"] == 1.0
    assert routers["oracle"]["cost_usd"] <= min(r["cost_usd"] for r in routers.values()
                                                if r["stream_accuracy"] >= routers["oracle"]["stream_accuracy"])
    assert set(routers["contextual_ts"]["by_task"]) == {"t1", "t2"} == set(report["task_accuracy"])
    for entry in routers["contextual_ts"]["by_task"].values():
        assert sum(entry["label_share"].values()) <= 1 + 1e-9
    assert report["task_accuracy"]["t1"]["human"] == 1.0
    lo, hi = routers["contextual_ts"]["accuracy_ci95"]
    assert lo <= routers["contextual_ts"]["accuracy"] <= hi


def test_replay_main_prints_a_table_without_json(tmp_path, capsys):
    wide, items, _ = synthetic_pair(tmp_path, n=60)
    assert replay_main(["--data", str(wide), "--items", str(items), "--budget", "0.01", "--seeds", "1",
                        "--routers", "oracle", "--apgr-points", "2", "--frontier-points", "0"]) == 0
    out = capsys.readouterr().out
    assert "router" in out and "oracle" in out and "always-strongest" in out


@pytest.mark.slow
def test_replay_main_on_routellm_one_seed(shared_data, capsys):
    d = shared_data / "router" / "routellm_mmlu_gsm8k"
    report = run_json(["--data", str(d / "wide.csv"), "--items", str(d / "items.csv"), "--budget", "20",
                       "--seeds", "1", "--routers", "contextual_ts,oracle", "--apgr-points", "3",
                       "--frontier-points", "0", "--feature-dim", "8"], capsys)
    assert report["data"]["dropped_contaminated"] == 17  # RouteLLM's contamination filter
    assert report["data"]["n_items"] == 15361 - 17
    assert report["strongest"]["name"] == "gpt-4-1106-preview"
    assert report["strongest"]["accuracy"] == pytest.approx(0.81, abs=0.005)
    assert report["weak"]["name"] == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    routers = {r["name"]: r for r in report["routers"]}
    for r in routers.values():
        assert r["cost_usd"] <= 20.0
    assert routers["always-cheapest"]["stream_accuracy"] == pytest.approx(0.677, abs=0.005)
    # a router that spends 1/4 of GPT-4's full cost must beat always-Mixtral
    assert routers["contextual_ts"]["stream_accuracy"] > routers["always-cheapest"]["stream_accuracy"]
    assert routers["oracle"]["stream_accuracy"] > routers["contextual_ts"]["stream_accuracy"]


def _bad(args, *parts):
    with pytest.raises(AlbandError) as err:
        replay_main(args)
    for p in parts:
        assert p in str(err.value), (p, str(err.value))


def test_bad_arguments_and_inputs(tmp_path):
    wide, items, _ = synthetic_pair(tmp_path, n=20)
    base = ["--data", str(wide), "--items", str(items), "--budget", "1"]
    _bad(["--data", str(wide)], "required")
    _bad(base[:-1] + ["lots"], "--budget")
    _bad(base + ["--seeds", "0"], "--seeds")
    _bad(base + ["--embeddings", "e.npy"], "--embeddings and --ids")
    _bad(base + ["--routers", "magic"], "unknown router 'magic'")
    _bad(base + ["--auditor", "nobody"], "unknown annotator 'nobody'")
    _bad(["--data", str(tmp_path / "nope.csv"), "--items", str(items), "--budget", "1"], "nope.csv", "not found")
    _bad(base[:-1] + ["-3"], "--budget must be a positive")
    np.save(tmp_path / "e.npy", np.zeros((20, 4), np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(f"z{i}" for i in range(20)) + "\n")
    _bad(base + ["--embeddings", str(tmp_path / "e.npy"), "--ids", str(tmp_path / "ids.txt")],
         "ids.txt", "has no embedding")
    _bad(base + ["--plot", str(tmp_path / "no_such_dir" / "p.png"), "--routers", "oracle",
                 "--apgr-points", "2", "--frontier-points", "0"], "no_such_dir")
