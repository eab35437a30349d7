"""Rank-one (Sherman-Morrison) and Woodbury updates of a ridge inverse and of every pool item's width.

A linear model shared by all pool items works on the features ``phi_i = [x_i, 1]``
(``bias=True``) or ``phi_i = x_i``, of dimension ``D``. It keeps the inverse
``C = A^{-1}`` of the (weighted) ridge Gram matrix::

    A = lambda I + sum_s w_s phi_s phi_s'

and, for confidence bounds, every pool item's squared width ``g_i = phi_i' C phi_i``.

Sherman-Morrison (Sherman and Morrison 1950) for one more observation ``phi``
with weight ``w``: with ``u = C phi`` and ``s = phi' u``::

    C'   = C - w u u' / (1 + w s)
    g_i' = g_i - w (phi_i' u)^2 / (1 + w s)

so the widths of all ``N`` items cost one pass ``Phi @ u``: O(N D) per label
instead of the O(N D^2) of recomputing ``phi_i' C phi_i`` for every item.

Woodbury (the same update for ``B`` observations at once, rows ``Phi_B``,
weights ``W``, ``S = W^{1/2}``): with ``U = C Phi_B'`` and the Cholesky factor
``K = I + S Phi_B U S = L L'``::

    C'   = C - (L^{-1} S U')' (L^{-1} S U')
    g_i' = g_i - ||L^{-1} S U' phi_i||^2

which fuses the ``B`` rank-one passes into one ``(N, D) x (D, B)`` product.
A zero row of ``Phi_B`` (an item whose label did not arrive) changes nothing.

Numerics (float32). The updated ``C`` stays accurate (symmetrised after every
step). The width recursion subtracts from ``g_i`` a term of nearly its size, so
its absolute error grows like ``eps * g_i(then)`` per step: after the widths
have shrunk by a factor ``rho`` since they were last computed in full, the
relative error is about ``1.5 eps rho`` (measured: 1.4e-4 at ``rho ~ 1600``).
:func:`refresh_widths` recomputes them in full when ``max_i g_i(then) / g_i``
exceeds a threshold, which happens a handful of times per run (the widths
shrink roughly like ``1 / labels``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.models.woodbury import woodbury  # noqa: F401  (the Woodbury step is the Laplace learner's too)

Array = jax.Array


def feature_dim(n_features: int, bias: bool) -> int:
    return n_features + int(bias)


def feature_rows(x_rows: Array, bias: bool) -> Array:
    """``phi`` of a few rows ``(k, d) -> (k, D)`` (never called on the whole pool)."""
    if not bias:
        return x_rows
    return jnp.concatenate([x_rows, jnp.ones((x_rows.shape[0], 1), x_rows.dtype)], axis=1)


def pool_dot(x: Array, v: Array, bias: bool) -> Array:
    """``Phi @ v`` for ``v`` of shape ``(D,)`` or ``(D, k)`` without materialising ``Phi``."""
    if not bias:
        return x @ v
    d = x.shape[1]
    return x @ v[:d] + v[d]


def squared_widths(x: Array, C: Array, bias: bool) -> Array:
    """Full recomputation ``g_i = phi_i' C phi_i`` for every pool item: O(N D^2)."""
    C = 0.5 * (C + C.T)
    if not bias:
        return jnp.sum((x @ C) * x, axis=1)
    d = x.shape[1]
    return jnp.sum((x @ C[:d, :d]) * x, axis=1) + 2.0 * (x @ C[:d, d]) + C[d, d]


def sherman_morrison(C: Array, phi: Array, weight: Array | float = 1.0) -> tuple[Array, Array, Array]:
    """``(C', u, s)`` for ``A <- A + weight phi phi'``: ``u = C phi``, ``s = phi' u`` (old ``C``)."""
    u = C @ phi
    s = phi @ u
    C_new = C - (weight / (1.0 + weight * s)) * jnp.outer(u, u)
    return 0.5 * (C_new + C_new.T), u, s


def rank_one_widths(widths: Array, pool_u: Array, s: Array, weight: Array | float = 1.0) -> Array:
    """``g_i - w (phi_i' u)^2 / (1 + w s)`` given ``pool_u = Phi @ u``."""
    return widths - (weight / (1.0 + weight * s)) * pool_u * pool_u


def woodbury_widths(widths: Array, x: Array, Q: Array, bias: bool) -> Array:
    """``g_i - ||Q phi_i||^2``: one ``(N, D) x (D, B)`` product."""
    V = pool_dot(x, Q.T, bias)  # (N, B)
    return widths - jnp.sum(V * V, axis=1)


def refresh_widths(
    widths: Array, widths_then: Array, x: Array, C: Array, bias: bool, max_shrink: float | None
) -> tuple[Array, Array]:
    """Recompute the widths in full once they have shrunk ``max_shrink``-fold since the last time.

    Returns ``(widths, widths_then)``. ``max_shrink=None`` never recomputes.
    Inside ``jit`` only the taken branch runs; under ``vmap`` with a batched
    predicate ``lax.cond`` evaluates both.
    """
    if max_shrink is None:
        return widths, widths_then
    tiny = jnp.finfo(widths.dtype).tiny
    shrink = jnp.max(widths_then / jnp.maximum(widths, tiny))

    def full(_):
        fresh = squared_widths(x, C, bias)
        return fresh, fresh

    return jax.lax.cond(shrink > max_shrink, full, lambda _: (widths, widths_then), None)
