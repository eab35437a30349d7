r"""D-optimal design by the multiplicative algorithm (Titterington 1976).

Same problem as :mod:`alband.design.frank_wolfe`: maximise
``log det V(pi)``, ``V(pi) = sum_i pi_i x_i x_i'`` over the simplex. Each
iteration rescales every weight by its leverage,

    pi_i <- pi_i g_i / d,     g_i = x_i' V(pi)^{-1} x_i,

which stays on the simplex because ``sum_i pi_i g_i = tr(V^{-1} V) = d``. The
update increases ``log det V`` monotonically (Titterington 1976, "Algorithms
for computing D-optimal design on finite design spaces"; Silvey, Titterington
and Torsney 1978; a general proof in Yu 2010, "Monotonic convergence of a
general algorithm for computing optimal designs", Annals of Statistics 38) and
converges to the optimum from any design with full support, but only
sublinearly. Every iteration is a full O(n d^2) pass (``V``, a Cholesky
factorisation, all leverages), all of it parallel: no argmax, no rank-1 chain.
It stops at the Kiefer-Wolfowitz certificate ``max_i g_i <= d (1 + eps)``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._linalg import DEFAULT_CHUNK_ROWS, information_matrix, inverse_and_log_det, leverages
from alband.design.result import DesignResult

DEFAULT_MAX_ITER = 10_000


class _State(NamedTuple):
    weights: Array
    g: Array
    log_det: Array
    iterations: Array


@partial(jax.jit, static_argnames=("chunk_rows",))
def multiplicative_design(
    X: Array,
    eps: float | Array = 1e-3,
    max_iter: int | Array = DEFAULT_MAX_ITER,
    initial_weights: Array | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DesignResult:
    """Titterington's multiplicative update until the certificate or ``max_iter``, jitted.

    Args:
      X: pool, float32 ``(n, d)`` of rank ``d``.
      eps: stop when ``max_i g_i <= d (1 + eps)``.
      max_iter: cap on the number of updates.
      initial_weights: a design with full support (default uniform); rows
        with weight 0 stay at 0.

    Returns:
      :class:`DesignResult` of the last iterate.
    """
    n, d = X.shape
    eps = jnp.asarray(eps, X.dtype)
    weights = jnp.full((n,), 1.0 / n, X.dtype) if initial_weights is None else jnp.asarray(initial_weights, X.dtype)
    weights = weights / jnp.sum(weights)

    def evaluate(weights):
        M, log_det = inverse_and_log_det(information_matrix(X, weights, chunk_rows=chunk_rows))
        return leverages(X, M, chunk_rows=chunk_rows), log_det

    def cond(s: _State) -> Array:
        certified = jnp.max(s.g) <= d * (1.0 + eps)
        return (~certified) & (s.iterations < max_iter) & jnp.isfinite(s.log_det)

    def body(s: _State) -> _State:
        w = s.weights * s.g / d
        w = w / jnp.sum(w)  # exact in real arithmetic; removes float32 drift
        g, log_det = evaluate(w)
        return _State(w, g, log_det, s.iterations + 1)

    g, log_det = evaluate(weights)
    s = jax.lax.while_loop(cond, body, _State(weights, g, log_det, jnp.int32(0)))
    max_leverage = jnp.max(s.g)
    return DesignResult(s.weights, s.log_det, max_leverage, max_leverage <= d * (1.0 + eps), s.iterations, s.g)
