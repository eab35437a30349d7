"""A scikit-learn estimator as the learner (:mod:`alband.models.sklearn_learner`): host callbacks in the one round.

``LogisticRegression(C=c)`` and ``SoftmaxRegression(c)`` share a minimiser
for three or more classes, so on AG News (four classes) the two learners
must draw the same accuracy curve in the simulator, up to the learner
tolerance of ``tests/test_learner.py`` (one point of accuracy).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.config import parse_config
from alband.errors import AlbandError
from alband.loop import LoopSettings, live_rounds
from alband.models import make_learner
from alband.models.sklearn_learner import SklearnLearner
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, simulate
from alband.store.ledger import Ledger
from alband.task import Task
from helpers import blobs, llm_annotator
from test_learner_plugins import CONFIG

N_INITIAL, BATCH, ROUNDS, SEED = 6, 5, 4, 3


def _learner(n_classes: int = 3, **params) -> SklearnLearner:
    return make_learner("sklearn", n_classes=n_classes, params={"C": 0.7, "tol": 1e-8, "max_iter": 2000, **params})


def test_fit_and_predict_are_scikit_learns_on_the_weighted_rows_under_jit():
    from sklearn.linear_model import LogisticRegression

    x, y, _, _, _ = blobs(n=80, d=5, n_classes=3)
    weight = np.where(np.arange(80) < 60, np.linspace(0.5, 2.0, 80), 0.0).astype(np.float32)
    y = np.where(np.arange(80) % 17 == 0, -1, y).astype(np.int32)  # invalid answers are not fitted
    learner = _learner()
    params = jax.jit(learner.fit)(learner.init(5), x, y, weight)
    probs = np.asarray(jax.jit(learner.predict_proba)(params, x))
    keep = (weight > 0) & (y >= 0)
    x64 = x.astype(np.float64)  # the learner hands the estimator float64 rows
    reference = LogisticRegression(C=0.7, tol=1e-8, max_iter=2000).fit(x64[keep], y[keep], sample_weight=weight[keep])
    np.testing.assert_allclose(probs, reference.predict_proba(x64), atol=1e-6)
    # Fitting the same rows again returns the same fitted estimator.
    assert int(jax.jit(learner.fit)(learner.init(5), x, y, weight)) == int(params)


def test_unfitted_one_class_and_unseen_classes():
    learner = _learner(n_classes=4)
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    uniform = np.asarray(learner.predict_proba(learner.init(3), x))
    np.testing.assert_allclose(uniform, 0.25)
    one = learner.fit(learner.init(3), x, jnp.full(12, 2, jnp.int32), jnp.ones(12))
    np.testing.assert_array_equal(np.asarray(learner.predict_proba(one, x))[:, 2], 1.0)
    two = learner.fit(learner.init(3), x, jnp.asarray(np.arange(12) % 2 * 3, jnp.int32), jnp.ones(12))
    probs = np.asarray(learner.predict_proba(two, x))
    np.testing.assert_array_equal(probs[:, [1, 2]], 0.0)  # never labelled: probability 0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert learner.posterior(two, x, None, None) is None


def test_vmapped_seeds_run_one_after_another_with_the_same_numbers():
    x, y, _, _, _ = blobs(n=60, d=4, n_classes=3)
    learner = _learner()
    weights = jnp.stack([jnp.ones(60), jnp.where(jnp.arange(60) < 30, 1.0, 0.0)])
    batched = jax.vmap(learner.fit, in_axes=(None, None, None, 0))(learner.init(4), x, y, weights)
    probs = jax.vmap(learner.predict_proba, in_axes=(0, None))(batched, x)
    for k in range(2):
        alone = learner.predict_proba(learner.fit(learner.init(4), x, y, weights[k]), x)
        np.testing.assert_allclose(probs[k], alone, atol=1e-6)


@pytest.mark.parametrize(("learner", "message"), [
    ('name = "sklearn"\nestimator = "sklearn.linear_model:LinearRegression"', "LinearRegression has no predict_proba"),
    ('name = "sklearn"\nestimator = "no_such_pkg_xyz:Model"', "cannot import module 'no_such_pkg_xyz'"),
    ('name = "sklearn"\nparams = {C = -1.0}', "The 'C' parameter of LogisticRegression"),
    ('name = "sklearn"\nparams = {Cc = 1.0}', "unexpected keyword argument 'Cc'"),
    ('name = "sklearn"\nC = 1.0', "unknown key 'C' for learner 'sklearn'"),
])
def test_a_bad_estimator_is_one_line_naming_the_learner_section(learner, message):
    with pytest.raises(AlbandError, match=r"^run.toml: \[learner\]") as err:
        parse_config(CONFIG.format(learner=learner), source="run.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_live_loop_buys_what_the_simulator_predicts_with_the_sklearn_learner(tmp_path):
    x, y, xt, yt, chars = blobs()
    task = Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), ["w" * int(c) for c in chars],
                x, y, xt, yt, ("a", "b", "c"))
    learner, model = _learner(), llm_annotator()
    config = EpisodeConfig(learner, make_policy("entropy"), N_INITIAL, BATCH, ROUNDS)
    trace = simulate(config, task.episode_data(), model, 100.0, jax.random.PRNGKey(SEED))
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(SEED).annotate, task.y, task.text_chars,
                                       task.text_bytes)
    settings = LoopSettings(learner, config.policy, N_INITIAL, BATCH, ROUNDS, seed=SEED, budget_usd=100.0)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd()))
    index = [np.asarray(trace.initial_index).tolist()] + np.asarray(trace.query_index).tolist()
    assert [e.proposed for e in events] == index
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy), atol=1e-6)


def test_logistic_regression_draws_the_jax_learners_accuracy_curve_on_ag_news(shared_data):
    from alband.benchmarks.learners import learners_config
    from alband.cli.simulate import simulate_config

    curves = {}
    for name in ("softmax_regression", "sklearn"):
        text = learners_config(str(shared_data / "ag_news"), name, c=1.0, max_train=500, rounds=6, batch_size=10,
                               initial=10, policy="entropy")
        config = parse_config(text, source=name)
        assert config.learner.name == name
        curves[name] = np.asarray(simulate_config(config, seeds=2, progress=False)["per_seed_curves"]["test_accuracy"])
    assert curves["sklearn"].shape == (2, 7)
    assert np.max(np.abs(curves["sklearn"] - curves["softmax_regression"])) <= 0.01, curves
    assert curves["sklearn"][:, -1].mean() > curves["sklearn"][:, 0].mean() + 0.1  # the curve rises
