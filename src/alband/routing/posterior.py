"""Per-arm Bayesian linear correctness model with O(d^2) rank-1 updates of a Cholesky factor.

Each arm ``k`` predicts the probability that its answer to an item with
features ``x`` is right as ``p_k(x) = m0 + x' theta_k`` (a linear probability
model on the 0/1 audit verdict ``y``, ``m0`` a prior mean, 0.5 by default),
with the conjugate Gaussian model (Bishop 2006, sec. 3.3; the Bayesian linear
model behind LinTS, Agrawal and Goyal 2013)::

    theta_k ~ N(0, a^-1 I),      y - m0 | x ~ N(x' theta_k, s^2)
    A_k = a I + s^-2 sum_j w_j x_j x_j'        (posterior precision)
    b_k = s^-2 sum_j w_j (y_j - m0) x_j
    theta_k | data ~ N(A_k^-1 b_k, A_k^-1)

State. With ``A_k = L_k L_k'`` (lower Cholesky factor), the state keeps the
*inverse* factor ``R_k = L_k^-1`` (lower triangular), ``b_k`` and the whitened
mean ``m_k = R_k b_k``. Then ``A_k^-1 = R_k' R_k``, the posterior mean is
``mu_k = R_k' m_k``, and every quantity a router needs is a matrix-vector
product: ``u = R_k x`` gives the predictive mean ``m0 + u' m_k`` and standard
deviation ``||u||``.

Rank-1 update. Adding ``v v'`` (``v = sqrt(w) x / s``) to ``A = L L'``: with
``p = R v`` and ``t_j = 1 + sum_{i <= j} p_i^2`` (``t_0 = 1``), the Cholesky
factor of ``I + p p'`` is ``Lt`` with ``Lt_jj = sqrt(t_j / t_{j-1})`` and
``Lt_ji = p_j p_i / sqrt(t_j t_{j-1})`` below the diagonal (Gill, Golub,
Murray and Saunders 1974, "Methods for modifying matrix factorizations"), so
``L' = L Lt`` and ``R' = Lt^-1 R`` where ``Lt^-1`` has the same closed form::

    (Lt^-1)_jj = sqrt(t_{j-1} / t_j),   (Lt^-1)_ji = -p_j p_i / sqrt(t_j t_{j-1})  (i < j)

i.e. row ``j`` of ``R'`` is ``sqrt(t_{j-1}/t_j) R_j - p_j / sqrt(t_j t_{j-1})
sum_{i<j} p_i R_i``: an exclusive cumulative sum over rows (O(d^2) adds,
computed as one small matrix product), no triangular solve and no
refactorisation.

Thompson sampling (Cholesky form): ``theta~_k = mu_k + R_k' eps`` with ``eps ~
N(0, I)`` has the posterior law (``R_k'`` is a triangular square root of the
covariance ``A_k^-1 = R_k' R_k``). Its prediction at ``x`` is ``x' theta~_k =
u' (m_k + eps)``; :func:`sample_theta` materialises the full draw with the
same ``eps``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class LinearPosterior(NamedTuple):
    inv_chol: Array  # (K, d, d) R_k = L_k^-1, lower triangular, A_k = L_k L_k'
    b: Array  # (K, d) s^-2 sum w (y - m0) x
    whitened_mean: Array  # (K, d) m_k = R_k b_k
    n_obs: Array  # (K,) float32 observations so far (weighted)


class PosteriorConfig(NamedTuple):
    prior_precision: float = 16.0  # a: prior predictive sd of p(x) is 0.25 for a unit-norm x
    noise_var: float = 0.25  # s^2 (the largest variance of a 0/1 outcome)
    prior_mean: float = 0.5  # m0


def init_posterior(n_arms: int, dim: int, config: PosteriorConfig = PosteriorConfig()) -> LinearPosterior:
    eye = jnp.eye(dim, dtype=jnp.float32) / jnp.sqrt(jnp.float32(config.prior_precision))
    return LinearPosterior(
        inv_chol=jnp.broadcast_to(eye, (n_arms, dim, dim)),
        b=jnp.zeros((n_arms, dim), jnp.float32),
        whitened_mean=jnp.zeros((n_arms, dim), jnp.float32),
        n_obs=jnp.zeros((n_arms,), jnp.float32),
    )


def inverse_cholesky_rank1_update(inv_chol: Array, v: Array) -> Array:
    """``R'`` with ``(R')^-1 (R')^-T = R^-1 R^-T + v v'``, in O(d^2) (module docstring).

    ``v = 0`` returns ``R`` unchanged.
    """
    p = inv_chol @ v
    t = 1.0 + jnp.cumsum(p * p)
    t_prev = jnp.concatenate([jnp.ones((1,), t.dtype), t[:-1]])
    d = inv_chol.shape[-1]
    strictly_lower = jnp.tril(jnp.ones((d, d), inv_chol.dtype), -1)
    # row j: sum_{i<j} p_i R_i (a matrix product: XLA's cumsum on CPU is several times slower)
    before = strictly_lower @ (p[:, None] * inv_chol)
    diag = jnp.sqrt(t_prev / t)
    coef = p / jnp.sqrt(t * t_prev)
    return diag[:, None] * inv_chol - coef[:, None] * before


def observe(post: LinearPosterior, arm: Array, x: Array, y: Array, weight: Array,
            config: PosteriorConfig = PosteriorConfig()) -> LinearPosterior:
    """Posterior after arm ``arm`` is seen to be right (``y = 1``) or wrong (``y = 0``) on ``x``.

    ``weight`` >= 0 scales the observation; 0 is a no-op, so the call can stay
    unconditional inside ``jit``/``vmap``. ``arm < 0`` is a no-op too.
    """
    valid = arm >= 0
    arm_c = jnp.clip(arm, 0, post.inv_chol.shape[0] - 1)
    w = jnp.where(valid, jnp.asarray(weight, jnp.float32), 0.0)
    inv_noise = 1.0 / jnp.float32(config.noise_var)
    R = inverse_cholesky_rank1_update(post.inv_chol[arm_c], jnp.sqrt(w * inv_noise) * x)
    b = post.b[arm_c] + w * inv_noise * (y - config.prior_mean) * x
    return LinearPosterior(
        inv_chol=post.inv_chol.at[arm_c].set(R),
        b=post.b.at[arm_c].set(b),
        whitened_mean=post.whitened_mean.at[arm_c].set(R @ b),
        n_obs=post.n_obs.at[arm_c].add(w),
    )


def observe_all(post: LinearPosterior, x: Array, y: Array, weight: Array,
                config: PosteriorConfig = PosteriorConfig()) -> LinearPosterior:
    """:func:`observe` for every arm at once on the same item: ``y`` and ``weight`` are (K,).

    Arms with weight 0 are unchanged. Vectorised over arms (one O(K d^2) pass),
    for audits that reveal several arms' verdicts at once.
    """
    w = jnp.asarray(weight, jnp.float32)
    inv_noise = 1.0 / jnp.float32(config.noise_var)
    v = jnp.sqrt(w * inv_noise)[:, None] * x[None, :]
    R = jax.vmap(inverse_cholesky_rank1_update)(post.inv_chol, v)
    b = post.b + (w * inv_noise * (y - config.prior_mean))[:, None] * x[None, :]
    return LinearPosterior(R, b, jnp.einsum("kij,kj->ki", R, b), post.n_obs + w)


def _whiten(post: LinearPosterior, x: Array) -> Array:
    """``u_k = R_k x`` for every arm, shape (K, d)."""
    return jnp.einsum("kij,j->ki", post.inv_chol, x)


def predict(post: LinearPosterior, x: Array, config: PosteriorConfig = PosteriorConfig()
            ) -> tuple[Array, Array]:
    """Posterior mean ``m0 + x' mu_k`` and standard deviation ``sqrt(x' A_k^-1 x)`` per arm."""
    u = _whiten(post, x)
    mean = config.prior_mean + jnp.sum(u * post.whitened_mean, axis=-1)
    return mean, jnp.sqrt(jnp.sum(u * u, axis=-1))


def sample_predictions(post: LinearPosterior, x: Array, key: Array, scale: float = 1.0,
                       config: PosteriorConfig = PosteriorConfig()) -> Array:
    """``m0 + x' theta~_k`` per arm, ``theta~_k = mu_k + scale R_k' eps_k`` (a Thompson draw).

    ``scale`` inflates the posterior spread (``v`` of LinTS); 1 is exact.
    """
    u = _whiten(post, x)
    eps = jax.random.normal(key, post.whitened_mean.shape, jnp.float32)
    return config.prior_mean + jnp.sum(u * (post.whitened_mean + scale * eps), axis=-1)


def posterior_mean(post: LinearPosterior) -> Array:
    """``mu_k = A_k^-1 b_k = R_k' m_k``, shape (K, d)."""
    return jnp.einsum("kji,kj->ki", post.inv_chol, post.whitened_mean)


def sample_theta(post: LinearPosterior, key: Array, scale: float = 1.0) -> Array:
    """A full Thompson draw ``theta~_k = mu_k + scale R_k' eps_k``, shape (K, d).

    Uses the same ``eps`` as :func:`sample_predictions` for the same key, so
    ``m0 + x' sample_theta(key) == sample_predictions(x, key)``.
    """
    eps = jax.random.normal(key, post.whitened_mean.shape, jnp.float32)
    return jnp.einsum("kji,kj->ki", post.inv_chol, post.whitened_mean + scale * eps)


def covariance(post: LinearPosterior) -> Array:
    """``A_k^-1 = R_k' R_k``, shape (K, d, d) (for checks and reports)."""
    return jnp.einsum("kji,kjl->kil", post.inv_chol, post.inv_chol)
