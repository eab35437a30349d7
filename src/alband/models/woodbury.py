"""The Woodbury update of the inverse of a weighted Gram matrix (Woodbury 1950).

For ``A' = A + Phi' W Phi`` (``B`` rows ``Phi``, weights ``W``, ``S = W^{1/2}``)
and ``C = A^{-1}``: with ``U = C Phi'`` and the Cholesky factor
``K = I + S Phi U S = L L'``, ``Q = L^{-1} S U'`` and::

    C' = C - Q' Q

an ``O(B D^2 + B^3)`` step instead of the ``O(D^3)`` of inverting ``A'``. A zero
row of ``Phi`` changes nothing. Shared by the Laplace logistic learner
(:mod:`alband.models.laplace_logistic`) and the linear bandits' widths
(:mod:`alband.policies._rank_one`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def woodbury(C: Array, Phi_B: Array, weights: Array | None = None) -> tuple[Array, Array]:
    """``(C', Q)`` for ``A <- A + Phi_B' W Phi_B``, with ``Q = L^{-1} S U'`` (B, D).

    ``C' = C - Q' Q`` and ``g_i' = g_i - ||Q phi_i||^2`` (module docstring).
    """
    U = C @ Phi_B.T  # (D, B)
    root = jnp.ones((Phi_B.shape[0],), C.dtype) if weights is None else jnp.sqrt(jnp.maximum(weights, 0.0))
    SU = U * root[None, :]
    K = jnp.eye(Phi_B.shape[0], dtype=C.dtype) + (root[:, None] * (Phi_B @ SU))
    L = jnp.linalg.cholesky(0.5 * (K + K.T))
    Q = jax.scipy.linalg.solve_triangular(L, SU.T, lower=True)  # (B, D)
    C_new = C - Q.T @ Q
    return 0.5 * (C_new + C_new.T), Q
