"""The softmax-regression learner against scikit-learn's LogisticRegression."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

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
