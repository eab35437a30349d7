"""The rank-1 posterior of the contextual router against a numpy batch recomputation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.routing.posterior import (
    PosteriorConfig,
    covariance,
    init_posterior,
    inverse_cholesky_rank1_update,
    observe,
    posterior_mean,
    predict,
    sample_predictions,
    sample_theta,
)


def batch_posterior(X, arms, y, w, K, cfg):
    """numpy float64: (mu, cov) per arm from all observations at once."""
    d = X.shape[1]
    mus, covs = [], []
    for k in range(K):
        sel = arms == k
        A = cfg.prior_precision * np.eye(d) + (X[sel].T * w[sel]) @ X[sel] / cfg.noise_var
        b = (X[sel].T * w[sel]) @ (y[sel] - cfg.prior_mean) / cfg.noise_var
        mus.append(np.linalg.solve(A, b))
        covs.append(np.linalg.inv(A))
    return np.array(mus), np.array(covs)


@pytest.fixture(scope="module")
def observed():
    rng = np.random.default_rng(0)
    K, d, n = 3, 16, 600
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    X[:, -1] = 1.0
    arms = rng.integers(-1, K, n)  # -1: no-op observations
    y = (rng.random(n) < 0.6).astype(float)
    w = (rng.random(n) < 0.8).astype(float)
    cfg = PosteriorConfig(prior_precision=2.0, noise_var=0.3, prior_mean=0.4)
    step = jax.jit(lambda post, xs: jax.lax.scan(
        lambda p, o: (observe(p, o[0], o[1], o[2], o[3], cfg), None), post, xs)[0])
    post = step(init_posterior(K, d, cfg), (jnp.asarray(arms, jnp.int32), jnp.asarray(X, jnp.float32),
                                            jnp.asarray(y, jnp.float32), jnp.asarray(w, jnp.float32)))
    return post, X, arms, y, w, K, cfg


def test_rank1_posterior_equals_batch_recomputation(observed):
    post, X, arms, y, w, K, cfg = observed
    mu, cov = batch_posterior(X, arms, y, w, K, cfg)
    np.testing.assert_allclose(np.asarray(posterior_mean(post)), mu, atol=1e-4)
    np.testing.assert_allclose(np.asarray(covariance(post)), cov, atol=1e-4)
    np.testing.assert_allclose(np.asarray(post.n_obs), [w[arms == k].sum() for k in range(K)], atol=1e-3)


def test_predictions_and_samples_match_batch(observed):
    post, X, arms, y, w, K, cfg = observed
    mu, cov = batch_posterior(X, arms, y, w, K, cfg)
    x = X[7]
    mean, std = predict(post, jnp.asarray(x, jnp.float32), cfg)
    np.testing.assert_allclose(np.asarray(mean), cfg.prior_mean + mu @ x, atol=1e-4)
    np.testing.assert_allclose(np.asarray(std), np.sqrt(np.einsum("i,kij,j->k", x, cov, x)), atol=1e-4)
    key = jax.random.key(5)
    theta = np.asarray(sample_theta(post, key))
    # the Thompson draw is mu + R' eps with R the inverse Cholesky factor of the batch precision
    eps = np.asarray(jax.random.normal(key, (K, x.shape[0]), jnp.float32), np.float64)
    for k in range(K):
        A = np.linalg.inv(cov[k])
        R = np.linalg.inv(np.linalg.cholesky(A))
        np.testing.assert_allclose(theta[k], mu[k] + R.T @ eps[k], atol=1e-4)
    pred = np.asarray(sample_predictions(post, jnp.asarray(x, jnp.float32), key, 1.0, cfg))
    np.testing.assert_allclose(pred, cfg.prior_mean + theta @ x, atol=1e-4)


def test_thompson_draws_have_the_posterior_covariance(observed):
    post, X, arms, y, w, K, cfg = observed
    mu, cov = batch_posterior(X, arms, y, w, K, cfg)
    draws = np.asarray(jax.vmap(lambda k: sample_theta(post, k))(jax.random.split(jax.random.key(0), 4000)))
    emp = np.cov(draws[:, 0, :].T)
    assert np.abs(emp - cov[0]).max() < 0.15 * np.abs(cov[0]).max()
    np.testing.assert_allclose(draws[:, 0, :].mean(0), mu[0], atol=4 * np.sqrt(cov[0].diagonal().max() / 4000))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 8), scale=st.floats(0.0, 30.0))
def test_inverse_cholesky_rank1_update_property(seed, d, scale):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(d, d))
    A = M @ M.T + 0.5 * np.eye(d)
    L = np.linalg.cholesky(A)
    v = scale * rng.normal(size=d)
    R_new = np.asarray(inverse_cholesky_rank1_update(jnp.asarray(np.linalg.inv(L), jnp.float32),
                                                     jnp.asarray(v, jnp.float32)), np.float64)
    expected = np.linalg.inv(np.linalg.cholesky(A + np.outer(v, v)))
    assert np.allclose(np.triu(R_new, 1), 0.0)
    np.testing.assert_allclose(R_new, expected, atol=2e-4 * max(1.0, np.abs(expected).max()))


def test_zero_weight_and_negative_arm_are_no_ops():
    cfg = PosteriorConfig()
    post = init_posterior(2, 3, cfg)
    x = jnp.ones(3)
    for arm, w in ((0, 0.0), (-1, 1.0)):
        out = observe(post, jnp.int32(arm), x, 1.0, w, cfg)
        for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(post)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
