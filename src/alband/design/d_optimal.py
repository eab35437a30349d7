"""One entry point for D-/G-optimal design: ``d_optimal_design``.

Dispatches to Frank-Wolfe with away steps (default; :mod:`.frank_wolfe`), the
multiplicative algorithm (:mod:`.multiplicative`) or the cvxpy reference
(:mod:`.reference`); validates the pool and turns a singular problem into an
:class:`~alband.errors.AlbandError` naming the cause. The math is in the
solvers' module docstrings and ``theory/design.md``.
"""

from __future__ import annotations

from typing import Any, Literal

import jax.numpy as jnp
import numpy as np

from alband.design._checks import explain_singular, is_concrete, pool_array, positive_float, positive_int
from alband.design.frank_wolfe import default_working_set_size, wolfe_atwood_design
from alband.design.multiplicative import multiplicative_design
from alband.design.result import DesignResult
from alband.errors import AlbandError

Method = Literal["frank-wolfe", "multiplicative", "cvxpy"]
METHODS: tuple[str, ...] = ("frank-wolfe", "multiplicative", "cvxpy")

_FW_OPTIONS = {"away_steps", "refresh_every", "working_set_size", "max_rounds", "chunk_rows"}
_MULT_OPTIONS = {"initial_weights", "chunk_rows"}
_CVXPY_OPTIONS = {"solver", "verbose"}


def d_optimal_design(
    X: Any,
    *,
    method: Method = "frank-wolfe",
    eps: float = 1e-3,
    max_iter: int | None = None,
    **options: Any,
) -> DesignResult:
    """Approximate D-optimal (= G-optimal) design over the rows of ``X``.

    Args:
      X: pool ``(n, d)``, ``n >= d``, of rank ``d``.
      method: ``"frank-wolfe"`` (Wolfe-Atwood with away steps, fastest),
        ``"multiplicative"`` (Titterington) or ``"cvxpy"`` (Clarabel; small
        pools only, float64).
      eps: target of the Kiefer-Wolfowitz certificate
        ``max_i x_i' V^{-1} x_i <= d (1 + eps)``.
      max_iter: cap on solver steps (solver default when None).
      **options: solver options: ``away_steps``, ``refresh_every``,
        ``working_set_size``, ``max_rounds`` (frank-wolfe);
        ``initial_weights`` (multiplicative); ``solver``, ``verbose`` (cvxpy).

    Returns:
      :class:`DesignResult` (``weights`` on the simplex, ``log_det``,
      ``max_leverage``, ``certified``, ``iterations``, ``leverages``).

    Raises:
      AlbandError: bad shapes or options, non-finite entries, rank below ``d``.
    """
    if method not in METHODS:
        raise AlbandError(f"unknown design method {method!r}; choose one of {', '.join(METHODS)}")
    Xj = pool_array(X, "X")
    n, d = Xj.shape
    if n < d:
        raise AlbandError(
            f"X has {n} rows but {d} columns: a design over fewer rows than dimensions is singular; "
            f"reduce the features to at most {n} dimensions (e.g. PCA)"
        )
    eps = positive_float(eps, "eps")
    allowed = {"frank-wolfe": _FW_OPTIONS, "multiplicative": _MULT_OPTIONS, "cvxpy": _CVXPY_OPTIONS}[method]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise AlbandError(f"option(s) {', '.join(unknown)} do not apply to method {method!r}; "
                          f"it accepts {', '.join(sorted(allowed))}")
    if max_iter is not None:
        max_iter = positive_int(max_iter, "max_iter")

    if method == "cvxpy":
        from alband.design.reference import cvxpy_design

        if is_concrete(Xj) and not np.isfinite(np.asarray(Xj)).all():
            raise explain_singular(Xj)
        result = cvxpy_design(np.asarray(X, dtype=np.float64), eps, **options)
    elif method == "multiplicative":
        if "initial_weights" in options and options["initial_weights"] is not None:
            options["initial_weights"] = jnp.asarray(options["initial_weights"], jnp.float32)
        kwargs = {} if max_iter is None else {"max_iter": max_iter}
        result = multiplicative_design(Xj, eps, **kwargs, **options)
    else:
        for key in ("refresh_every", "working_set_size", "max_rounds", "chunk_rows"):
            if key in options:
                options[key] = positive_int(options[key], key)
        kwargs = {} if max_iter is None else {"max_iter": max_iter}
        result = wolfe_atwood_design(Xj, eps, **kwargs, **options)
        # The support cannot outgrow the working set; if it filled it without
        # a certificate, the optimum needs more support points: retry larger.
        m = options.get("working_set_size") or default_working_set_size(n, d)
        while (is_concrete(Xj) and m < n and not bool(result.certified)
               and int(jnp.sum(result.weights > 0)) >= m):
            m = min(n, 2 * m)
            result = wolfe_atwood_design(Xj, eps, **kwargs, **{**options, "working_set_size": m})

    if is_concrete(Xj) and not bool(np.isfinite(np.asarray(result.log_det))):
        raise explain_singular(Xj)
    return result
