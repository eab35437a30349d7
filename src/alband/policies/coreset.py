r"""Core-set selection by k-center greedy (Sener and Savarese 2018, ICLR; arXiv 1708.00489).

Choose the batch ``S`` so that every pool point is close to a labelled or
chosen point: the k-center problem ``min_S max_i min_{j in L u S} ||x_i - x_j||``.
Its greedy 2-approximation (Gonzalez 1985) repeatedly takes the pool point
farthest from the current centres,

    i_t = argmax_{i unqueried, unpicked} delta_i,
    delta_i <- min(delta_i, ||x_i - x_{i_t}||^2),

with ``delta_i`` the squared distance from ``x_i`` to the labelled + chosen set.
Each pick is one vectorised pass ``X @ x_{i_t}`` (O(N d)) using
``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a'b``; the ``B`` picks are a
``lax.fori_loop``.

The distances to the labelled set are kept in the policy state and extended,
at the start of every ``select``, by the items queried since the last call
(``ctx.queried`` minus the items already covered) in blocks of rows
(:func:`alband.policies._chunked.fold_masked_rows`): each round costs
O(N (B + new labels) d), not O(N |L| d). ``ctx.queried`` only grows during a
run; a state must not be reused with a context whose queried set shrank.
With no labelled item at all, the first centre is a uniformly random
unqueried item (drawn with the round key).

This module also holds the helpers every sequential (one pick at a time)
policy shares: :func:`candidate_mask` -- unpicked unqueried items first, then,
once none is left, unpicked queried ones, so a batch is always ``B`` distinct
indices with every unqueried item used first -- and :func:`fill_invalid`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, RoundContext, _stateless_update
from alband.policies.registry import register_policy
from alband.policies._chunked import block_rows_for, fold_masked_rows

Array = jax.Array


def candidate_mask(picked: Array, queried: Array) -> Array:
    """Items a sequential policy may pick next: unpicked unqueried ones, else unpicked queried ones."""
    fresh = ~picked & ~queried
    return jnp.where(jnp.any(fresh), fresh, ~picked)


def fill_invalid(
    picks: Array, valid: Array, queried: Array, *, prefer_queried: bool = False, order: Array | None = None
) -> Array:
    """``picks`` with every invalid slot replaced by a distinct item not among the valid picks.

    Fillers are unqueried items first, then queried ones; with
    ``prefer_queried`` the other way round (queried items first: the loop drops
    them without buying, which lets a policy propose fewer than ``B``
    purchases). Within each group, items of larger ``order`` come first
    (default: the lower pool index). Needs ``len(picks) <= N``.
    """
    n = queried.shape[0]
    b = picks.shape[0]
    picked = jnp.zeros((n,), bool).at[jnp.where(valid, picks, n)].set(True, mode="drop")
    group = jnp.where(queried == prefer_queried, 2.0, 1.0)
    if order is not None:
        # Squash the order into [0, 0.5] so it only breaks ties within a group.
        order = jnp.where(jnp.isfinite(order), order, jnp.nan).astype(jnp.float32)
        lo, hi = jnp.nanmin(order), jnp.nanmax(order)
        squashed = jnp.where(jnp.isnan(order), 0.0, 0.5 * (order - lo) / jnp.maximum(hi - lo, 1e-30))
        group = group + squashed
    priority = jnp.where(picked, 0.0, group)
    fillers = jax.lax.top_k(priority, b)[1].astype(jnp.int32)
    slot = jnp.cumsum(~valid) - 1
    return jnp.where(valid, picks, fillers[jnp.clip(slot, 0, b - 1)]).astype(jnp.int32)


def squared_distances_to(x: Array, sq_norms: Array, i: Array) -> Array:
    """``||x_j - x_i||^2`` for every row ``j`` (clamped at 0), one ``X @ x_i`` pass."""
    return jnp.maximum(sq_norms + sq_norms[i] - 2.0 * (x @ x[i]), 0.0)


@partial(jax.jit, static_argnames=("block_rows",))
def min_squared_distance_to_set(x: Array, mask: Array, start: Array | None = None, *, block_rows: int | None = None) -> Array:
    """``min(start_i, min_{j: mask_j} ||x_i - x_j||^2)`` for every row, in blocks of masked rows.

    ``start`` defaults to ``+inf`` (the distance to the empty set). Cost
    O(N sum(mask) d) as ``(N, block)`` matrix products; memory O(N block).
    """
    n = x.shape[0]
    sq_norms = jnp.sum(x * x, axis=1)
    start = jnp.full((n,), jnp.inf, x.dtype) if start is None else start
    block = block_rows or block_rows_for(n)

    def fold(dmin, rows, valid):
        xb = x[rows]
        d2 = sq_norms[:, None] + sq_norms[rows][None, :] - 2.0 * (x @ xb.T)
        d2 = jnp.where(valid[None, :], jnp.maximum(d2, 0.0), jnp.inf)
        return jnp.minimum(dmin, jnp.min(d2, axis=1))

    return fold_masked_rows(fold, start, mask, block)


class CoresetState(NamedTuple):
    """Squared distance of every item to the labelled items seen so far."""

    min_sq_dist: Array  # (N,) float32, +inf before any labelled item
    covered: Array  # (N,) bool, labelled items already folded into min_sq_dist


@partial(jax.jit, static_argnames=("batch_size",))
def k_center_greedy(x: Array, queried: Array, min_sq_dist: Array, key: Array, batch_size: int) -> Array:
    """``batch_size`` distinct k-center greedy picks given each item's distance to the labelled set."""
    n = x.shape[0]
    sq_norms = jnp.sum(x * x, axis=1)
    tie_break = jax.random.uniform(key, (n,))

    def body(t, state):
        dmin, picked, picks = state
        candidates = candidate_mask(picked, queried)
        score = jnp.where(candidates, dmin, -jnp.inf)
        i = jnp.argmax(score)
        # Nothing labelled or chosen yet (all distances infinite): a random first centre.
        i = jnp.where(jnp.isposinf(score[i]), jnp.argmax(jnp.where(candidates, tie_break, -jnp.inf)), i)
        dmin = jnp.minimum(dmin, squared_distances_to(x, sq_norms, i))
        return dmin, picked.at[i].set(True), picks.at[t].set(i.astype(jnp.int32))

    init = (min_sq_dist, jnp.zeros((n,), bool), jnp.zeros((batch_size,), jnp.int32))
    return jax.lax.fori_loop(0, batch_size, body, init)[2]


@register_policy("coreset")
def coreset() -> QueryPolicy:
    """k-center greedy over the pool embeddings ``ctx.x`` (module docstring)."""

    def init(ctx: RoundContext) -> CoresetState:
        n = ctx.x.shape[0]
        return CoresetState(jnp.full((n,), jnp.inf, jnp.float32), jnp.zeros((n,), bool))

    def select(state: CoresetState, ctx: RoundContext, key: Array, batch_size: int):
        x = ctx.x.astype(jnp.float32)
        new = ctx.queried & ~state.covered
        dmin = min_squared_distance_to_set(x, new, state.min_sq_dist)
        state = CoresetState(dmin, state.covered | ctx.queried)
        return k_center_greedy(x, ctx.queried, dmin, key, batch_size), state

    return QueryPolicy("coreset", init, select, _stateless_update)
