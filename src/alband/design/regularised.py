r"""Regularised (Bayesian) D-/G-optimal batch design by greedy rank-1 steps.

Why a regularised criterion. A batch ``S`` of ``B`` items has information
matrix ``V_S = sum_{i in S} x_i x_i'`` of rank at most ``B``. When ``B < d``
(a batch of 100 at ``d = 384``) ``V_S`` is singular for *every* batch: the
Kiefer-Wolfowitz design, whose support has at least ``d`` points, cannot be
realised, every batch has ``log det V_S = -inf`` and an infinite G-criterion
``max_i x_i' V_S^{-1} x_i``, and Frank-Wolfe needs thousands of steps to
certify a design that rounding then has to throw away. The criterion that does
tell batches apart is the Bayesian one (Chaloner and Verdinelli 1995,
"Bayesian experimental design: a review", Statistical Science 10, section
2.2; Pilz 1991): for the linear model ``y = x' theta + noise`` with prior
precision ``lambda I`` and the items already labelled (``condition_mask``), the
posterior precision after labelling ``S`` is

    A_S = A_0 + sum_{i in S} x_i x_i',    A_0 = lambda I + sum_{j labelled} x_j x_j',

and the batch maximises ``f(S) = log det A_S`` over ``B`` distinct unlabelled
items. ``A_0`` is positive definite, so every batch has a finite value, and
``x' A_S^{-1} x`` is the posterior predictive variance of item ``x`` (up to the
noise variance): lowering its largest value is the G-criterion of the same
model.

Greedy rank-1 solution. By the matrix determinant lemma the gain of adding
``x`` is ``log(1 + x' A_S^{-1} x)``: the greedy step takes the item of largest
predictive variance -- the Fedorov-Wynn vertex of the D-criterion at ``A_S``,
taken with a unit (integer) step, so the rounding to distinct items is built
in -- and it lowers the largest variance first (G). ``f(S) - f(empty)`` is
monotone submodular, so the greedy batch has at least ``1 - 1/e`` of the best
batch's gain (Nemhauser, Wolsey and Fisher 1978); measured on 200 random
problems with brute force over all batches (n = 14, d = 6, B = 3), the greedy
gain was never below 98% of the optimum's, and equal to it in the median
(``tests/test_design_regularised.py`` checks 95% and ``1 - 1/e``).

Cost: ``A_0`` from the labelled rows only (O(m d^2) for ``m`` labels), its
inverse by Cholesky, every ``h_i = x_i' A_0^{-1} x_i`` in one O(n d^2) pass; then per pick a
Sherman-Morrison update with ``u = A^{-1} x``, ``c = 1 + x' u``:

    A^{-1} <- A^{-1} - u u' / c,    h_i <- h_i - (x_i' u)^2 / c,

one ``X @ u`` pass, O(n d). No design is solved: ``B`` steps instead of the
thousands of a Frank-Wolfe design to a certificate in ``d`` dimensions. The
ridge ``lambda = ridge * mean_i ||x_i||^2 / d`` (:func:`alband.design.rounding.ridge_value`)
keeps the prior on the pool's scale. Ties go to the lower pool index.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._checks import bool_mask, is_concrete, pool_array, positive_float, positive_int
from alband.design._linalg import DEFAULT_CHUNK_ROWS, leverages, masked_gram
from alband.design.rounding import ridge_value
from alband.errors import AlbandError


@partial(jax.jit, static_argnames=("batch_size",))
def greedy_batch_design_kernel(X: Array, batch_size: int, exclude_mask: Array, condition_mask: Array,
                               ridge: float | Array = 1e-2) -> Array:
    """Greedy regularised D-optimal batch (module docstring), jitted; ``-1`` once nothing is left."""
    n, d = X.shape
    lam = ridge_value(X, ridge)
    A0 = lam * jnp.eye(d, dtype=X.dtype) + masked_gram(X, condition_mask)
    A_inv = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A0), True), jnp.eye(d, dtype=X.dtype))
    A_inv = 0.5 * (A_inv + A_inv.T)
    h = leverages(X, A_inv, chunk_rows=max(DEFAULT_CHUNK_ROWS, (1 << 22) // d))

    def body(t, state):
        A_inv, h, available, picks = state
        i = jnp.argmax(jnp.where(available, h, -jnp.inf))
        ok = available[i]
        u = A_inv @ X[i]
        c = (1.0 + X[i] @ u) / ok.astype(X.dtype)  # ok = False -> c = inf -> no update
        Xu = X @ u
        A_inv = A_inv - jnp.outer(u, u) / c
        h = h - Xu * Xu / c
        picks = picks.at[t].set(jnp.where(ok, i, -1).astype(jnp.int32))
        return A_inv, h, available.at[i].set(False), picks

    init = (A_inv, h, ~exclude_mask, jnp.full((batch_size,), -1, jnp.int32))
    return jax.lax.fori_loop(0, batch_size, body, init)[3]


def greedy_batch_design(X: Any, batch_size: int, *, exclude_mask: Any | None = None,
                        condition_mask: Any | None = None, ridge: float = 1e-2) -> Array:
    """``batch_size`` distinct pool indices (int32) of greedy regularised D-optimal gain.

    Args:
      X: pool ``(n, d)``.
      batch_size: ``B``, at most the number of items not excluded.
      exclude_mask: ``(n,)`` True for items that must not be returned (labelled, queued).
      condition_mask: ``(n,)`` True for items already in the information matrix
        ``A_0`` (the labelled ones); default none.
      ridge: relative prior precision (see :func:`alband.design.rounding.ridge_value`).

    Returns:
      ``(B,)`` int32 array of distinct indices, none of them excluded.
    """
    Xj = pool_array(X, "X")
    n = Xj.shape[0]
    B = positive_int(batch_size, "batch_size")
    exclude = bool_mask(exclude_mask, n, "exclude_mask")
    condition = bool_mask(condition_mask, n, "condition_mask")
    if is_concrete(exclude):
        left = n - int(jnp.sum(exclude))
        if B > left:
            raise AlbandError(f"batch_size {B} exceeds the {left} pool items not excluded by exclude_mask")
    return greedy_batch_design_kernel(Xj, B, exclude, condition, positive_float(ridge, "ridge"))
