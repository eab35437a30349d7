"""Shared linear algebra of the preference policies: posterior leverages and Fisher weights.

With the Laplace posterior ``N(theta_hat, V^{-1})`` of the Bradley-Terry model
(:mod:`alband.models.bradley_terry`), the margin ``theta' z`` of a pair has
posterior variance ``s(z) = z' V^{-1} z = ||z||^2_{V^{-1}}``. With ``V = L L'``
(Cholesky), ``s(z) = ||L^{-1} z||^2``: one triangular solve of the whole pool,
``O(N d^2)``. The Fisher weight of a pair is ``mu (1 - mu)`` with
``mu = sigmoid(theta_hat' z)``: the information one answer brings about the
margin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.errors import AlbandError

Array = jax.Array


def posterior_variances(z: Array, precision: Array) -> Array:
    """``z_i' V^{-1} z_i`` for every row, shape (N,)."""
    L = jnp.linalg.cholesky(precision)
    W = jax.scipy.linalg.solve_triangular(L, z.T, lower=True)
    return jnp.sum(W * W, axis=0)


def precision_inverse(precision: Array) -> Array:
    """``V^{-1}`` by Cholesky, symmetrised."""
    d = precision.shape[0]
    inv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(precision), True), jnp.eye(d, dtype=precision.dtype))
    return 0.5 * (inv + inv.T)


def precision_factor_inverse(precision: Array) -> tuple[Array, Array]:
    """``(R, V^{-1})`` with ``R = L^{-1}`` (lower triangular, ``V = L L'``) and ``V^{-1} = R' R``, symmetrised.

    ``||R z||^2 = z' V^{-1} z``: :func:`alband.design._linalg.triangular_leverages`
    scores a pool with ``R`` in fewer multiply-adds than a product with ``V^{-1}``.
    """
    d = precision.shape[0]
    L = jnp.linalg.cholesky(0.5 * (precision + precision.T))
    R = jax.scipy.linalg.solve_triangular(L, jnp.eye(d, dtype=precision.dtype), lower=True)
    inv = R.T @ R
    return R, 0.5 * (inv + inv.T)


def fisher_weights(p_first: Array) -> Array:
    """``mu (1 - mu)`` of each pair."""
    return p_first * (1.0 - p_first)


def require_posterior(ctx, policy: str):
    """The round's Gaussian posterior, or an error naming the policy."""
    posterior = getattr(ctx, "posterior", None)
    if posterior is None:
        raise AlbandError(f"query policy '{policy}' needs the learner's Gaussian posterior "
                          "(a Bradley-Terry learner on a pair pool)")
    return posterior


def require_aux(ctx, policy: str):
    """The pair pool's :class:`~alband.policies.preference.aux.PairAux`, or an error naming the policy."""
    aux = getattr(ctx, "aux", None)
    if aux is None or not hasattr(aux, "pair_of"):
        raise AlbandError(f"query policy '{policy}' needs a pair pool's prompt groups (PairAux in the round context)")
    return aux


def masked_top(scores: Array, available: Array, batch_size: int) -> Array:
    """The ``batch_size`` highest scores among ``available`` rows; ``-1`` where fewer are available."""
    masked = jnp.where(available, scores.astype(jnp.float32), -jnp.inf)
    values, idx = jax.lax.top_k(masked, min(batch_size, masked.shape[0]))
    picks = jnp.where(jnp.isfinite(values), idx, -1).astype(jnp.int32)
    return jnp.pad(picks, (0, batch_size - picks.shape[0]), constant_values=-1)
