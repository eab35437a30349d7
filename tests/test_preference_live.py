"""Preference runs in the one round: the live loop buys what the simulator predicts, pair for pair."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from alband.cli.main import main
from alband.config import parse_config
from alband.cpu_threads import one_blas_thread
from alband.runner import load_task, loop_settings, simulated_pair_judge_model, start_run
from alband.simulate import EpisodeConfig, simulate
from alband.store.ledger import Ledger

CONFIG = """
[data]
kind = "pairs"
source = "synthetic_candidates"
n_prompts = 40
k = 4
dims = 6
seed = 1

[learner]
c = 1.0

[policy]
name = "{policy}"
{options}

[loop]
batch_size = 8
rounds = 6
initial_labels = 8
seed = 3

[budget]
usd = {budget}

[annotators.judge]
kind = "simulated"
usd_per_label = 0.01
beta = 1.0
tie_rate = 0.1
position_bias = 0.1
"""


def write(tmp_path, policy="pair_bald", options="", budget=10.0):
    text = CONFIG.format(policy=policy, options=options, budget=budget)
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path, parse_config(text, source=str(path), base_dir=tmp_path)


@pytest.mark.parametrize("policy,options,budget", [
    ("pair_bald", "", 10.0), ("double_ts", "", 10.0), ("gated", "threshold = 0.3", 10.0), ("apo", "", 0.295)])
def test_live_preference_run_buys_what_simulate_predicts(tmp_path, policy, options, budget):
    path, config = write(tmp_path, policy, options, budget)
    events = start_run(config, tmp_path / "run", quiet=True)
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        rows = [r for r in ledger.rows() if r.status == "settled"]
    task = load_task(config)
    settings = loop_settings(config, task)
    judge = simulated_pair_judge_model(config.annotators["judge"])
    with one_blas_thread():  # as alband run runs the rounds
        trace = jax.block_until_ready(simulate(
            EpisodeConfig(settings.learner, settings.policy, settings.n_initial, settings.batch_size,
                          settings.n_rounds), task.episode_data(), judge, budget, jax.random.PRNGKey(config.loop.seed)))
    sim_items = np.concatenate([np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)],
                                np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]]).tolist()
    assert [r.pool_index for r in rows] == sim_items
    sim_labels = np.concatenate([np.asarray(trace.query_label)[np.asarray(trace.query_accepted)]]).tolist()
    live_labels = [(-1 if r.label is None else r.label) for r in rows][len(rows) - len(sim_labels):]
    assert live_labels == sim_labels  # ties (-1) included: the judge answers pair for pair
    assert any(r.label is None and r.extra.get("invalid_reason") == "tie" for r in rows)
    n = len(events)
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy)[:n], atol=1e-6)
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd)[:n], rtol=1e-5)
    assert sum(r.cost_usd for r in rows) <= budget + 1e-12
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    if policy == "gated":
        # the gate leaves slots empty (-1) once the model is sure, and counts what the free labels saved
        assert any(-1 in e.proposed for e in events[1:])
        assert metrics[-1]["pseudo_labels"] > 0 and metrics[-1]["dollars_saved_usd"] > 0
        assert metrics[-1]["dollars_saved_usd"] == pytest.approx(0.01 * metrics[-1]["pseudo_labels"], rel=1e-5)
    else:
        assert "pseudo_labels" not in metrics[-1]
    if budget < 1:
        assert events[-1].stop_reason == "budget exhausted"


def test_simulate_and_report_of_a_preference_config(tmp_path, capsys):
    path, config = write(tmp_path)
    assert main(["simulate", str(path), "--seeds", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] == [3, 4, 5]
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "run"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.dumps(report)  # one row for the run


def test_pseudo_labels_join_the_fit_and_a_bought_label_wins():
    import jax.numpy as jnp

    from alband.models.registry import make_learner
    from alband.pool import empty_label_state, record_annotations
    from alband.rounds import train_with_pseudo_labels

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(30, 3)), jnp.float32)
    learner = make_learner("bradley_terry", l2=1.0)
    bought = jnp.arange(5)
    labels = jnp.asarray(rng.integers(0, 2, 5), jnp.int32)
    state = record_annotations(empty_label_state(30, 10), bought, labels, jnp.ones(5, bool), jnp.zeros(5), 1.0)
    pseudo = jnp.asarray(rng.integers(0, 2, 30), jnp.int32).at[:5].set(1 - labels).at[7].set(-1)
    weight = jnp.full(30, 0.5, jnp.float32)
    params = train_with_pseudo_labels(learner, learner.init(3), x, state, 10, pseudo, weight)
    rows = np.r_[0:5, 5:7, 8:30]
    y = jnp.concatenate([labels, pseudo[5:7], pseudo[8:]])
    w = jnp.concatenate([jnp.ones(5), jnp.full(rows.size - 5, 0.5)])
    expected = learner.fit(learner.init(3), x[rows], y, w)
    np.testing.assert_allclose(np.asarray(params.theta), np.asarray(expected.theta), atol=1e-5)
