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

for every pool row's ``s_i = ||z_i||^2_{V^{-1}}``: one ``Z u`` product per pick,
``O(N d)``, after one ``O(N d^2)`` pass. The answer itself is not needed to
update ``V`` (the design matrix does not depend on labels), so the batch is
exactly the first ``B`` steps of the sequential rule.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

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
    available; ``-1`` once nothing is left.
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


def apo_batch(z: Array, precision: Array, p_first: Array, queried: Array, batch_size: int) -> Array:
    """APO's batch (module docstring) among the pairs not yet judged."""
    weight = fisher_weights(p_first)
    return greedy_rank_one_batch(z, precision, weight, ~queried, batch_size, "apo")


@register_policy("apo")
def apo() -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        posterior = require_posterior(ctx, "apo")
        picks = apo_batch(ctx.x, posterior.precision, ctx.probs[:, 0], ctx.queried, batch_size)
        return picks, state

    return QueryPolicy("apo", _stateless_init, select, _stateless_update)
