r"""Greedy sequential D-optimal batches: the fast rank-1 rounding of a G-/D-optimal design.

With the queried items conditioning a ridge information matrix
``A = ridge I + sum_{i queried} x_i x_i'``, each pick takes the unqueried item
of largest predictive variance ``g_i = x_i' A^{-1} x_i`` and adds it to ``A``.
Its log-det gain is ``log(1 + g_i)`` (matrix determinant lemma), so each pick
is the greedy step of D-optimal design (Fedorov 1972, ch. 4; the greedy
rounding of Pukelsheim 2006, ch. 12) and of G-optimal design (it lowers the
largest variance first). ``log det`` is submodular over item sets, so the
greedy batch has at least ``(1 - 1/e)`` of the best batch's gain
(Nemhauser, Wolsey and Fisher 1978).

Cost: one ``O(N d^2)`` pass for ``A`` and the widths, then per pick a
Sherman-Morrison update of ``A^{-1}`` and of every width,
``g_i <- g_i - (x_i' u)^2 / (1 + x' u)`` with ``u = A^{-1} x`` -- one ``X @ u``
pass, ``O(N d)``. No design is solved. ``"g_design"`` uses the same
criterion by default whenever the batch is smaller than the dimension
(:mod:`alband.policies.design_based`), with a ridge relative to the pool's
scale (``ridge * mean ||x||^2 / d``) where this policy's ``ridge`` is absolute.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.policies._rank_one import rank_one_widths, sherman_morrison, squared_widths
from alband.policies.base import QueryPolicy, RoundContext, _stateless_init, _stateless_update
from alband.policies.registry import register_policy

Array = jax.Array


def d_greedy_select(x: Array, queried: Array, batch_size: int, ridge: float = 1.0) -> Array:
    """``batch_size`` distinct pool indices by greedy log-det gain (module docstring)."""
    n, d = x.shape
    mask = queried.astype(x.dtype)
    information = ridge * jnp.eye(d, dtype=x.dtype) + (x * mask[:, None]).T @ x
    covariance = jnp.linalg.inv(information)
    widths = squared_widths(x, covariance, False)

    def pick(k, carry):
        covariance, widths, in_batch, chosen = carry
        candidate = jnp.where(queried | in_batch, -jnp.inf, widths)
        fresh_left = jnp.isfinite(jnp.max(candidate))
        # With no unqueried item left, fill the slot with an item not yet in the batch
        # (already queried: the loop skips it without buying), keeping the batch distinct.
        best = jnp.where(fresh_left, jnp.argmax(candidate), jnp.argmin(in_batch)).astype(jnp.int32)
        covariance_new, u, s = sherman_morrison(covariance, x[best])
        widths = rank_one_widths(widths, x @ u, s)
        return covariance_new, widths, in_batch.at[best].set(True), chosen.at[k].set(best)

    in_batch = jnp.zeros((n,), bool)
    chosen = jnp.zeros((batch_size,), jnp.int32)
    *_, chosen = jax.lax.fori_loop(0, batch_size, pick, (covariance, widths, in_batch, chosen))
    return chosen


@register_policy("d_greedy")
def d_greedy(ridge: float = 1.0) -> QueryPolicy:
    """Greedy D-optimal batch over the unqueried pool, conditioned on the queried items."""

    def select(state, ctx: RoundContext, key, batch_size):
        return d_greedy_select(ctx.x, ctx.queried, batch_size, ridge), state

    return QueryPolicy("d_greedy", _stateless_init, select, _stateless_update)
