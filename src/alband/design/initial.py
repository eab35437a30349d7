"""Initial design: ``d`` pool points of (greedily) maximal volume.

Frank-Wolfe needs a starting design with ``V(pi)`` nonsingular. Following Kumar
and Yildirim (2005, "Minimum-volume enclosing ellipsoids and core sets", JOTA
126) -- whose initialisation picks, direction by direction, the extreme points
of the pool -- we run column-pivoted Gram-Schmidt (pivoted QR of ``X'``,
Businger and Golub 1965): step ``k`` takes the row with the largest residual
norm after projection onto the span of the rows already chosen,

    i_k = argmax_i || (I - Q_k Q_k') x_i ||^2,

which is the greedy maximiser of ``det(X_S X_S')`` over sets ``S`` of size ``k``.
The uniform design on the ``d`` chosen rows has ``det V = prod_k r_k^2 / d^d``
(``r_k`` the pivot residual norms), so a small last pivot flags a pool of rank
below ``d``.

Every step is one pass ``X @ q`` (O(n d)); the residual norms are downdated by
``(x_i' q)^2`` and the chosen row's residual is re-orthogonalised twice
("twice is enough", Giraud et al. 2005) for float32 stability.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array


class VolumeSupport(NamedTuple):
    """Rows chosen by pivoted Gram-Schmidt and their squared pivot residuals."""

    indices: Array  # (k,) int32, distinct
    pivots: Array  # (k,) float32, ||residual||^2 of each chosen row when chosen


def greedy_volume_support(X: Array, k: int | None = None) -> VolumeSupport:
    """The ``k`` (default ``d``) rows of ``X`` picked by column-pivoted QR of ``X'``."""
    n, d = X.shape
    k = d if k is None else k
    norms2 = jnp.sum(X * X, axis=1)

    def body(step, state):
        residual2, Q, chosen, pivots = state
        i = jnp.argmax(residual2)
        x = X[i]
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)
        r2 = jnp.sum(r * r)
        q = r / jnp.sqrt(jnp.maximum(r2, jnp.finfo(X.dtype).tiny))
        c = X @ q
        residual2 = (residual2 - c * c).at[i].set(-jnp.inf)
        return (residual2, Q.at[:, step].set(q), chosen.at[step].set(i.astype(jnp.int32)), pivots.at[step].set(r2))

    init = (norms2, jnp.zeros((d, k), X.dtype), jnp.zeros((k,), jnp.int32), jnp.zeros((k,), X.dtype))
    _, _, chosen, pivots = jax.lax.fori_loop(0, k, body, init)
    return VolumeSupport(chosen, pivots)


def is_rank_deficient(pivots: Array, *, rtol: float = 1e-8) -> Array:
    """True when the last squared pivot is below ``rtol`` times the first."""
    return ~(pivots[-1] > rtol * pivots[0])
