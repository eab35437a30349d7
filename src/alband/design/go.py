r"""GO: greedy G-optimal selection of examples for a target set (Mukherjee et al. 2024).

Mukherjee, Lalitha, Deshmukh, Liu, Ma and Kveton (2024), "Experimental design
for active transductive inference in large language models" (arXiv
2404.08846), model the quantity to predict as linear in an embedding,
``y = x' theta + noise`` with noise variance ``sigma^2`` and prior
``theta ~ N(0, lambda^{-1} I)``. After labelling the rows ``S`` the posterior
covariance is

    Sigma_S = (lambda I + sigma^{-2} sum_{i in S} x_i x_i')^{-1},

and the predictive variance of a target ``z`` is ``z' Sigma_S z``. GO labels,
one example at a time, the pool item that most reduces the largest predictive
variance over the target set ``Z``:

    i_t = argmin_i max_{z in Z} z' Sigma_{S + i} z.

Adding ``x`` is a rank-1 update of the precision, so by Sherman-Morrison

    z' Sigma_{S+x} z = z' Sigma_S z - (z' Sigma_S x)^2 / (sigma^2 + x' Sigma_S x),

and every candidate's score for every target comes from the matrix
``P = X Sigma Z'`` (n x k): ``max_z (q_z - P_iz^2 / (sigma^2 + s_i))`` with
``q_z = z' Sigma z`` and ``s_i = x_i' Sigma x_i``. After a pick with
``u = Sigma x``, ``c = sigma^2 + x' u``, all three are rank-1 updated:
``P -= (X u)(Z u)' / c``, ``q -= (Z u)^2 / c``, ``s -= (X u)^2 / c``, so each of
the ``B`` picks costs O(n k + (n + k) d) after one O((n + k) d^2 + n k d)
set-up. Memory: the ``(n, k)`` matrix ``P``. (SAL, the paper's simulated-label
variant, coincides with GO for linear models; no public code exists.)
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._checks import bool_mask, is_concrete, pool_array, positive_float, positive_int
from alband.design._linalg import information_matrix, inverse_and_log_det, leverages
from alband.errors import AlbandError


class GOSelection(NamedTuple):
    """Items picked by GO, in order, and the objective after each pick."""

    indices: Array  # (B,) int32 distinct pool indices; -1 once no item is left
    max_variance: Array  # (B,) max_z z' Sigma z after each pick
    initial_max_variance: Array  # () before the first pick


@partial(jax.jit, static_argnames=("batch_size",))
def go_select_kernel(
    X: Array,
    Z: Array,
    batch_size: int,
    labelled_mask: Array,
    lam: float | Array = 1.0,
    sigma: float | Array = 1.0,
) -> GOSelection:
    """GO's ``batch_size`` greedy picks (see module docstring), jitted.

    Labelled rows enter ``Sigma`` and are never picked.
    """
    n, d = X.shape
    dtype = X.dtype
    sigma2 = jnp.asarray(sigma, dtype) ** 2
    precision = jnp.asarray(lam, dtype) * jnp.eye(d, dtype=dtype)
    precision = precision + information_matrix(X, labelled_mask.astype(dtype)) / sigma2
    Sigma, _ = inverse_and_log_det(precision)
    P = X @ (Sigma @ Z.T)
    q = leverages(Z, Sigma)
    s = leverages(X, Sigma)

    def body(t, state):
        Sigma, P, q, s, available, picks, objective = state
        new_max = jnp.max(q[None, :] - P * P / (sigma2 + s)[:, None], axis=1)
        i = jnp.argmin(jnp.where(available, new_max, jnp.inf))
        any_left = available[i]
        x = X[i]
        u = Sigma @ x
        c = sigma2 + x @ u
        Xu, Zu = X @ u, Z @ u
        keep = jnp.where(any_left, 1.0, 0.0).astype(dtype)  # no update once the pool is exhausted
        Sigma = Sigma - keep * jnp.outer(u, u) / c
        P = P - keep * jnp.outer(Xu, Zu) / c
        q = q - keep * Zu * Zu / c
        s = s - keep * Xu * Xu / c
        picks = picks.at[t].set(jnp.where(any_left, i, -1).astype(jnp.int32))
        objective = objective.at[t].set(jnp.max(q))
        return Sigma, P, q, s, available.at[i].set(False), picks, objective

    init = (Sigma, P, q, s, ~labelled_mask, jnp.full((batch_size,), -1, jnp.int32), jnp.zeros((batch_size,), dtype))
    _, _, _, _, _, picks, objective = jax.lax.fori_loop(0, batch_size, body, init)
    return GOSelection(picks, objective, jnp.max(leverages(Z, inverse_and_log_det(precision)[0])))


def go_select(
    X: Any,
    Z: Any,
    batch_size: int,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    labelled_mask: Any | None = None,
) -> GOSelection:
    """Pick ``batch_size`` distinct unlabelled pool items by GO.

    Args:
      X: pool embeddings ``(n, d)``.
      Z: target embeddings ``(k, d)`` (the examples to predict on).
      batch_size: number of picks ``B``.
      lam: prior precision ``lambda`` of ``theta``.
      sigma: noise standard deviation.
      labelled_mask: ``(n,)`` True for items already labelled: they condition
        ``Sigma`` and are not picked again.

    Returns:
      :class:`GOSelection` with ``indices`` ``(B,)`` int32.
    """
    Xj = pool_array(X, "X")
    Zj = pool_array(Z, "Z")
    n, d = Xj.shape
    if Zj.shape[1] != d:
        raise AlbandError(f"Z has {Zj.shape[1]} features but the pool X has {d}; embed both the same way")
    B = positive_int(batch_size, "batch_size")
    mask = bool_mask(labelled_mask, n, "labelled_mask")
    if is_concrete(mask):
        left = n - int(jnp.sum(mask))
        if B > left:
            raise AlbandError(f"batch_size {B} exceeds the {left} unlabelled items in the pool")
    return go_select_kernel(Xj, Zj, B, mask, positive_float(lam, "lam"), positive_float(sigma, "sigma"))
