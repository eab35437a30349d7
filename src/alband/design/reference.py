r"""Reference D-optimal design by convex optimisation (cvxpy + Clarabel).

Solves ``maximise log det(sum_i w_i x_i x_i')`` over the simplex as a conic
program (exponential and PSD cones) with an interior-point solver. The matrix
is written ``reshape(A @ w, (d, d))`` with ``A`` the ``(d^2, n)`` matrix whose
columns are ``vec(x_i x_i')``: the textbook ``X.T @ diag(w) @ X`` form makes
cvxpy build an ``n x n`` intermediate and run out of memory at a few thousand
rows. The program still grows as ``n d^2``: this is an oracle for small pools
(``n d^2`` up to a few million), used to check the JAX solvers, computed in
float64 on the host. cvxpy is imported on first use.
"""

from __future__ import annotations

import numpy as np

from alband.design.result import DesignResult
from alband.errors import AlbandError


def cvxpy_design(X: np.ndarray, eps: float = 1e-3, *, solver: str = "CLARABEL", verbose: bool = False) -> DesignResult:
    """D-optimal design of the rows of ``X`` by cvxpy; NumPy float64 fields.

    ``eps`` only sets the ``certified`` flag (``max_i g_i <= d (1 + eps)``);
    the solver runs to its own default tolerances.
    """
    import cvxpy as cp

    X64 = np.asarray(X, dtype=np.float64)
    n, d = X64.shape
    outer = np.einsum("ni,nj->ijn", X64, X64).reshape(d * d, n)
    w = cp.Variable(n, nonneg=True)
    V = cp.reshape(outer @ w, (d, d), order="C")
    problem = cp.Problem(cp.Maximize(cp.log_det(0.5 * (V + V.T))), [cp.sum(w) == 1])
    try:
        problem.solve(solver=solver, verbose=verbose)
    except cp.error.SolverError as exc:
        raise AlbandError(f"cvxpy design: solver {solver} failed on a ({n}, {d}) pool: {exc}") from exc
    if problem.status not in ("optimal", "optimal_inaccurate") or w.value is None:
        raise AlbandError(f"cvxpy design: solver {solver} returned status {problem.status!r} on a ({n}, {d}) pool")
    weights = np.clip(np.asarray(w.value, dtype=np.float64), 0.0, None)
    weights /= weights.sum()
    return evaluate_design(X64, weights, eps, iterations=problem.solver_stats.num_iters or 0)


def evaluate_design(X: np.ndarray, weights: np.ndarray, eps: float = 1e-3, *, iterations: int = 0) -> DesignResult:
    """log det, leverages and certificate of a given design, in float64 NumPy."""
    X64 = np.asarray(X, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    d = X64.shape[1]
    V = X64.T @ (w[:, None] * X64)
    sign, log_det = np.linalg.slogdet(V)
    if sign <= 0:
        log_det = -np.inf
        g = np.full(X64.shape[0], np.inf)
    else:
        g = np.sum((X64 @ np.linalg.inv(V)) * X64, axis=1)
    max_leverage = float(np.max(g))
    return DesignResult(
        weights=w,
        log_det=np.float64(log_det),
        max_leverage=np.float64(max_leverage),
        certified=np.bool_(max_leverage <= d * (1.0 + eps)),
        iterations=np.int32(iterations),
        leverages=g,
    )
