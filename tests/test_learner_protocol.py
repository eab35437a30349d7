"""The learner protocol: the shipped learners implement it, posteriors are the Laplace ones, and a round
pays for the posterior only when its policy reads it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.errors import AlbandError
from alband.models import LaplaceLogistic, Learner, SoftmaxRegression, make_learner
from alband.models.base import GaussianPosterior, accuracy
from alband.models.softmax_regression import diagonal_blocks
from alband.policies import make_policy
from alband.policies.bald import laplace_precision_blocks as pool_precision_blocks
from alband.policies.linear_bandits import LaplaceState, laplace_update
from alband.pool import empty_label_state, record_annotations
from alband.rounds import Pool, RoundSpec, before_buy


def _data(n=60, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, c, n).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def test_shipped_learners_are_learners_and_registered():
    softmax = make_learner("softmax_regression", n_classes=3, c=0.5)
    assert isinstance(softmax, Learner) and softmax == SoftmaxRegression(3, 0.5)
    assert isinstance(make_learner("laplace_logistic"), Learner)
    with pytest.raises(AlbandError, match="unknown learner"):
        make_learner("no_such_learner")
    with pytest.raises(AlbandError, match="n_classes"):
        make_learner("softmax_regression", n_classes=1)


def test_softmax_posterior_is_the_weighted_block_laplace_of_the_training_rows():
    x, y = _data()
    learner = SoftmaxRegression(3, c=2.0)
    weight = jnp.where(jnp.arange(60) < 40, 1.0, 0.0)
    params = learner.fit(learner.init(5), x, y, weight)
    post = learner.posterior(params, x, y, weight)
    assert isinstance(post, GaussianPosterior) and post.precision.shape == (15, 15)
    np.testing.assert_allclose(post.mean, np.asarray(params.w).T.reshape(-1))
    # Unit weights on the first 40 rows: BALD's pool-mask blocks over the same rows.
    probs = learner.predict_proba(params, x)
    reference = pool_precision_blocks(x, probs, jnp.arange(60) < 40, 2.0)
    np.testing.assert_allclose(diagonal_blocks(post.precision, 3), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(post.blocks, diagonal_blocks(post.precision, 3))
    # Off-diagonal class blocks are zero (the block approximation).
    grid = np.asarray(post.precision).reshape(3, 5, 3, 5)
    assert np.all(grid[0, :, 1, :] == 0)
    assert float(accuracy(learner, params, x[:40], y[:40])) > 1 / 3


def test_gaussian_posterior_samples_have_the_inverse_precision_as_covariance():
    a = np.array([[2.0, 0.5], [0.5, 1.0]], np.float32)
    post = GaussianPosterior(jnp.array([1.0, -1.0]), jnp.asarray(a))
    samples = np.asarray(post.sample(jax.random.PRNGKey(0), 40000), np.float64)
    np.testing.assert_allclose(samples.mean(0), [1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(np.cov(samples.T), np.linalg.inv(a), atol=0.02)


def test_laplace_logistic_fit_is_the_bandits_online_laplace_step():
    x, y = _data(n=12, d=4, c=2)
    learner = LaplaceLogistic(ridge=1.0, newton_steps=5)
    params = learner.fit(learner.init(4), x, y, jnp.ones(12))
    phi = jnp.concatenate([x, jnp.ones((12, 1))], axis=1)
    prior = learner.init(4)
    expected = laplace_update(LaplaceState(prior.mean, prior.cov), phi, (y == 1).astype(jnp.float32),
                              jnp.ones(12), 5)
    np.testing.assert_allclose(params.mean, expected.mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(params.cov, expected.cov, rtol=1e-6, atol=1e-7)
    probs = learner.predict_proba(params, x)
    np.testing.assert_allclose(jnp.sum(probs, axis=1), 1.0, rtol=1e-6)
    post = learner.posterior(params, x, y, jnp.ones(12))
    np.testing.assert_allclose(post.precision @ params.cov, np.eye(5), atol=1e-3)


def _compiled_round(policy_name: str) -> str:
    n, d = 600, 16
    x = jax.random.normal(jax.random.PRNGKey(0), (n, d))
    learner = SoftmaxRegression(4)
    state = empty_label_state(n, 40)
    state = record_annotations(state, jnp.arange(10), jnp.arange(10) % 4, jnp.ones(10, bool), jnp.zeros(10))
    spec = RoundSpec(learner, make_policy(policy_name), 10, 10)
    return before_buy.lower(spec, Pool(x, jnp.ones(n)), state, learner.init(d), (), jnp.int32(1),
                            jax.random.PRNGKey(1)).compile().as_text().lower()


def test_a_round_pays_for_the_posterior_only_when_its_policy_reads_it():
    assert "cholesky" in _compiled_round("bald")
    for name in ("margin", "entropy"):
        hlo = _compiled_round(name)
        assert "cholesky" not in hlo and "f32[4,16,16]" not in hlo
