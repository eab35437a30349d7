r"""From a design (weights on the simplex) to a batch of items to label.

A design ``pi`` says how the labelling effort should be spread; a labelling
round needs ``B`` *distinct* pool items that are not labelled yet.

``round_design`` -- greedy rank-1 rounding to distinct items. Starting from
``A = lambda I``, it adds one item at a time, the one of largest gain

    log det(A + x x') - log det A = log(1 + x' A^{-1} x),

among the available items of the design's support (``pi_i > 0``); only when
the available support is used up does it continue over the rest of the
available pool. ``A^{-1}`` and all ``h_i = x_i' A^{-1} x_i`` are kept current
by Sherman-Morrison, O(n d) per pick. Why this rule: (i) the support of a
D-optimal design holds the informative directions, and a batch of at least its
size takes all of it, which is the apportionment of ``B pi`` when every item
may be taken once; (ii) within the support, greedy log-det maximisation is the
classic (1 - 1/e)-approximate rule for the monotone submodular objective
``log det(lambda I + sum_S x x')`` (Nemhauser, Wolsey and Fisher 1978), so a
batch smaller than the support still spans it evenly. The ridge ``lambda`` is
``ridge * mean_i ||x_i||^2 / d``. Items flagged in ``exclude_mask`` (already
labelled, already queued) are never returned.

``efficient_rounding`` -- Pukelsheim and Rieder (1992, "Efficient rounding of
approximate designs", Biometrika 79; Pukelsheim 2006, ch. 12): integer counts
``n_i`` summing to ``N`` for an experiment where items may be *repeated*
(G-optimal exploration in bandits, Lattimore and Szepesvari 2020, ch. 21).
Start from ``n_i = ceil((N - p/2) pi_i)`` on the ``p`` support points, then
while ``sum n > N`` decrease a count with the largest ``(n_i - 1) / pi_i`` and
while ``sum n < N`` increase one with the smallest ``n_i / pi_i``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._checks import bool_mask, is_concrete, pool_array, positive_float, positive_int, vector
from alband.errors import AlbandError

# Weights below this fraction of the largest one count as off the support
# (interior-point solvers leave such crumbs where Frank-Wolfe leaves zeros).
SUPPORT_RTOL = 1e-6


def ridge_value(X: Array, ridge: float | Array) -> Array:
    """``ridge * mean_i ||x_i||^2 / d``: a ridge on the scale of the pool."""
    n, d = X.shape
    scale = jnp.sum(X * X) / (n * d)
    return jnp.asarray(ridge, X.dtype) * jnp.where(scale > 0, scale, 1.0)


class _Greedy:
    """Sherman-Morrison state of ``A = lambda I + sum_S x x'`` for greedy picks."""

    @staticmethod
    def init(X: Array, lam: Array) -> tuple[Array, Array]:
        d = X.shape[1]
        return jnp.eye(d, dtype=X.dtype) / lam, jnp.sum(X * X, axis=1) / lam

    @staticmethod
    def add(X: Array, A_inv: Array, h: Array, i: Array, keep: Array) -> tuple[Array, Array]:
        u = A_inv @ X[i]
        c = (1.0 + X[i] @ u) / keep  # keep = 0 -> c = inf -> no update
        Xu = X @ u
        return A_inv - jnp.outer(u, u) / c, h - Xu * Xu / c


@partial(jax.jit, static_argnames=("batch_size",))
def round_design_kernel(X: Array, weights: Array, batch_size: int, exclude_mask: Array,
                        ridge: float | Array = 1e-2) -> Array:
    """Greedy rank-1 rounding (module docstring), jitted; ``-1`` once nothing is left."""
    dtype = X.dtype
    A_inv, h = _Greedy.init(X, ridge_value(X, ridge))
    support = weights > SUPPORT_RTOL * jnp.max(weights)

    def body(t, state):
        A_inv, h, available, picks = state
        in_support = available & support
        candidates = jnp.where(jnp.any(in_support), in_support, available)
        i = jnp.argmax(jnp.where(candidates, h, -jnp.inf))
        ok = candidates[i]
        A_inv, h = _Greedy.add(X, A_inv, h, i, ok.astype(dtype))
        picks = picks.at[t].set(jnp.where(ok, i, -1).astype(jnp.int32))
        return A_inv, h, available.at[i].set(False), picks

    init = (A_inv, h, ~exclude_mask, jnp.full((batch_size,), -1, jnp.int32))
    return jax.lax.fori_loop(0, batch_size, body, init)[3]


def round_design(X: Any, weights: Any, batch_size: int, *, exclude_mask: Any | None = None,
                 ridge: float = 1e-2) -> Array:
    """``batch_size`` distinct pool indices (int32) realising the design ``weights``.

    Args:
      X: pool ``(n, d)``.
      weights: design ``(n,)`` (>= 0; e.g. ``d_optimal_design(X).weights``).
      batch_size: ``B``, at most the number of items not excluded.
      exclude_mask: ``(n,)`` True for items that must not be returned.
      ridge: relative ridge of the greedy (see :func:`ridge_value`).

    Returns:
      ``(B,)`` int32 array of distinct indices, none of them excluded.
    """
    Xj = pool_array(X, "X")
    n = Xj.shape[0]
    w = vector(weights, n, "weights")
    B = positive_int(batch_size, "batch_size")
    mask = bool_mask(exclude_mask, n, "exclude_mask")
    if is_concrete(w, mask):
        if bool(jnp.any(w < 0)) or not bool(jnp.all(jnp.isfinite(w))):
            raise AlbandError("weights must be finite and >= 0 (a design on the simplex)")
        left = n - int(jnp.sum(mask))
        if B > left:
            raise AlbandError(f"batch_size {B} exceeds the {left} pool items not excluded by exclude_mask")
    return round_design_kernel(Xj, w, B, mask, positive_float(ridge, "ridge"))


@jax.jit
def efficient_rounding_kernel(weights: Array, n_total: Array) -> Array:
    """Pukelsheim-Rieder efficient rounding of ``weights`` to counts summing to ``n_total``, jitted."""
    w = weights / jnp.sum(weights)
    support = w > SUPPORT_RTOL * jnp.max(w)
    w = jnp.where(support, w, 0.0)
    p = jnp.sum(support)
    n_total = jnp.asarray(n_total, jnp.int32)
    start = jnp.ceil(jnp.maximum(n_total - 0.5 * p, 0.0) * w)
    counts = jnp.where(support, start, 0.0).astype(jnp.int32)
    safe_w = jnp.where(support, w, 1.0)

    def decrease(c):
        j = jnp.argmax(jnp.where(support & (c > 0), (c - 1) / safe_w, -jnp.inf))
        return c.at[j].add(-1)

    def increase(c):
        j = jnp.argmin(jnp.where(support, c / safe_w, jnp.inf))
        return c.at[j].add(1)

    counts = jax.lax.while_loop(lambda c: jnp.sum(c) > n_total, decrease, counts)
    return jax.lax.while_loop(lambda c: jnp.sum(c) < n_total, increase, counts)


def efficient_rounding(weights: Any, n_total: int) -> Array:
    """Integer counts ``(n,)`` int32 summing to ``n_total`` (repetitions allowed), zero off the support."""
    if not hasattr(weights, "shape"):
        import numpy as np

        weights = np.asarray(weights, dtype=np.float64)
    if len(weights.shape) != 1 or weights.shape[0] < 1:
        raise AlbandError(f"weights must be a non-empty 1-D design, got shape {tuple(weights.shape)}")
    w = jnp.asarray(weights, jnp.float32)
    N = positive_int(n_total, "n_total")
    if is_concrete(w) and (bool(jnp.any(w < 0)) or not bool(jnp.all(jnp.isfinite(w))) or not bool(jnp.sum(w) > 0)):
        raise AlbandError("weights must be finite, >= 0 and not all zero")
    return efficient_rounding_kernel(w, N)
