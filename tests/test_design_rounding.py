"""From designs to batches: distinct rounding, efficient rounding, dollar budgets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.design import (
    cost_weighted_design,
    d_optimal_design,
    efficient_rounding,
    greedy_budgeted_design,
    round_design,
)
from alband.errors import AlbandError

N, D = 40, 4
_RNG = np.random.default_rng(0)
X = _RNG.standard_normal((N, D)).astype(np.float32)
X[:2] *= 2.5
DESIGN = np.asarray(d_optimal_design(X).weights)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    batch_size=st.sampled_from([1, 3, 8, 20]),
    mask_bits=st.lists(st.booleans(), min_size=N, max_size=N),
    use_design=st.booleans(),
)
def test_round_design_returns_distinct_unmasked_indices(batch_size, mask_bits, use_design):
    mask = np.array(mask_bits)
    weights = DESIGN if use_design else np.full(N, 1 / N, np.float32)
    if batch_size > N - mask.sum():
        with pytest.raises(AlbandError, match="exceeds"):
            round_design(X, weights, batch_size, exclude_mask=mask)
        return
    idx = np.asarray(round_design(X, weights, batch_size, exclude_mask=mask))
    assert idx.shape == (batch_size,) and idx.dtype == np.int32
    assert len(set(idx.tolist())) == batch_size
    assert (idx >= 0).all() and (idx < N).all()
    assert not mask[idx].any()


def test_round_design_takes_the_support_first():
    support = np.flatnonzero(DESIGN > 0)
    idx = np.asarray(round_design(X, DESIGN, len(support) + 3))
    assert set(support) <= set(idx.tolist())
    assert set(idx[: len(support)].tolist()) == set(support.tolist())


def test_round_design_smaller_batch_spans_the_support():
    # Greedy log-det on the support: B = d picks are linearly independent.
    idx = np.asarray(round_design(X, DESIGN, D))
    assert set(idx.tolist()) <= set(np.flatnonzero(DESIGN > 0).tolist())
    assert np.linalg.matrix_rank(X[idx]) == D


def test_round_design_rejects_bad_weights():
    with pytest.raises(AlbandError, match="weights must have shape"):
        round_design(X, DESIGN[:-1], 2)
    with pytest.raises(AlbandError, match="finite and >= 0"):
        round_design(X, -DESIGN, 2)


@SETTINGS
@given(n_total=st.integers(1, 200))
def test_efficient_rounding_sums_to_n_on_the_support(n_total):
    counts = np.asarray(efficient_rounding(DESIGN, n_total))
    assert counts.sum() == n_total
    assert (counts >= 0).all()
    assert (counts[DESIGN == 0] == 0).all()
    support = DESIGN > 0
    if n_total >= support.sum():
        # Pukelsheim-Rieder: each count is within the support size of N pi_i.
        assert np.all(np.abs(counts[support] - n_total * DESIGN[support]) <= support.sum())


def test_efficient_rounding_known_case():
    # Three points with weights (1/2, 1/3, 1/6), N = 6: the exact apportionment.
    counts = np.asarray(efficient_rounding(np.array([0.5, 1 / 3, 1 / 6, 0.0]), 6))
    np.testing.assert_array_equal(counts, [3, 2, 1, 0])


@SETTINGS
@given(
    costs=st.lists(st.floats(1e-4, 5.0, allow_nan=False), min_size=N, max_size=N),
    budget=st.floats(0.0, 20.0, allow_nan=False),
    mask_bits=st.lists(st.booleans(), min_size=N, max_size=N),
)
def test_budgeted_design_never_exceeds_the_budget(costs, budget, mask_bits):
    cost = np.array(costs)
    mask = np.array(mask_bits)
    sel = greedy_budgeted_design(X, cost, budget, exclude_mask=mask, max_items=N)
    valid = np.asarray(sel.valid)
    idx = np.asarray(sel.indices)[valid]
    assert cost[idx].sum() <= budget  # float64, exact costs
    assert len(set(idx.tolist())) == len(idx)
    assert not mask[idx].any()
    assert (np.asarray(sel.indices)[~valid] == -1).all()
    assert valid[: valid.sum()].all()  # valid entries come first
    assert float(sel.spent_usd) == pytest.approx(cost[idx].sum(), rel=1e-5, abs=1e-6)
    # Maximality: nothing left out still fits (unless the best single item won).
    leftover = budget - cost[idx].sum()
    free = ~mask
    free[idx] = False
    if len(idx) > 1 or not free.any():
        assert not (cost[free] < leftover * (1 - 1e-5)).any()


def test_budgeted_design_prefers_information_per_dollar():
    # Two copies of every direction: one cheap, one 100x dearer; the greedy buys the cheap ones.
    base = np.eye(D, dtype=np.float32)
    pool = np.vstack([base, base])
    cost = np.r_[np.full(D, 0.01), np.full(D, 1.0)]
    sel = greedy_budgeted_design(pool, cost, 0.05)
    idx = np.asarray(sel.indices)[np.asarray(sel.valid)]
    assert sorted(idx.tolist()) == list(range(D))


def test_budgeted_design_errors():
    with pytest.raises(AlbandError, match=r"cost_usd\[3\]"):
        greedy_budgeted_design(X, np.r_[np.ones(3), 0.0, np.ones(N - 4)], 1.0)
    with pytest.raises(AlbandError, match="budget_usd"):
        greedy_budgeted_design(X, np.ones(N), -1.0)


def test_cost_weighted_design_spends_the_budget():
    cost = np.random.default_rng(1).uniform(0.01, 1.0, N)
    mask = np.zeros(N, bool)
    mask[:5] = True
    cw = cost_weighted_design(X, cost, 3.0, exclude_mask=mask)
    assert float(np.sum(cw.expected_counts * cost)) == pytest.approx(3.0, rel=1e-5)
    assert (cw.expected_counts[:5] == 0).all()
    assert bool(cw.design.certified)
