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

from alband.design._linalg import triangular_leverages
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update
from alband.policies.preference._posterior import (
    fisher_weights,
    posterior_variances,
    precision_factor_inverse,
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
    return _eager_picks(z, precision_inverse(precision), posterior_variances(z, precision), weight, available,
                        batch_size, criterion)


def _eager_picks(z: Array, V_inv: Array, s: Array, weight: Array, available: Array, batch_size: int,
                 criterion: str) -> Array:
    """The eager greedy from ``V^{-1}`` and the scores ``s_i = z_i' V^{-1} z_i`` (one pool pass per pick)."""

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


def candidate_greedy(z: Array, V_inv: Array, s: Array, weight: Array, available: Array, batch_size: int,
                     criterion: str, candidates: int) -> tuple[Array, Array]:
    """The greedy on the ``candidates`` best rows only: ``(picks, exact)``.

    ``s`` holds the initial scores ``z_i' V^{-1} z_i`` of every row. The
    ``M = candidates`` rows of largest initial key (``s_i``, or ``w_i s_i`` for
    ``"d"``) are kept with their rows; every pick is the best candidate, followed
    by the Sherman-Morrison update of ``V^{-1}`` and of the candidates' scores
    (``O(M d)``, the pool is not read again). Since updates only lower the
    keys, the ``(M+1)``-th initial key bounds every row outside the set; while
    the pick's key is at least that bound it is the eager greedy's pick.
    ``exact`` is False when some pick fell below the bound (or the candidates
    ran out before the available rows did): the picks may then differ from the
    eager greedy's.
    """
    n, d = z.shape
    M = max(1, min(candidates, n))
    key_weight = weight if criterion == "d" else jnp.ones_like(weight)
    key = jnp.where(available, key_weight * s, -jnp.inf)
    if M < n:
        values, idx = jax.lax.top_k(key, M + 1)
        bound, idx, values = values[M], idx[:M], values[:M]
    else:
        idx, bound = jnp.arange(n, dtype=jnp.int32), jnp.asarray(-jnp.inf, z.dtype)
        values = key
    zS, sS, kS, wS = z[idx], s[idx], key_weight[idx], weight[idx]

    def body(t, state):
        V_inv, sS, open_, picks, exact = state
        score = jnp.where(open_, kS * sS, -jnp.inf)
        j = jnp.argmax(score)
        ok = jnp.isfinite(score[j])
        exact = exact & ((score[j] >= bound) | ~jnp.isfinite(bound))
        u = V_inv @ zS[j]
        factor = jnp.where(ok, wS[j] / (1.0 + wS[j] * (zS[j] @ u)), 0.0)
        V_inv = V_inv - factor * jnp.outer(u, u)
        zu = zS @ u
        sS = sS - factor * zu * zu
        picks = picks.at[t].set(jnp.where(ok, idx[j], -1).astype(jnp.int32))
        return V_inv, sS, open_.at[j].set(False), picks, exact

    init = (V_inv, sS, jnp.isfinite(values), jnp.full((batch_size,), -1, jnp.int32), jnp.bool_(True))
    _, _, _, picks, exact = jax.lax.fori_loop(0, batch_size, body, init)
    return picks, exact


@partial(jax.jit, static_argnames=("batch_size", "criterion", "candidates"))
def lazy_greedy_rank_one_batch(z: Array, precision: Array, weight: Array, available: Array, batch_size: int,
                               criterion: str = "apo", candidates: int = 4096) -> Array:
    """The batch of :func:`greedy_rank_one_batch`, reading the pool once.

    Adding ``w z z'`` to ``V`` can only lower every score (``s_i`` or
    ``w_i s_i``), so a score computed earlier bounds the current one from
    above (the observation behind lazy greedy, Minoux 1978). After one
    ``O(N d^2)`` pass for the initial scores (the floor of any exact greedy;
    ``||R z_i||^2`` with the triangular ``R = L^{-1}``,
    :func:`alband.design._linalg.triangular_leverages`, two thirds of the
    multiply-adds of ``z_i' V^{-1} z_i`` at ``d = 384``), the batch is picked among the ``candidates`` best rows alone
    (:func:`candidate_greedy`, ``O(M d)`` per pick); when a pick falls below
    the bound that every other row's initial score gives (rare: the candidates
    hold the batch many times over), the batch is recomputed by the eager greedy
    from the same first pass (one ``O(N d)`` pass per pick). Either way the
    picks are the eager greedy's (tested, including ``candidates = 1``, where
    the bound fails at once). The whole batch is one jitted program with no
    Python loop over pool rows.
    """
    R, V_inv = precision_factor_inverse(precision)
    s = triangular_leverages(z, R)
    picks, exact = candidate_greedy(z, V_inv, s, weight, available, batch_size, criterion, candidates)
    return jax.lax.cond(exact, lambda: picks,
                        lambda: _eager_picks(z, V_inv, s, weight, available, batch_size, criterion))


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
