"""Bradley-Terry and Plackett-Luce learners against scikit-learn and float64 numpy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.models.bradley_terry import (
    BradleyTerry,
    pairwise_accuracy,
    pairwise_log_loss,
    penalised_nll,
    sample_posterior,
)
from alband.models.plackett_luce import (
    as_bradley_terry_pairs,
    plackett_luce_fit,
    plackett_luce_log_likelihood,
    sample_plackett_luce,
)


def _bt_problem(seed=0, m=400, d=12):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(m, d)).astype(np.float32)
    theta = rng.normal(size=d).astype(np.float32)
    p_first = 1 / (1 + np.exp(-z @ theta))
    y = np.where(rng.random(m) < p_first, 0, 1).astype(np.int32)
    return z, y, theta


@pytest.mark.parametrize("l2", [0.1, 1.0, 10.0])
def test_bt_fit_equals_sklearn_logistic_regression_on_differences(l2):
    from sklearn.linear_model import LogisticRegression

    z, y, _ = _bt_problem()
    learner = BradleyTerry(l2=l2)
    params = learner.fit(learner.init(z.shape[1]), jnp.asarray(z), jnp.asarray(y), jnp.ones(len(y)))
    # scikit-learn minimises C sum loss + ||w||^2 / 2: C = 1 / lambda; class 1 = "first preferred".
    ref = LogisticRegression(C=1.0 / l2, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(z, (y == 0).astype(int))
    np.testing.assert_allclose(np.asarray(params.theta), ref.coef_[0], atol=2e-4, rtol=2e-4)
    np.testing.assert_allclose(np.asarray(learner.predict_proba(params, jnp.asarray(z)))[:, 0],
                               ref.predict_proba(z)[:, 1], atol=5e-4)


def test_bt_fit_ignores_invalid_labels_and_zero_weights_and_warm_starts():
    z, y, _ = _bt_problem(seed=1)
    learner = BradleyTerry(l2=1.0)
    clean = learner.fit(learner.init(12), jnp.asarray(z[:300]), jnp.asarray(y[:300]), jnp.ones(300))
    y_masked = y.copy()
    y_masked[300:350] = -1
    w = np.ones(400, np.float32)
    w[350:] = 0.0
    masked = learner.fit(learner.init(12), jnp.asarray(z), jnp.asarray(y_masked), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(masked.theta), np.asarray(clean.theta), atol=1e-5)
    # A warm start at the optimum stays there.
    again = learner.fit(clean, jnp.asarray(z[:300]), jnp.asarray(y[:300]), jnp.ones(300))
    np.testing.assert_allclose(np.asarray(again.theta), np.asarray(clean.theta), atol=1e-6)


def test_laplace_posterior_matches_float64_numpy_reference():
    z, y, _ = _bt_problem(seed=2, m=200, d=6)
    w = np.random.default_rng(3).uniform(0.2, 2.0, size=200).astype(np.float32)
    learner = BradleyTerry(l2=0.5)
    params = learner.fit(learner.init(6), jnp.asarray(z), jnp.asarray(y), jnp.asarray(w))
    post = learner.posterior(params, jnp.asarray(z), jnp.asarray(y), jnp.asarray(w))
    theta = np.asarray(params.theta, np.float64)
    z64 = z.astype(np.float64)
    mu = 1 / (1 + np.exp(-z64 @ theta))
    V = 0.5 * np.eye(6) + (z64 * (w * mu * (1 - mu))[:, None]).T @ z64
    np.testing.assert_allclose(np.asarray(post.precision), V, rtol=1e-4, atol=1e-4)
    # V is the Hessian of the penalised NLL at the mode (autodiff in float64 numpy terms).
    H = jax.hessian(penalised_nll)(params.theta, jnp.asarray(z), jnp.asarray(y), jnp.asarray(w), 0.5)
    np.testing.assert_allclose(np.asarray(H), V, rtol=1e-3, atol=1e-3)
    # The unweighted design matrix is a different (larger) matrix.
    assert np.linalg.norm(V - (0.5 * np.eye(6) + (z64 * w[:, None]).T @ z64)) > 1.0
    # Posterior samples have covariance V^{-1}.
    draws = np.asarray(sample_posterior(jax.random.key(0), post, 40_000), np.float64)
    np.testing.assert_allclose(np.cov(draws.T), np.linalg.inv(V), atol=3e-3 + 0.05 * np.abs(np.linalg.inv(V)).max())


def test_pairwise_accuracy_and_log_loss_reference():
    z, y, theta = _bt_problem(seed=4, m=300, d=5)
    from alband.models.bradley_terry import BradleyTerryParams

    params = BradleyTerryParams(jnp.asarray(theta))
    m = z.astype(np.float64) @ theta
    s = np.where(y == 0, 1.0, -1.0)
    assert float(pairwise_accuracy(params, jnp.asarray(z), jnp.asarray(y))) == pytest.approx(np.mean(s * m > 0))
    assert float(pairwise_log_loss(params, jnp.asarray(z), jnp.asarray(y))) == pytest.approx(
        np.mean(np.log1p(np.exp(-s * m))), rel=1e-5)
    y_inv = y.copy()
    y_inv[:100] = -1
    assert float(pairwise_accuracy(params, jnp.asarray(z), jnp.asarray(y_inv))) == pytest.approx(
        np.mean((s * m > 0)[100:]))


def test_plackett_luce_at_k2_is_bradley_terry():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(250, 2, 7)).astype(np.float32)
    theta_true = rng.normal(size=7).astype(np.float32)
    order = np.asarray(sample_plackett_luce(jax.random.key(1), jnp.asarray(x @ theta_true)))
    z, y = as_bradley_terry_pairs(jnp.asarray(x), jnp.asarray(order))
    theta = jnp.asarray(rng.normal(size=7).astype(np.float32))
    ll_pl = plackett_luce_log_likelihood(theta, jnp.asarray(x), jnp.asarray(order))
    s = np.where(np.asarray(y) == 0, 1.0, -1.0)
    np.testing.assert_allclose(np.asarray(ll_pl), -np.log1p(np.exp(-s * (np.asarray(z) @ np.asarray(theta)))),
                               rtol=1e-5, atol=1e-5)
    pl = plackett_luce_fit(jnp.zeros(7), jnp.asarray(x), jnp.asarray(order), jnp.ones(250), 1.0)
    bt = BradleyTerry(l2=1.0).fit(BradleyTerry().init(7), z, y, jnp.ones(250))
    np.testing.assert_allclose(np.asarray(pl), np.asarray(bt.theta), atol=1e-4)


def test_plackett_luce_likelihood_reference_and_padding():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(30, 4, 3))
    theta = rng.normal(size=3)
    order = np.stack([rng.permutation(4) for _ in range(30)])
    order[:10, 3] = -1  # first ten rankings rank only three responses
    r = x @ theta
    ref = []
    for n in range(30):
        o = [k for k in order[n] if k >= 0]
        ref.append(sum(r[n, o[j]] - np.log(np.sum(np.exp(r[n, o[j:]]))) for j in range(len(o))))
    got = plackett_luce_log_likelihood(jnp.asarray(theta, jnp.float32), jnp.asarray(x, jnp.float32), jnp.asarray(order))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-4)


def test_plackett_luce_fit_recovers_theta_with_many_rankings():
    rng = np.random.default_rng(7)
    theta_true = np.array([1.5, -1.0, 0.5], np.float32)
    x = rng.normal(size=(4000, 5, 3)).astype(np.float32)
    order = sample_plackett_luce(jax.random.key(2), jnp.asarray(x @ theta_true))
    theta = plackett_luce_fit(jnp.zeros(3), jnp.asarray(x), order, jnp.ones(4000), 1e-3)
    np.testing.assert_allclose(np.asarray(theta), theta_true, atol=0.1)
