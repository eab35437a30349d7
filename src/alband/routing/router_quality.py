"""Router quality metrics: PGR, APGR (RouteLLM) and dollars to reach a target accuracy.

Performance gap recovered (Ong et al. 2024, RouteLLM) of an accuracy ``a``
between a weak model (accuracy ``a_w``) and a strong one (``a_s``)::

    PGR(a) = (a - a_w) / (a_s - a_w)

so always-weak scores 0 and always-strong 1. RouteLLM's APGR is the area under
PGR as a function of the share of strong-model calls, computed with the
trapezoid rule over the router's operating points and divided by the width of
the axis (``routellm/evals/evaluate.py``: ``(AUC - weak_auc) / (strong_auc -
weak_auc)``). Here the router's knob is the dollar budget, so the axis is a
budget grid evenly spaced between the full-stream cost of the weak model and
that of the strong one, ``B_j = C_w + (j / m) (C_s - C_w)``, ``j = 0..m``
(with two models and one price per model this is RouteLLM's strong-call share
axis): :func:`apgr` is the trapezoid mean of ``PGR`` over that grid.

:func:`cost_to_target` reads a budget sweep: the dollars actually spent at the
smallest budget whose accuracy reaches the target, or ``None``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pgr(accuracy, weak_accuracy: float, strong_accuracy: float):
    """Performance gap recovered; elementwise over arrays. NaN when the gap is 0."""
    gap = strong_accuracy - weak_accuracy
    acc = np.asarray(accuracy, dtype=np.float64)
    if gap == 0:
        return np.full_like(acc, np.nan)
    return (acc - weak_accuracy) / gap


def apgr(accuracy_on_grid: Sequence[float], weak_accuracy: float, strong_accuracy: float) -> float:
    """Trapezoid mean of PGR over an evenly spaced budget grid (module docstring)."""
    values = pgr(accuracy_on_grid, weak_accuracy, strong_accuracy)
    if values.size == 1:
        return float(values[0])
    u = np.linspace(0.0, 1.0, values.size)
    return float(np.trapezoid(values, u))


def apgr_budget_grid(weak_cost_usd: float, strong_cost_usd: float, n_points: int = 11) -> np.ndarray:
    """``B_j = C_w + (j / (n_points - 1)) (C_s - C_w)``."""
    return weak_cost_usd + np.linspace(0.0, 1.0, n_points) * (strong_cost_usd - weak_cost_usd)


def cost_to_target(budgets: Sequence[float], spent: Sequence[float], accuracy: Sequence[float],
                   target: float) -> float | None:
    """Mean dollars spent at the smallest budget whose accuracy is >= ``target``; None if none."""
    b = np.asarray(budgets, dtype=np.float64)
    s = np.asarray(spent, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    order = np.argsort(b, kind="stable")
    for j in order:
        if np.isfinite(a[j]) and a[j] >= target:
            return float(s[j])
    return None
