"""Numerical checks of the claims of theory/preference.md (each test is named next to its claim there)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.design import efficient_rounding
from alband.models.bradley_terry import fisher_information, newton_fit, penalised_nll
from alband.policies.preference.apo import apo_batch
from alband.policies.preference.dope import list_design


def test_bt_hessian_is_the_label_free_fisher_information():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(1, 5)).astype(np.float32))
    theta = jnp.asarray(rng.normal(size=5).astype(np.float32))
    mu = float(jax.nn.sigmoid(z[0] @ theta))
    want = mu * (1 - mu) * np.outer(np.asarray(z[0]), np.asarray(z[0]))
    for label in (0, 1):
        H = jax.hessian(penalised_nll)(theta, z, jnp.asarray([label], jnp.int32), jnp.ones(1), 0.0)
        np.testing.assert_allclose(np.asarray(H), want, rtol=1e-4, atol=1e-6)
    # Score: E[g] = 0 and E[g g'] = Fisher (expectation over the BT label).
    g = {y: np.asarray(jax.grad(penalised_nll)(theta, z, jnp.asarray([y], jnp.int32), jnp.ones(1), 0.0))
         for y in (0, 1)}
    np.testing.assert_allclose(mu * g[0] + (1 - mu) * g[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(mu * np.outer(g[0], g[0]) + (1 - mu) * np.outer(g[1], g[1]), want, rtol=1e-4, atol=1e-6)


def test_bt_sees_only_differences_and_its_information_lives_in_their_span():
    rng = np.random.default_rng(1)
    d, m = 6, 40
    a = rng.normal(size=(m, d))
    b = rng.normal(size=(m, d))
    b[:, 0] = a[:, 0]  # coordinate 0 is shared by both responses (a prompt-only direction)
    c = rng.normal(size=d)
    theta = rng.normal(size=d)
    # Adding the same vector to both responses changes no preference probability.
    np.testing.assert_allclose(1 / (1 + np.exp(-(a - b) @ theta)), 1 / (1 + np.exp(-((a + c) - (b + c)) @ theta)))
    z = jnp.asarray(a - b, jnp.float32)
    V = np.asarray(fisher_information(jnp.asarray(theta, jnp.float32), z, jnp.ones(m), 0.0))
    e0 = np.eye(d)[0]
    assert abs(e0 @ V @ e0) < 1e-6  # no information on the shared direction, whatever the answers
    # whereas the design matrix of the raw responses would count it.
    raw = a.T @ a + b.T @ b
    assert e0 @ raw @ e0 > 1.0


def test_fisher_weighted_precision_predicts_the_sampling_covariance():
    rng = np.random.default_rng(2)
    m, d = 600, 3
    z = (rng.normal(size=(m, d)) * 1.5).astype(np.float32)
    theta = np.array([2.0, -1.0, 0.5], np.float32)
    p_first = 1 / (1 + np.exp(-z @ theta))
    n_sims = 400
    labels = (rng.random((n_sims, m)) >= p_first).astype(np.int32)  # label 0 = first preferred
    fit = jax.vmap(lambda y: newton_fit(jnp.zeros(d), jnp.asarray(z), y, jnp.ones(m), 1e-6))
    estimates = np.asarray(fit(jnp.asarray(labels)), np.float64)
    sampling_cov = np.cov(estimates.T)
    V = np.asarray(fisher_information(jnp.asarray(theta), jnp.asarray(z), jnp.ones(m), 0.0), np.float64)
    predicted = np.linalg.inv(V)
    unweighted = np.linalg.inv(z.astype(np.float64).T @ z / 4.0)  # the weight's upper bound 1/4 everywhere
    assert np.trace(sampling_cov) / np.trace(predicted) == pytest.approx(1.0, abs=0.2)
    assert np.trace(sampling_cov) / np.trace(unweighted) > 1.5  # the unweighted matrix is overconfident


def _pair_feedback_errors(x_lists, counts, theta, sigma, rng, n_sims):
    """Least squares on noisy linear feedback ``z'theta + noise`` for every pair of each list asked
    ``counts[l]`` times; returns the mean over simulations of each list's summed squared pair errors."""
    L, K, d = x_lists.shape
    j, k = np.triu_indices(K, 1)
    Z = (x_lists[:, j] - x_lists[:, k])  # (L, P, d)
    X = np.concatenate([np.repeat(Z[l], c, axis=0) for l, c in enumerate(counts) if c > 0])
    errors = np.zeros(L)
    for _ in range(n_sims):
        y = X @ theta + sigma * rng.normal(size=X.shape[0])
        est = np.linalg.lstsq(X, y, rcond=None)[0]
        errors += np.sum((Z @ (est - theta)) ** 2, axis=1)
    return errors / n_sims


def test_list_design_bounds_every_lists_pair_prediction_variance_by_d_over_n():
    rng = np.random.default_rng(3)
    L, K, d, sigma, n = 40, 3, 4, 1.0, 400
    x = rng.normal(size=(L, K, d))
    x[:5] *= 3.0  # a few lists with large differences
    eps = 1e-3
    design = list_design(jnp.asarray(x, jnp.float32), jnp.ones((L, K), bool), eps, 50_000)
    assert bool(design.certified)
    pi = np.asarray(design.weights, np.float64)
    counts = np.asarray(efficient_rounding(pi, n))
    A = [sum(np.outer(x[l, a] - x[l, b], x[l, a] - x[l, b]) for a in range(K) for b in range(a + 1, K))
         for l in range(L)]
    G = sum(c * a for c, a in zip(counts, A))  # information of n list queries with pairwise feedback
    exact = np.array([sigma**2 * np.trace(np.linalg.solve(G, a)) for a in A])  # E sum_pairs (z'(est - theta))^2
    mc = _pair_feedback_errors(x, counts, rng.normal(size=d), sigma, rng, 300)
    np.testing.assert_allclose(mc, exact, rtol=0.25)
    # The certificate max_l tr(V(pi)^{-1} A_l) <= d (1 + eps) makes every list's error at most
    # sigma^2 d (1 + eps) / n, up to the rounding of n pi to counts.
    assert exact.max() <= sigma**2 * d * (1 + eps) / n * 1.1
    # A uniform allocation of the same n queries leaves the worst list worse off.
    G_uniform = sum((n / L) * a for a in A)
    assert max(np.trace(np.linalg.solve(G_uniform, a)) for a in A) > 1.2 * exact.max()


def test_uniform_sampling_leaves_a_rare_direction_unlearned_and_apo_does_not():
    rng = np.random.default_rng(4)
    n, d, T, lam = 2000, 5, 40, 1.0
    z = np.zeros((n, d), np.float32)
    z[:, : d - 1] = rng.normal(size=(n, d - 1))
    rare = rng.choice(n, 2, replace=False)  # 0.1% of the pairs carry the last direction
    z[rare, d - 1] = 3.0
    V0 = jnp.asarray(lam * np.eye(d), jnp.float32)
    picks = np.asarray(apo_batch(jnp.asarray(z), V0, jnp.full((n,), 0.5), jnp.zeros(n, bool), T))
    assert set(rare.tolist()) & set(picks.tolist())  # APO asks a rare pair within T steps

    def worst_uncertainty(idx):
        V = lam * np.eye(d) + 0.25 * z[idx].astype(np.float64).T @ z[idx]
        return np.max(np.einsum("nd,de,nd->n", z, np.linalg.inv(V), z))

    # Uniform sampling misses both rare pairs with probability ~ (1 - 2/n)^T = 0.96, and then the worst
    # margin's variance stays at its prior value 9 / lam: a constant gap whatever the other T picks.
    misses = [not (set(rng.choice(n, T, replace=False).tolist()) & set(rare.tolist())) for _ in range(2000)]
    assert np.mean(misses) == pytest.approx((1 - 2 / n) ** T, abs=0.02)
    uniform_draw = rng.choice(np.setdiff1d(np.arange(n), rare), T, replace=False)
    assert worst_uncertainty(uniform_draw) >= 9.0 / lam * 0.99
    assert worst_uncertainty(picks) < 0.5 * worst_uncertainty(uniform_draw)
