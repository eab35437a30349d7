"""The result every D-/G-optimal design solver returns.

For a design ``pi`` on the simplex, ``V = sum_i pi_i x_i x_i'`` and the
leverages ``g_i = x_i' V^{-1} x_i`` satisfy ``sum_i pi_i g_i = d``, so
``max_i g_i >= d``; by the Kiefer-Wolfowitz equivalence theorem (1960) ``pi`` is
D-optimal (and G-optimal) iff ``max_i g_i = d``. The flag ``certified`` records
``max_i g_i <= d (1 + eps)``, which bounds the log-det gap to the optimum by
``d log(1 + eps)`` (see ``theory/design.md``).
"""

from __future__ import annotations

from typing import NamedTuple

from jax import Array


class DesignResult(NamedTuple):
    """A design and its certificate.

    Fields are JAX arrays (float32) for the JAX solvers and NumPy float64 for
    the cvxpy reference.
    """

    weights: Array  # (n,) design on the simplex
    log_det: Array  # () log det V(weights)
    max_leverage: Array  # () max_i x_i' V^{-1} x_i  (>= d; = d at the optimum)
    certified: Array  # () bool: max_leverage <= d (1 + eps)
    iterations: Array  # () int32: solver steps taken
    leverages: Array  # (n,) x_i' V^{-1} x_i for every pool row
