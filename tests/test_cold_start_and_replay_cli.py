"""``[loop] initial = "kmeans"`` (one seed item per k-means cluster) and ``alband simulate --selections``.

The k-means seed set is the same function in both engines: a live run and the
simulator buy the same seed items, which are one per cluster and distinct.
``alband simulate --selections`` replays the selections a live ``alband run``
recorded (its ledger, or a cache file written from it): the simulator buys the
live run's items and reaches its accuracies, seed by seed; a seed with no
record runs the config's policy and the result says so.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_llm_server import Reply, fake_llm_server, write_film_reviews  # noqa: F401 - fixture
from helpers import cli_error_line

from alband.cli.main import main
from alband.cold_start import kmeans_representatives, seed_set

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "margin"

[loop]
batch_size = 3
rounds = 3
initial_labels = 6
seed = {seed}
{initial}

[budget]
usd = 1.0

[annotators.sim]
kind = "simulated"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
prompt_tokens = 50
output_tokens = 4
flip_rate = 0.0
"""

SELECTOR = """
[selector]
kind = "llm"
provider = "openai"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 256
max_retries = 0
n_candidates = 12
prompt = "cot"
"""


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _accuracies(run) -> list[float]:
    return [row["test_accuracy"] for row in _metrics(run) if "test_accuracy" in row]


def test_kmeans_seed_set_is_one_item_per_cluster_and_differs_from_random():
    x = jax.random.normal(jax.random.PRNGKey(0), (300, 5))
    centres = jnp.arange(6, dtype=jnp.float32)[:, None] * 10.0 * jnp.ones((1, 5))
    x = x + jnp.repeat(centres, 50, axis=0)  # six separated clusters of 50
    picks = np.asarray(seed_set(jax.random.PRNGKey(1), x, 6, "kmeans"))
    assert len(set(picks.tolist())) == 6
    assert sorted((picks // 50).tolist()) == [0, 1, 2, 3, 4, 5]  # one per cluster
    assert picks.tolist() == np.asarray(kmeans_representatives(jax.random.PRNGKey(1), x, jnp.zeros(300, bool),
                                                               6)).tolist()
    uniform = np.asarray(seed_set(jax.random.PRNGKey(1), x, 6, "random"))
    assert len(set(uniform.tolist())) == 6 and uniform.tolist() != picks.tolist()


def test_bad_seed_set_method_is_one_line(tmp_path, capsys):
    write_film_reviews(tmp_path, n=30)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(seed=0, initial='initial = "diverse"'))
    line = cli_error_line(capsys, "simulate", str(config))
    assert "[loop] initial must be one of random, kmeans, got 'diverse'" in line


@pytest.mark.slow
def test_kmeans_seed_set_live_equals_simulated(tmp_path, capsys):
    write_film_reviews(tmp_path, n=40)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(seed=2, initial='initial = "kmeans"'))
    run = tmp_path / "live"
    assert main(["run", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["simulate", str(config), "--seeds", "1", "--json", "--quiet"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(simulated["per_seed_curves"]["test_accuracy"][0], _accuracies(run), atol=1e-5)


@pytest.mark.slow
def test_simulate_replays_the_selections_a_live_run_recorded(tmp_path, fake_llm_server, monkeypatch, capsys):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    write_film_reviews(tmp_path, n=40)
    fake_llm_server.responder = lambda request: Reply(
        text=json.dumps({"reasons": "spread", "indices": [12, 1, 5, 5, 99, 7, 3]}))  # a repeat, an invented one
    runs, records = [], []
    for seed in (0, 1):
        config = tmp_path / f"run{seed}.toml"
        config.write_text(CONFIG.format(seed=seed, initial="")
                          + SELECTOR.format(base_url=fake_llm_server.openai_base_url))
        run = tmp_path / f"live{seed}"
        assert main(["run", str(config), "--out", str(run), "--quiet"]) == 0
        runs.append(run)
    assert fake_llm_server.request_count == 2  # one cold-start selection per run

    from alband.selection.replay import load_selections, write_cache

    records = load_selections(runs[0]) + load_selections(runs[1] / "ledger.sqlite")
    cache = tmp_path / "selections.jsonl"
    write_cache(records, cache)
    config = tmp_path / "run0.toml"
    capsys.readouterr()
    assert main(["simulate", str(config), "--seeds", "3", "--json", "--quiet", "--selections", str(cache)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["selection_replayed"]["initial"] == [True, True, False]  # seed 2 was never recorded
    for seed, run in enumerate(runs):
        np.testing.assert_allclose(result["per_seed_curves"]["test_accuracy"][seed], _accuracies(run), atol=1e-5)
    assert fake_llm_server.request_count == 2  # replaying asks the server nothing

    line = cli_error_line(capsys, "simulate", str(config))  # without --selections, a [selector] is refused
    assert "--selections" in line
