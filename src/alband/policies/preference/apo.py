r"""APO: Active Preference Optimization (Das, Chakraborty, Pacchiano and Chowdhury 2024).

Das et al. ("Active preference optimization for sample efficient RLHF", arXiv
2402.10500) cast RLHF as a contextual preference bandit and ask, at each step,
for the prompt and response pair of largest uncertainty of the reward
difference,

    i_t = argmax_i ||z_i||_{V_t^{-1}},   z_i = phi(x, a_i) - phi(x, b_i),

then add ``z_{i_t}`` to the design matrix. They show that sampling prompts
uniformly can leave a constant sub-optimality gap under a small budget, while
APO's gap is ``O~(d / sqrt(T))``, matching their ``Omega(d / sqrt(T))`` lower
bound up to logarithms and the non-linearity constant ``kappa`` (see
``theory/preference.md``).

Here ``V`` is the Laplace posterior precision of the Bradley-Terry model, the
*Fisher-weighted* ``V = lambda I + sum_j mu_j (1 - mu_j) z_j z_j'``
(:mod:`alband.models.bradley_terry`); the paper's analysis uses the unweighted
matrix with the worst-case curvature ``kappa`` in front; the weighted
matrix is the one the learner's posterior provides, and it stops spending
answers on pairs the model already predicts with certainty. A batch of ``B`` is ``B`` greedy steps: after picking ``z`` with
weight ``w`` (``mu (1 - mu)`` under the current model), with ``u = V^{-1} z``
and ``c = 1 + w z' u`` (Sherman-Morrison),

    V^{-1} <- V^{-1} - w u u' / c,     s_i <- s_i - w (z_i' u)^2 / c,

for every pool row's ``s_i = ||z_i||^2_{V^{-1}}``. Since the updates only
lower the ``s_i``, the batch is computed lazily (:func:`lazy_greedy_rank_one_batch`):
one ``O(N d^2)`` pass, then Sherman-Morrison updates of a candidate set whose
best member provably beats everything outside it (``O(M d)`` per pick), with
the same picks as the eager update of the whole pool (tested). The answer itself is not needed to
update ``V`` (the design matrix does not depend on labels), so the batch is
exactly the first ``B`` steps of the sequential rule.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.design._linalg import leverages
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update
from alband.policies.preference._posterior import (
    fisher_weights,
    posterior_variances,
    precision_inverse,
    require_posterior,
)
from alband.policies.registry import register_policy

Array = jax.Array


@partial(jax.jit, static_argnames=("batch_size", "criterion"))
def greedy_rank_one_batch(z: Array, precision: Array, weight: Array, available: Array, batch_size: int,
                          criterion: str = "apo") -> Array:
    """``batch_size`` greedy picks, each followed by the rank-1 update ``V += w z z'``.

    ``criterion="apo"`` takes the largest ``s_i = ||z_i||^2_{V^{-1}}``;
    ``criterion="d"`` the largest ``w_i s_i``, the gain ``log(1 + w_i s_i)`` of
    ``log det V`` (greedy Bayesian D-optimal design). Indices are distinct and
    available; ``-1`` once nothing is left. Every pick updates all ``s_i``
    (one ``z @ u`` pass); :func:`lazy_greedy_rank_one_batch` gives the same
    batch without those passes.
    """
    V_inv = precision_inverse(precision)
    s = posterior_variances(z, precision)

    def body(t, state):
        V_inv, s, available, picks = state
        score = s if criterion == "apo" else weight * s
        i = jnp.argmax(jnp.where(available, score, -jnp.inf))
        ok = available[i]
        u = V_inv @ z[i]
        w = weight[i]
        factor = jnp.where(ok, w / (1.0 + w * (z[i] @ u)), 0.0)
        zu = z @ u
        V_inv = V_inv - factor * jnp.outer(u, u)
        s = s - factor * zu * zu
        picks = picks.at[t].set(jnp.where(ok, i, -1).astype(jnp.int32))
        return V_inv, s, available.at[i].set(False), picks

    init = (V_inv, s, available, jnp.full((batch_size,), -1, jnp.int32))
    return jax.lax.fori_loop(0, batch_size, body, init)[3]


@partial(jax.jit, static_argnames=("batch_size", "criterion", "candidates"))
def lazy_greedy_rank_one_batch(z: Array, precision: Array, weight: Array, available: Array, batch_size: int,
                               criterion: str = "apo", candidates: int = 8192) -> Array:
    """The batch of :func:`greedy_rank_one_batch` with eager updates on a candidate set only.

    Adding ``w z z'`` to ``V`` can only lower every score (``s_i`` or
    ``w_i s_i``), so a score computed earlier bounds the current one from
    above (the observation behind lazy greedy, Minoux 1978). After one
    ``O(N d^2)`` pass for the initial scores (a GEMM), the ``M = candidates``
    best items are kept with their rows and exact scores, updated after every
    pick by Sherman-Morrison (``O(M d)``); everything outside is bounded by
    the ``(M+1)``-th initial score. While the best candidate's current score is
    at least that bound, it is the exact greedy pick. When it is not, the
    scores of the whole pool are brought up to date in one pass,
    ``s_i - sum_t f_t (z_i' u_t)^2`` (a ``(N, d) x (d, B)`` GEMM over the picks
    so far), and the candidate set is rebuilt. The picks equal the eager
    ones (tested, including ``M = 1``, which rebuilds at every pick); the pool
    is read about once instead of ``B`` times.
    """
    n, d = z.shape
    M = max(1, min(candidates, n))
    V_inv = precision_inverse(precision)
    h0 = leverages(z, V_inv)
    w = weight if criterion == "d" else jnp.ones_like(weight)

    def build(s_all, available):
        key = jnp.where(available, w * s_all, -jnp.inf)
        if M < n:
            vals, idx = jax.lax.top_k(key, M + 1)
            bound, idx = vals[M], idx[:M]
        else:
            idx, bound = jnp.arange(n, dtype=jnp.int32), jnp.asarray(-jnp.inf, z.dtype)
        return idx, z[idx], s_all[idx], bound

    def body(t, state):
        V_inv, U, F, available, idx, zS, sS, bound, picks = state

        def rebuild(_):
            P = z @ U.T  # (n, B); rows of U not yet used are zero
            return build(h0 - (P * P) @ F, available)

        best = jnp.max(jnp.where(available[idx], w[idx] * sS, -jnp.inf))
        idx, zS, sS, bound = jax.lax.cond(best < bound, rebuild, lambda _: (idx, zS, sS, bound), None)
        score = jnp.where(available[idx], w[idx] * sS, -jnp.inf)
        j = jnp.argmax(score)
        i = idx[j]
        ok = jnp.isfinite(score[j])
        u = V_inv @ z[i]
        factor = jnp.where(ok, weight[i] / (1.0 + weight[i] * (z[i] @ u)), 0.0)
        V_inv = V_inv - factor * jnp.outer(u, u)
        zu = zS @ u
        sS = sS - factor * zu * zu
        U, F = U.at[t].set(u), F.at[t].set(factor)
        picks = picks.at[t].set(jnp.where(ok, i, -1).astype(jnp.int32))
        available = available.at[i].set(available[i] & ~ok)
        return V_inv, U, F, available, idx, zS, sS, bound, picks

    idx, zS, sS, bound = build(h0, available)
    init = (V_inv, jnp.zeros((batch_size, d), z.dtype), jnp.zeros((batch_size,), z.dtype), available,
            idx, zS, sS, bound, jnp.full((batch_size,), -1, jnp.int32))
    return jax.lax.fori_loop(0, batch_size, body, init)[8]


def apo_batch(z: Array, precision: Array, p_first: Array, queried: Array, batch_size: int) -> Array:
    """APO's batch (module docstring) among the pairs not yet judged."""
    weight = fisher_weights(p_first)
    return lazy_greedy_rank_one_batch(z, precision, weight, ~queried, batch_size, "apo")


@register_policy("apo")
def apo() -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        posterior = require_posterior(ctx, "apo")
        picks = apo_batch(ctx.x, posterior.precision, ctx.probs[:, 0], ctx.queried, batch_size)
        return picks, state

    return QueryPolicy("apo", _stateless_init, select, _stateless_update)
