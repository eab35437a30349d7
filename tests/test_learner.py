"""The softmax-regression learner against scikit-learn's LogisticRegression."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.models import SoftmaxRegression, accuracy, fit, init_params, predict_proba


def _sklearn(x, y, c):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, tol=1e-8).fit(x, y)


def _load_shared(shared_data, name):
    folder = shared_data / name
    x = np.load(folder / "emb_minilm.npy")
    ids = (folder / "emb_minilm_ids.txt").read_text().split()
    rows = {r["id"]: r for r in map(json.loads, (folder / "data.jsonl").read_text().splitlines())}
    y = np.array([rows[i]["label"] for i in ids], np.int32)
    train = np.array([rows[i]["split"] == "train" for i in ids])
    return x, y, train


@pytest.mark.parametrize("dataset,n_labels", [("ag_news", 300), ("trec", 500), ("subj", 200)])
def test_accuracy_within_one_point_of_scikit_learn(shared_data, dataset, n_labels):
    x, y, train = _load_shared(shared_data, dataset)
    rng = np.random.default_rng(0)
    rows = rng.choice(np.flatnonzero(train), n_labels, replace=False)
    n_classes = int(y.max()) + 1
    model = SoftmaxRegression(n_classes, c=1.0)
    params = fit(model, init_params(model, x.shape[1]), x[rows], y[rows], jnp.ones(n_labels))
    ours = float(accuracy(params, x[~train], y[~train]))
    theirs = _sklearn(x[rows], y[rows], 1.0).score(x[~train], y[~train])
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_same_minimiser_as_scikit_learn_with_weights_and_padding():
    """Padded rows (weight 0) are ignored, and the optimum matches scikit-learn's."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 5)).astype(np.float32)
    y = rng.integers(0, 3, 80).astype(np.int32)
    reference = _sklearn(x[:60], y[:60], 0.5)
    model = SoftmaxRegression(3, c=0.5, tol=1e-6, max_iter=500)
    weight = np.r_[np.ones(60), np.zeros(20)].astype(np.float32)
    params = fit(model, init_params(model, 5), x, y, weight)
    np.testing.assert_allclose(predict_proba(params, x), reference.predict_proba(x), atol=2e-3)


def test_warm_start_reaches_the_same_optimum():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = rng.integers(0, 2, 50).astype(np.int32)
    model = SoftmaxRegression(2, tol=1e-6, max_iter=500)
    cold = fit(model, init_params(model, 4), x, y, jnp.ones(50))
    half = fit(model, init_params(model, 4), x[:25], y[:25], jnp.ones(25))
    warm = fit(model, half, x, y, jnp.ones(50))
    np.testing.assert_allclose(warm.w, cold.w, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 12),
    n_classes=st.integers(2, 5),
    c=st.floats(0.05, 20.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_hand_written_gradient_equals_autodiff_of_the_objective(n, d, n_classes, c, seed):
    import jax

    from alband.models.softmax_regression import SoftmaxParams, _objective, objective_fn

    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, d)), jnp.float32)
    y = jnp.asarray(rng.integers(-1, n_classes, n), jnp.int32)  # -1: an invalid answer ...
    weight = jnp.asarray(np.where(np.asarray(y) < 0, 0.0, rng.uniform(0.0, 2.0, n)), jnp.float32)  # ... weighs 0
    params = SoftmaxParams(jnp.asarray(rng.standard_normal((d, n_classes)), jnp.float32),
                           jnp.asarray(rng.standard_normal(n_classes), jnp.float32))
    fast = objective_fn(x, y, weight, c)
    value, grad = jax.jit(jax.value_and_grad(fast))(params)
    ref_value, ref_grad = jax.value_and_grad(lambda p: _objective(p, x, y, weight, c))(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad.w, ref_grad.w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad.b, ref_grad.b, rtol=1e-4, atol=1e-5)
