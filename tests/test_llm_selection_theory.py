"""Numerical checks of theory/llm_selection.md, section "Confidence escalation with a guarantee"."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from alband.routing.escalation import binomial_pvalue, default_grid, fixed_sequence_threshold, tail_counts


def test_smallest_sample_that_can_certify():
    for alpha, delta, want in [(0.1, 0.1, 22), (0.2, 0.1, 11), (0.05, 0.05, 59)]:
        n = math.ceil(math.log(delta) / math.log(1 - alpha))
        assert n == want
        assert binomial_pvalue(0, n, alpha) <= delta < binomial_pvalue(0, n - 1, alpha)


def _flat_world(rng, n, risk):
    """Confidence uniform, disagreement ``risk`` at every confidence: every ``H_j`` is true when risk > alpha."""
    return rng.uniform(size=n), rng.uniform(size=n) >= risk


def test_ignoring_the_fixed_order_breaks_the_error_rate():
    rng = np.random.default_rng(0)
    alpha, delta, reps = 0.1, 0.1, 300
    grid = default_grid(50)
    fst = anywhere = 0
    for _ in range(reps):
        c, agree = _flat_world(rng, 2000, 0.101)  # R = 0.101 > alpha at every threshold
        fst += fixed_sequence_threshold(c, agree, alpha, delta, grid).index >= 0
        n, e = tail_counts(c, agree, grid)
        anywhere += bool(np.any(binomial_pvalue(e, n, alpha) <= delta))
    assert fst <= stats.binom.ppf(1 - 1e-4, reps, delta)
    assert anywhere >= 2 * delta * reps  # about 0.35 of draws (seed 0: 107 of 300)


def test_a_shift_between_calibration_and_use_breaks_the_guarantee():
    """Calibrated where agreement is c, used where it is c^3: the kept items disagree more than alpha."""
    rng = np.random.default_rng(1)
    alpha, delta, reps = 0.1, 0.1, 100
    fails = 0
    for _ in range(reps):
        c = rng.beta(6.0, 1.0, 500)
        cert = fixed_sequence_threshold(c, rng.uniform(size=500) < c, alpha, delta)
        ct = rng.beta(6.0, 1.0, 20_000)
        keep = ct >= cert.threshold
        fails += bool(keep.any() and 1 - (rng.uniform(size=keep.sum()) < ct[keep] ** 3).mean() > alpha)
    assert fails > 5 * delta * reps


def test_recertifying_after_each_audit_is_not_uniform_over_time():
    """Re-running the test after every new item: some look fails more often than delta, a fixed look does not."""
    rng = np.random.default_rng(2)
    alpha, delta, reps, n = 0.1, 0.1, 200, 2000
    grid = np.array([0.5, 0.0])
    at_end = ever = 0
    for _ in range(reps):
        c, agree = _flat_world(rng, n, 0.101)
        looks = [fixed_sequence_threshold(c[:m], agree[:m], alpha, delta, grid).index >= 0
                 for m in range(50, n + 1, 25)]
        at_end += looks[-1]
        ever += any(looks)
    assert at_end <= stats.binom.ppf(1 - 1e-4, reps, delta)
    assert ever > 2 * delta * reps  # 79 looks: 76 of 200 draws fail at some look, 11 at the last (seed 2)
