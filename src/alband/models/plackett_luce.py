r"""Plackett-Luce model for rankings of K >= 2 responses, and its reduction to Bradley-Terry.

Model (Plackett 1975, Luce 1959). The ``K`` responses of a prompt have rewards
``r_k = theta' x_k``; a ranking ``o = (o_1, ..., o_K)`` (best first) has
probability

    P(o) = prod_{j=1}^{K-1} exp(r_{o_j}) / sum_{l >= j} exp(r_{o_l}),

the best chosen among all, the second among the rest, and so on. With ``K = 2``
this is ``sigmoid(r_{o_1} - r_{o_2})``: the Bradley-Terry model of the
difference ``z = x_{o_1} - x_{o_2}`` (:func:`as_bradley_terry_pairs`; tested:
equal log-likelihoods, gradients and fitted parameters).

Rankings of different lengths share one array: ``order`` is ``(N, K)`` int32
with ``-1`` after the last ranked response. The penalised negative
log-likelihood

    L(theta) = - sum_n w_n log P(o_n) + (lambda / 2) ||theta||^2

is convex (a sum of log-sum-exps of linear functions). :func:`plackett_luce_fit`
minimises it by damped Newton with the exact Hessian from autodiff
(``jax.hessian``: ``d`` forward-over-reverse passes; fine at ``d`` in the
hundreds), warm-started. Mukherjee et al. (2024, "Optimal design for human
preference elicitation", arXiv 2404.13895) learn from such ranking feedback
with this estimator; their list design is :mod:`alband.policies.preference.dope`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

Array = jax.Array


def plackett_luce_log_likelihood(theta: Array, x: Array, order: Array) -> Array:
    """``log P(o_n)`` of each ranking; ``x`` (N, K, d), ``order`` (N, K) best first, -1 padded."""
    rewards = jnp.einsum("nkd,d->nk", x, theta)
    valid = order >= 0
    ranked = jnp.take_along_axis(rewards, jnp.where(valid, order, 0), axis=1)
    ranked = jnp.where(valid, ranked, -jnp.inf)
    # log sum_{l >= j} exp(r_{o_l}): a reversed cumulative log-sum-exp.
    tail = jax.lax.cumlogsumexp(ranked, axis=1, reverse=True)
    terms = jnp.where(valid, ranked - tail, 0.0)
    return jnp.sum(terms, axis=1)


def plackett_luce_nll(theta: Array, x: Array, order: Array, weight: Array, l2: float | Array) -> Array:
    """``L(theta)`` of the module docstring."""
    return -jnp.sum(weight * plackett_luce_log_likelihood(theta, x, order)) + 0.5 * l2 * jnp.sum(theta * theta)


@partial(jax.jit, static_argnames=("max_iter",))
def plackett_luce_fit(theta0: Array, x: Array, order: Array, weight: Array, l2: float | Array,
                      max_iter: int = 50, tol: float | Array = 1e-6) -> Array:
    """Penalised ML by damped Newton (exact Hessian) from ``theta0``; stops on the Newton decrement."""
    l2 = jnp.asarray(l2, x.dtype)
    weight = weight.astype(x.dtype)
    scale = jnp.maximum(jnp.sum(weight), 1.0)

    def objective(theta):
        return plackett_luce_nll(theta, x, order, weight, l2)

    grad = jax.grad(objective)
    hess = jax.hessian(objective)

    def step(state):
        theta, _, it = state
        g = grad(theta)
        H = hess(theta)
        direction = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(H), True), g)
        f0 = objective(theta)

        def too_high(s):
            eta, k = s
            return (objective(theta - eta * direction) > f0 - 0.25 * eta * g @ direction) & (k < 30)

        eta, _ = jax.lax.while_loop(too_high, lambda s: (s[0] * 0.5, s[1] + 1), (jnp.asarray(1.0, x.dtype), 0))
        return theta - eta * direction, 0.5 * g @ direction, it + 1

    def keep_going(state):
        return (state[1] > tol * scale) & (state[2] < max_iter)

    return jax.lax.while_loop(keep_going, step, (theta0, jnp.asarray(jnp.inf, x.dtype), 0))[0]


def as_bradley_terry_pairs(x: Array, order: Array) -> tuple[Array, Array]:
    """K = 2 rankings as Bradley-Terry pairs: ``z = x_0 - x_1`` and label 0 iff response 0 ranked first."""
    if x.shape[1] != 2:
        raise ValueError(f"the reduction to Bradley-Terry needs K = 2 responses, got K = {x.shape[1]}")
    return x[:, 0] - x[:, 1], jnp.where(order[:, 0] == 0, 0, 1).astype(jnp.int32)


def sample_plackett_luce(key: Array, rewards: Array) -> Array:
    """Rankings drawn from PL with ``rewards`` (N, K): sort ``r + Gumbel`` descending (Yellott 1977)."""
    g = jax.random.gumbel(key, rewards.shape, rewards.dtype)
    return jnp.argsort(-(rewards + g), axis=1).astype(jnp.int32)
