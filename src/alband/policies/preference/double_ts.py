r"""Double Thompson sampling: two posterior draws choose a champion and a challenger among K candidates.

Dueling bandits (Yue, Broder, Kleinberg and Joachims 2012) ask which of two
arms wins; Double Thompson sampling (Wu and Liu 2016, "Double Thompson
sampling for dueling bandits") picks the first arm from one posterior draw and
the second from an independent draw, so both arms are chosen by their
probability of being the best. For a linear reward model over a prompt's
candidates (Dwaracherla, Asghari, Hao and Van Roy 2024, "Efficient exploration
for LLMs", where it needed far fewer queries than uniform pairs), with the
Laplace posterior ``theta ~ N(theta_hat, V^{-1})``:

    theta^(1), theta^(2) ~ N(theta_hat, V^{-1}) independent,
    champion   = argmax_k theta^(1)' x_k,
    challenger = argmax_{k != champion} theta^(2)' x_k,

over the valid candidates ``x_1..x_K`` of the prompt. Excluding the champion
from the second argmax is the rule of Dwaracherla et al. when both draws agree
(a response is never compared with itself). The draws are
``theta = theta_hat + L'^{-1} e`` with ``V = L L'`` and
``e ~ N(0, I)`` from ``jax.random.normal(key, (2, P, d))`` (``L'^{-1}`` formed
once, then one ``(2P, d) x (d, d)`` product) -- one pair of
draws per prompt, so prompts are independent and the decisions of a prompt do
not depend on the others (the test replays the same ``e`` in float64 numpy and
gets the same decisions). Cost: ``O(d^3 + P d^2)`` for the draws and two
``(P, K, d)`` contractions.

The policy on a pair pool with prompt groups: every prompt's (champion,
challenger) pair is looked up in ``aux.pair_of``; unjudged decided pairs come
first in a random order of prompts, then the other unjudged pairs at random
(when prompts run out of undecided pairs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.models.bradley_terry import GaussianPosterior
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update, top_unqueried
from alband.policies.preference._posterior import require_aux, require_posterior
from alband.policies.registry import register_policy

Array = jax.Array


def posterior_draw_pairs(key: Array, posterior: GaussianPosterior, n_prompts: int) -> Array:
    """``theta^(1), theta^(2)`` for each prompt, shape (2, P, d) (module docstring)."""
    d = posterior.mean.shape[0]
    return draws_from_noise(jax.random.normal(key, (2, n_prompts, d), posterior.mean.dtype), posterior)


def draws_from_noise(e: Array, posterior: GaussianPosterior) -> Array:
    """``theta = mean + L'^{-1} e`` for standard normal ``e`` (2, P, d), ``precision = L L'``."""
    _, n_prompts, d = e.shape
    L = jnp.linalg.cholesky(posterior.precision)
    # L'^{-1} once (O(d^3)), then one GEMM for all draws: faster on CPU than a triangular solve of 2P columns.
    L_t_inv = jax.scipy.linalg.solve_triangular(L.T, jnp.eye(d, dtype=L.dtype), lower=False)
    return posterior.mean + (e.reshape(-1, d) @ L_t_inv.T).reshape(2, n_prompts, d)


@jax.jit
def double_ts_decisions(key: Array, x_candidates: Array, valid: Array, posterior: GaussianPosterior) -> Array:
    """(champion, challenger) slot of each prompt, shape (P, 2) int32; -1 where a prompt has < 2 candidates.

    ``x_candidates`` (P, K, d) features of each prompt's candidates, ``valid`` (P, K) bool.
    """
    e = jax.random.normal(key, (2, x_candidates.shape[0], posterior.mean.shape[0]), posterior.mean.dtype)
    return double_ts_decisions_from_noise(e, x_candidates, valid, posterior)


@jax.jit
def double_ts_decisions_from_noise(e: Array, x_candidates: Array, valid: Array, posterior: GaussianPosterior) -> Array:
    """:func:`double_ts_decisions` given the standard normal draws ``e`` (2, P, d)."""
    thetas = draws_from_noise(e, posterior)
    r1 = jnp.einsum("pkd,pd->pk", x_candidates, thetas[0])
    r2 = jnp.einsum("pkd,pd->pk", x_candidates, thetas[1])
    champion = jnp.argmax(jnp.where(valid, r1, -jnp.inf), axis=1)
    others = valid & (jnp.arange(valid.shape[1])[None, :] != champion[:, None])
    challenger = jnp.argmax(jnp.where(others, r2, -jnp.inf), axis=1)
    enough = jnp.sum(valid, axis=1) >= 2
    return jnp.where(enough[:, None], jnp.stack([champion, challenger], axis=1), -1).astype(jnp.int32)


def double_ts_pair_scores(key: Array, decisions: Array, pair_of: Array, n_pairs: int) -> Array:
    """Scores over pool rows: decided pairs in ``(1, 2)``, the others in ``(0, 1)``, random within each."""
    k_prompt, k_rest = jax.random.split(key)
    n_prompts = decisions.shape[0]
    rows = jnp.where(decisions[:, 0] >= 0,
                     pair_of[jnp.arange(n_prompts), jnp.maximum(decisions[:, 0], 0), jnp.maximum(decisions[:, 1], 0)],
                     -1)
    priority = 1.0 + jax.random.uniform(k_prompt, (n_prompts,), minval=1e-6, maxval=1.0)
    scores = jax.random.uniform(k_rest, (n_pairs,), minval=0.0, maxval=0.999)
    # Rows of -1 (no such pair) go to an index past the end and are dropped.
    return scores.at[jnp.where(rows >= 0, rows, n_pairs)].set(priority, mode="drop")


@register_policy("double_ts")
def double_ts() -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        aux = require_aux(ctx, "double_ts")
        posterior = require_posterior(ctx, "double_ts")
        k_draw, k_order = jax.random.split(key)
        valid = aux.candidates >= 0
        x_candidates = aux.response_x[jnp.where(valid, aux.candidates, 0)]
        decisions = double_ts_decisions(k_draw, x_candidates, valid, posterior)
        scores = double_ts_pair_scores(k_order, decisions, aux.pair_of, ctx.x.shape[0])
        return top_unqueried(scores, ctx.queried, batch_size), state

    return QueryPolicy("double_ts", _stateless_init, select, _stateless_update)
