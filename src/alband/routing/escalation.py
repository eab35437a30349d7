"""Escalation thresholds with a guarantee: fixed-sequence testing of a cheap annotator's confidence.

Trust or Escalate (Jung, Brahman and Choi, ICLR 2025, arXiv 2407.18370) and
CoAnnotating (Li et al. 2023, arXiv 2310.15638): a cheap annotator keeps an
item when its confidence ``c`` clears a threshold ``lambda``; otherwise the
item is escalated to a stronger annotator (or a human). The threshold is
certified on an audited calibration sample of ``n`` items, each with the cheap
annotator's confidence ``c_i`` and whether its answer agrees with the
strongest annotator's.

For a fixed, data-independent grid ``lambda_1 > lambda_2 > ... > lambda_m``
(strict to lenient) and a target disagreement ``alpha``, hypothesis ``H_j``
is ``R(lambda_j) = P(disagree | c >= lambda_j) > alpha``. Among the ``n_j``
calibration items with ``c >= lambda_j``, ``e_j`` disagree; under ``H_j``
``e_j`` is stochastically at least ``Binomial(n_j, alpha)``, so the exact
(Clopper-Pearson) p-value is::

    p_j = P(Binomial(n_j, alpha) <= e_j) = I_{1 - alpha}(n_j - e_j, e_j + 1)

(``I`` the regularised incomplete beta function; ``p_j = 1`` when ``n_j = 0``).
``p_j <= delta`` is the same event as "the one-sided ``1 - delta``
Clopper-Pearson upper bound of ``R(lambda_j)`` is below ``alpha``".
Fixed-sequence testing rejects ``H_1, H_2, ...`` in order while ``p_j <=
delta`` and stops at the first failure; the chosen threshold is the last
rejected ``lambda_j``. Because the order is fixed in advance, the chance of
rejecting any true ``H_j`` is at most ``delta`` with no multiplicity
correction, so with probability at least ``1 - delta`` over the calibration
draw::

    P(the cheap annotator agrees with the strongest | it keeps the item) >= 1 - alpha

provided calibration and test items are exchangeable (drawn i.i.d. from the
same stream) and the confidence is a fixed function of the item (not fitted on
the calibration sample). When no ``H_j`` is rejected the cheap annotator keeps
nothing (every item is escalated): abstention.

A cascade of ``S + 1`` annotators (``S`` cheap stages, then the strongest) has
one threshold per cheap stage (the paper's cascaded selective evaluation).
Stage ``s`` is calibrated on the calibration items that reach it (every
earlier stage below its certified threshold) at level ``delta / S``; each
stage's kept items then disagree at most ``alpha`` and so does their union,
with probability at least ``1 - delta`` (a union bound over the stages).

The numpy functions are the offline calibration API (``scipy.stats``); the
``*_jax`` ones are their jittable twins, used by the online router
(:mod:`alband.routing.trust_escalate`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _stats

from alband.errors import AlbandError

Array = jax.Array

#: No threshold certified: the cheap annotator keeps nothing.
NEVER = float("inf")


def default_grid(size: int = 100) -> np.ndarray:
    """Thresholds ``0.99, 0.98, ..., 0`` for ``size = 100``: strict to lenient, fixed before any data."""
    if size < 1:
        raise AlbandError(f"grid size must be >= 1, got {size}")
    return np.linspace(1.0 - 1.0 / size, 0.0, size)


def _check_levels(alpha: float, delta: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise AlbandError(f"alpha (largest disagreement rate) must be in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise AlbandError(f"delta (error rate of the guarantee) must be in (0, 1), got {delta}")


def _check_grid(grid: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 1 or grid.size == 0 or np.any(np.diff(grid) >= 0) or not np.all(np.isfinite(grid)):
        raise AlbandError("the threshold grid must be a non-empty list of finite numbers, strictly decreasing")
    return grid


def binomial_pvalue(errors: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Exact p-value of ``R > alpha`` given ``errors`` of ``n``: ``P(Binomial(n, alpha) <= errors)`` (1 when n = 0)."""
    errors, n = np.asarray(errors), np.asarray(n)
    return np.where(n > 0, _stats.binom.cdf(errors, np.maximum(n, 1), alpha), 1.0)


def clopper_pearson_upper(errors: np.ndarray, n: np.ndarray, delta: float) -> np.ndarray:
    """One-sided ``1 - delta`` Clopper-Pearson upper bound of a rate from ``errors`` of ``n`` (1 when n = 0)."""
    errors, n = np.asarray(errors, np.float64), np.asarray(n, np.float64)
    safe_n = np.maximum(n, 1.0)
    ppf = _stats.beta.ppf(1.0 - delta, errors + 1.0, np.maximum(safe_n - errors, 1e-9))
    bound = np.where(errors >= safe_n, 1.0, ppf)
    return np.where(n > 0, bound, 1.0)


def tail_counts(confidence: np.ndarray, agree: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n_j, e_j)`` per grid threshold: items with ``c >= lambda_j`` and how many of them disagree."""
    above = np.asarray(confidence)[None, :] >= np.asarray(grid)[:, None]
    disagree = ~np.asarray(agree, bool)
    return above.sum(1), (above & disagree[None, :]).sum(1)


class Certified(NamedTuple):
    """A certified threshold: ``threshold`` (``inf`` on abstention), its grid index (-1) and its tail counts."""

    threshold: float
    index: int
    n_kept: int
    n_disagree: int
    upper_bound: float  # the 1 - delta Clopper-Pearson bound of the kept items' disagreement (1 when none)


def fixed_sequence_threshold(confidence, agree, alpha: float, delta: float, grid=None) -> Certified:
    """The most lenient threshold certified by fixed-sequence testing (module docstring)."""
    _check_levels(alpha, delta)
    grid = _check_grid(default_grid() if grid is None else grid)
    confidence = np.asarray(confidence, np.float64)
    agree = np.asarray(agree, bool)
    if confidence.shape != agree.shape or confidence.ndim != 1:
        raise AlbandError(f"confidence and agree must be 1-d of one length, got {confidence.shape} and {agree.shape}")
    n, e = tail_counts(confidence, agree, grid)
    rejected = binomial_pvalue(e, n, alpha) <= delta
    run = int(np.argmin(rejected)) if not rejected.all() else rejected.size  # rejected before the first failure
    if run == 0:
        return Certified(NEVER, -1, 0, 0, 1.0)
    j = run - 1
    return Certified(float(grid[j]), j, int(n[j]), int(e[j]), float(clopper_pearson_upper(e[j], n[j], delta)))


def calibrate_cascade(confidence, agree, alpha: float, delta: float, grid=None) -> np.ndarray:
    """Thresholds ``(S,)`` of a cascade's ``S`` cheap stages; ``confidence`` and ``agree`` are ``(n, S)``.

    Stage ``s`` is certified at level ``delta / S`` on the items every earlier
    stage escalates (module docstring).
    """
    confidence = np.asarray(confidence, np.float64)
    agree = np.asarray(agree, bool)
    if confidence.ndim != 2 or confidence.shape != agree.shape:
        raise AlbandError(f"confidence and agree must be (n, stages), got {confidence.shape} and {agree.shape}")
    stages = confidence.shape[1]
    reach = np.ones(confidence.shape[0], bool)
    thresholds = np.full(stages, NEVER)
    for s in range(stages):
        cert = fixed_sequence_threshold(confidence[reach, s], agree[reach, s], alpha, delta / stages, grid)
        thresholds[s] = cert.threshold
        reach &= confidence[:, s] < thresholds[s]
    return thresholds


def keeping_stage(confidence, thresholds) -> np.ndarray:
    """Per item, the first cheap stage whose confidence clears its threshold; ``S`` (the strongest) if none."""
    clears = np.asarray(confidence) >= np.asarray(thresholds)[None, :]
    stages = clears.shape[1]
    return np.where(clears.any(1), np.argmax(clears, 1), stages)


# -- jittable twins (the online router) ------------------------------------------------------------


def binomial_pvalue_jax(errors: Array, n: Array, alpha: float) -> Array:
    """:func:`binomial_pvalue` in JAX: ``I_{1 - alpha}(n - e, e + 1)``, 1 when ``n = 0`` or ``e >= n``."""
    errors = jnp.asarray(errors, jnp.float32)
    n = jnp.asarray(n, jnp.float32)
    a = jnp.maximum(n - errors, 1.0)
    p = jax.scipy.special.betainc(a, errors + 1.0, jnp.float32(1.0 - alpha))
    return jnp.where((n > 0) & (errors < n), p, 1.0)


def fixed_sequence_threshold_jax(confidence: Array, agree: Array, weight: Array, grid: Array, alpha: float,
                                 delta: float | Array) -> Array:
    """:func:`fixed_sequence_threshold`'s threshold in JAX over weighted (0/1) items; ``inf`` on abstention."""
    above = (confidence[None, :] >= grid[:, None]) & (weight[None, :] > 0)
    n = jnp.sum(above, 1)
    e = jnp.sum(above & ~agree[None, :], 1)
    rejected = binomial_pvalue_jax(e, n, alpha) <= delta
    run = jnp.sum(jnp.cumprod(rejected.astype(jnp.int32)))  # rejected before the first failure
    return jnp.where(run > 0, grid[jnp.maximum(run - 1, 0)], jnp.inf)


def calibrate_cascade_jax(confidence: Array, agree: Array, weight: Array, grid: Array, alpha: float,
                          delta: float) -> Array:
    """:func:`calibrate_cascade` in JAX over weighted (0/1) items; ``(n, S)`` inputs, ``(n,)`` weights."""
    stages = confidence.shape[1]
    reach = weight > 0
    out = []
    for s in range(stages):  # static unroll over the (short) cascade
        t = fixed_sequence_threshold_jax(confidence[:, s], agree[:, s], reach, grid, alpha, delta / stages)
        out.append(t)
        reach = reach & (confidence[:, s] < t)
    return jnp.stack(out)


__all__ = [
    "Certified",
    "NEVER",
    "binomial_pvalue",
    "binomial_pvalue_jax",
    "calibrate_cascade",
    "calibrate_cascade_jax",
    "clopper_pearson_upper",
    "default_grid",
    "fixed_sequence_threshold",
    "fixed_sequence_threshold_jax",
    "keeping_stage",
    "tail_counts",
]
