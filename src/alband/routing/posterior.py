"""Per-arm Bayesian linear correctness model with rank-1 Cholesky updates.

Each arm ``k`` predicts the probability that its answer to an item with
features ``x`` is right as ``p_k(x) = m0 + x' theta_k`` (a linear probability
model on the 0/1 audit verdict ``y``, ``m0`` a prior mean, 0.5 by default),
with the conjugate Gaussian model (Bishop 2006, sec. 3.3; the Bayesian linear
model behind LinTS, Agrawal and Goyal 2013)::

    theta_k ~ N(0, a^-1 I),      y - m0 | x ~ N(x' theta_k, s^2)
    A_k = a I + s^-2 sum_j w_j x_j x_j'        (posterior precision)
    b_k = s^-2 sum_j w_j (y_j - m0) x_j
    theta_k | data ~ N(A_k^-1 b_k, A_k^-1)

The state keeps the lower Cholesky factor ``L_k`` of ``A_k`` (``A_k = L_k
L_k'``) and the whitened mean ``m_k = L_k^-1 b_k`` (so the posterior mean is
``L_k^-T m_k``). An observation is a rank-1 Cholesky update of ``L_k`` in
O(d^2) (Golub and Van Loan, sec. 6.5.4; the classic ``cholupdate``) and one
triangular solve for ``m_k``: the precision is never refactorised.

Thompson sampling (Cholesky form): ``theta~_k = mu_k + L_k^-T eps`` with
``eps ~ N(0, I)`` has the posterior law. Its prediction at ``x`` is
``x' theta~_k = u' (m_k + eps)`` with ``u = L_k^-1 x``, so one triangular
solve per arm gives the mean ``u' m_k``, the predictive standard deviation
``||u||`` and the sample; :func:`sample_theta` materialises the full draw.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

Array = jax.Array


class LinearPosterior(NamedTuple):
    chol: Array  # (K, d, d) lower Cholesky factor of each arm's precision
    whitened_mean: Array  # (K, d) m_k = L_k^-1 b_k
    n_obs: Array  # (K,) float32 observations so far (weighted)


class PosteriorConfig(NamedTuple):
    prior_precision: float = 1.0  # a
    noise_var: float = 0.25  # s^2 (the largest variance of a 0/1 outcome)
    prior_mean: float = 0.5  # m0


def init_posterior(n_arms: int, dim: int, config: PosteriorConfig = PosteriorConfig()) -> LinearPosterior:
    eye = jnp.eye(dim, dtype=jnp.float32) * jnp.sqrt(jnp.float32(config.prior_precision))
    return LinearPosterior(
        chol=jnp.broadcast_to(eye, (n_arms, dim, dim)),
        whitened_mean=jnp.zeros((n_arms, dim), jnp.float32),
        n_obs=jnp.zeros((n_arms,), jnp.float32),
    )


def cholesky_rank1_update(chol: Array, v: Array) -> Array:
    """Lower ``L'`` with ``L' L'^T = L L^T + v v^T`` in O(d^2) (Givens-style sweep).

    ``v = 0`` returns ``L`` unchanged. Assumes a positive diagonal (true for any
    factor built from a positive-definite prior by this function).
    """
    d = chol.shape[-1]
    idx = jnp.arange(d)

    def body(k, carry):
        L, w = carry
        lkk = L[k, k]
        wk = w[k]
        r = jnp.sqrt(lkk * lkk + wk * wk)
        c = r / lkk
        s = wk / lkk
        below = idx > k
        col = L[:, k]
        new_col = jnp.where(below, (col + s * w) / c, jnp.where(idx == k, r, col))
        w = jnp.where(below, c * w - s * new_col, w)
        return L.at[:, k].set(new_col), w

    L, _ = jax.lax.fori_loop(0, d, body, (chol, v.astype(chol.dtype)))
    return L


def observe(post: LinearPosterior, arm: Array, x: Array, y: Array, weight: Array,
            config: PosteriorConfig = PosteriorConfig()) -> LinearPosterior:
    """Posterior after arm ``arm`` is seen to be right (``y = 1``) or wrong on ``x``.

    ``weight`` in {0, 1} (or any >= 0) scales the observation; 0 is a no-op, so
    the call can stay unconditional inside ``jit``/``vmap``. ``arm < 0`` is a no-op.
    """
    valid = arm >= 0
    arm_c = jnp.clip(arm, 0, post.chol.shape[0] - 1)
    w = jnp.where(valid, jnp.asarray(weight, jnp.float32), 0.0)
    inv_noise = 1.0 / jnp.float32(config.noise_var)
    L = post.chol[arm_c]
    b = L @ post.whitened_mean[arm_c] + w * inv_noise * (y - config.prior_mean) * x
    L_new = cholesky_rank1_update(L, jnp.sqrt(w * inv_noise) * x)
    m_new = solve_triangular(L_new, b, lower=True)
    return LinearPosterior(
        chol=post.chol.at[arm_c].set(L_new),
        whitened_mean=post.whitened_mean.at[arm_c].set(m_new),
        n_obs=post.n_obs.at[arm_c].add(w),
    )


def _whiten(post: LinearPosterior, x: Array) -> Array:
    """``u_k = L_k^-1 x`` for every arm, shape (K, d)."""
    return jax.vmap(lambda L: solve_triangular(L, x, lower=True))(post.chol)


def predict(post: LinearPosterior, x: Array, config: PosteriorConfig = PosteriorConfig()
            ) -> tuple[Array, Array]:
    """Posterior mean ``m0 + x' mu_k`` and standard deviation ``sqrt(x' A_k^-1 x)`` per arm."""
    u = _whiten(post, x)
    mean = config.prior_mean + jnp.sum(u * post.whitened_mean, axis=-1)
    return mean, jnp.sqrt(jnp.sum(u * u, axis=-1))


def sample_predictions(post: LinearPosterior, x: Array, key: Array, scale: float = 1.0,
                       config: PosteriorConfig = PosteriorConfig()) -> Array:
    """``m0 + x' theta~_k`` per arm, ``theta~_k = mu_k + scale L_k^-T eps_k`` (Thompson draw).

    ``scale`` inflates the posterior spread (``v`` of LinTS); 1 is exact.
    """
    u = _whiten(post, x)
    eps = jax.random.normal(key, post.whitened_mean.shape, jnp.float32)
    return config.prior_mean + jnp.sum(u * (post.whitened_mean + scale * eps), axis=-1)


def posterior_mean(post: LinearPosterior) -> Array:
    """``mu_k = A_k^-1 b_k = L_k^-T m_k``, shape (K, d)."""
    return jax.vmap(lambda L, m: solve_triangular(L.T, m, lower=False))(post.chol, post.whitened_mean)


def sample_theta(post: LinearPosterior, key: Array, scale: float = 1.0) -> Array:
    """A full Thompson draw ``theta~_k = mu_k + scale L_k^-T eps_k``, shape (K, d).

    Uses the same ``eps`` as :func:`sample_predictions` for the same key, so
    ``x' sample_theta(key) + m0 == sample_predictions(x, key)``.
    """
    eps = jax.random.normal(key, post.whitened_mean.shape, jnp.float32)
    return jax.vmap(lambda L, m, e: solve_triangular(L.T, m + scale * e, lower=False))(
        post.chol, post.whitened_mean, eps)


def precision(post: LinearPosterior) -> Array:
    """``A_k = L_k L_k'``, shape (K, d, d) (for checks and reports)."""
    return jnp.einsum("kij,klj->kil", post.chol, post.chol)
