"""``alband simulate CONFIG`` and ``alband bench simulate`` through their entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alband.benchmarks.simulate import bench_simulate_main
from alband.cli.simulate import simulate_main
from alband.demo import demo_config_text
from alband.errors import AlbandError
from alband.stopping import available_rules


def _config(tmp_path, extra: str = "", rounds: int = 4):
    path = tmp_path / "run.toml"
    path.write_text(demo_config_text("entropy", "strong-llm", rounds=rounds, batch_size=5) + extra)
    return path


def test_simulate_command_reports_every_rule_as_json(tmp_path, capsys):
    extra = '\n[stopping]\nrule = "classification_change"\nmax_change_rate = 0.05\n'
    assert simulate_main([str(_config(tmp_path, extra)), "--seeds", "3", "--json", "--n-future", "1000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == [0, 1, 2] and out["rounds"] == 4
    names = [row["rule"] for row in out["rules"]]
    assert names[: len(available_rules())] == available_rules()
    assert names[-1] == "classification_change#" + str(len(available_rules()))
    assert [row["rule"] for row in out["rules"] if row.get("configured")] == [names[-1]]
    for row in out["rules"]:
        assert row["regret_usd_median"] >= 0 and 0 <= row["stop_round_median"] <= 4
        assert row["regret_usd_ci95"][0] <= row["regret_usd_median"] <= row["regret_usd_ci95"][1]
    per_seed = out["per_seed"]["stabilizing_predictions"]
    assert len(per_seed["round"]) == 3 and min(per_seed["regret_usd"]) >= 0
    curves = {k: np.asarray(v) for k, v in out["per_seed_curves"].items()}
    assert all(c.shape == (3, 5) for c in curves.values())
    np.testing.assert_allclose(curves["test_accuracy"].mean(axis=0), out["test_accuracy_mean"])
    np.testing.assert_allclose(curves["spent_usd"].mean(axis=0), out["spent_usd_mean"])
    assert (np.diff(curves["n_labeled"], axis=1) >= 0).all() and (curves["n_labeled"][:, 0] > 0).all()


def test_simulate_command_prints_a_table_and_rejects_bad_input(tmp_path, capsys):
    config = _config(tmp_path)
    assert simulate_main([str(config), "--seeds", "3"]) == 0  # same shapes as above: compiled once
    table = capsys.readouterr().out
    assert "stabilizing_predictions" in table and "regret $" in table
    with pytest.raises(AlbandError, match="--seeds must be >= 1"):
        simulate_main([str(config), "--seeds", "0"])
    with pytest.raises(AlbandError, match="config file not found"):
        simulate_main([str(tmp_path / "missing.toml")])
    with pytest.raises(AlbandError, match="alband simulate: "):
        simulate_main([str(config), "--seeds", "many"])


@pytest.mark.slow
def test_bench_simulate_runs_the_live_loop_on_the_same_items(shared_data, capsys):
    argv = ["--data", str(shared_data / "ag_news"), "--max-train", "400", "--seeds", "2", "--rounds", "3",
            "--live-seeds", "1", "--modal-seeds", "0", "--max-iter", "20", "--json"]
    assert bench_simulate_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pool"] == 400 and out["dim"] == 384 and out["seeds"] == 2
    assert out["live_loop"]["matches_simulation"] == {"0": True}
    assert out["episodes_per_second"] > 0 and out["speedup_vs_live_loop"] > 0
    assert out["peak_rss_mb"] >= out["rss_at_start_mb"] > 0
    floor = out["scoring_floor"]
    assert floor["seeds_batched"] == 1000 and floor["product_seconds_per_round"] > 0 and floor["gflops"] > 0
    assert floor["seconds_per_episode"] == pytest.approx(floor["product_seconds_per_round"] * 3 / 1000)
    assert out["speedup_bound_from_scoring"] == pytest.approx(
        out["live_loop"]["seconds_per_episode"] / floor["seconds_per_episode"])
