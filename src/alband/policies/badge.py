r"""BADGE: batch active learning by diverse gradient embeddings (Ash et al. 2020, ICLR; arXiv 1906.03671).

For the softmax regression ``p_i = softmax(W' x_i + b)`` with hypothetical
label ``yhat_i = argmax_c p_ic``, the gradient of the cross-entropy with
respect to the weight matrix is the *gradient embedding*

    g_i = (p_i - e_{yhat_i}) (x) x_i   in R^{C d}.

Its norm is large for uncertain items and its direction encodes what the item
would teach; BADGE picks the batch by k-means++ seeding on the ``g_i``
(Arthur and Vassilvitskii 2007): the first centre is the item of largest
``||g_i||``, each next centre is drawn with probability proportional to
``D(g_i)^2``, its squared distance to the nearest centre chosen so far.

**Never materialised.** With ``a_i = p_i - e_{yhat_i}`` the Kronecker structure
gives ``<g_i, g_j> = <a_i, a_j> <x_i, x_j>``, so

    ||g_i - g_j||^2 = ||a_i||^2 ||x_i||^2 + ||a_j||^2 ||x_j||^2 - 2 <a_i, a_j> <x_i, x_j>,

and the distances from every item to a new centre ``j`` cost one pass
``A a_j`` and one ``X x_j``: O(N (C + d)) per pick, memory O(N (C + d)); the
``(N, C d)`` matrix is never formed.

**Distinct picks, always.** Sampling is restricted to the candidates (unpicked,
unqueried items; see :func:`alband.policies.coreset.candidate_mask`): their
``D^2`` weight is used, every other item's weight is exactly 0. The draw is by
inverse CDF on the cumulative weights with one uniform number per pick, and the
drawn item is accepted only if its weight is positive (scikit-activeml's
implementation can return duplicate indices, its issue 586). If every candidate
has weight 0 -- all gradient embeddings equal, e.g. one-hot predictions
(``a_i = 0``) or duplicated points -- the pick falls back to a uniformly random
candidate. The ``B`` picks are a ``lax.fori_loop``; random numbers come from the
round key. The last layer is the weight matrix only (the intercept's gradient,
``a_i`` itself, is left out as in the paper's last-layer embedding of ``x``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, RoundContext, _stateless_init, _stateless_update
from alband.policies.coreset import candidate_mask
from alband.policies.registry import register_policy

Array = jax.Array


def probability_residuals(probs: Array) -> Array:
    """``a_i = p_i - e_{argmax p_i}``, shape (N, C)."""
    yhat = jnp.argmax(probs, axis=-1)
    return probs.astype(jnp.float32) - jax.nn.one_hot(yhat, probs.shape[-1], dtype=jnp.float32)


def gradient_embedding(probs: Array, x: Array) -> Array:
    """The explicit ``(N, C d)`` gradient embeddings ``a_i (x) x_i`` (for checks on small data only)."""
    a = probability_residuals(probs)
    return (a[:, :, None] * x.astype(jnp.float32)[:, None, :]).reshape(x.shape[0], -1)


def gradient_embedding_sq_norms(probs: Array, x: Array) -> Array:
    """``||g_i||^2 = ||a_i||^2 ||x_i||^2`` for every item."""
    a = probability_residuals(probs)
    x = x.astype(jnp.float32)
    return jnp.sum(a * a, axis=1) * jnp.sum(x * x, axis=1)


def gradient_embedding_sq_distances(probs: Array, x: Array, j: Array | int) -> Array:
    """``||g_i - g_j||^2`` for every item ``i`` (clamped at 0), without forming ``g``."""
    a = probability_residuals(probs)
    x = x.astype(jnp.float32)
    g2 = jnp.sum(a * a, axis=1) * jnp.sum(x * x, axis=1)
    return _distances(a, x, g2, j)


def _distances(a: Array, x: Array, g2: Array, j: Array | int) -> Array:
    return jnp.maximum(g2 + g2[j] - 2.0 * (a @ a[j]) * (x @ x[j]), 0.0)


@partial(jax.jit, static_argnames=("batch_size",))
def badge_select(probs: Array, x: Array, queried: Array, key: Array, batch_size: int) -> Array:
    """``batch_size`` distinct items by k-means++ seeding on the gradient embeddings."""
    n = x.shape[0]
    a = probability_residuals(probs)
    x = x.astype(jnp.float32)
    g2 = jnp.sum(a * a, axis=1) * jnp.sum(x * x, axis=1)
    keys = jax.random.split(key, 2)
    u = jax.random.uniform(keys[0], (batch_size,))
    # A random order of the items: fallback picks take the first unpicked candidate in it.
    fallback_order = jax.random.uniform(keys[1], (n,))

    def first_pick():
        candidates = candidate_mask(jnp.zeros((n,), bool), queried)
        i = jnp.argmax(jnp.where(candidates, g2, -jnp.inf))
        return i, _distances(a, x, g2, i)

    def body(t, state):
        dmin, picked, picks = state
        candidates = candidate_mask(picked, queried)
        weights = jnp.where(candidates, dmin, 0.0)
        cumulative = jnp.cumsum(weights)
        total = cumulative[-1]
        drawn = jnp.minimum(jnp.searchsorted(cumulative, u[t] * total, side="right"), n - 1)
        fallback = jnp.argmax(jnp.where(candidates, fallback_order, -jnp.inf))
        i = jnp.where((total > 0) & (weights[drawn] > 0), drawn, fallback)
        dmin = jnp.minimum(dmin, _distances(a, x, g2, i))
        return dmin, picked.at[i].set(True), picks.at[t].set(i.astype(jnp.int32))

    i0, d0 = first_pick()
    picked = jnp.zeros((n,), bool).at[i0].set(True)
    picks = jnp.zeros((batch_size,), jnp.int32).at[0].set(i0.astype(jnp.int32))
    return jax.lax.fori_loop(1, batch_size, body, (d0, picked, picks))[2]


@register_policy("badge")
def badge() -> QueryPolicy:
    """k-means++ seeding on last-layer gradient embeddings (module docstring)."""

    def select(state, ctx: RoundContext, key: Array, batch_size: int):
        return badge_select(ctx.probs, ctx.x, ctx.queried, key, batch_size), state

    return QueryPolicy("badge", _stateless_init, select, _stateless_update)
