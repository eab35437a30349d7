"""Learning behaviour of the routers on synthetic outcome matrices, and the metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.routing import (
    AuditConfig,
    CascadeConfig,
    ContextualTSConfig,
    Stream,
    apgr,
    apgr_budget_grid,
    bts_router,
    cascade_router,
    contextual_ts_router,
    cost_to_target,
    pgr,
    replay_batch,
    ucb_bv_router,
)
from alband.routing.cascade import acceptance_threshold
from alband.routing.spend_total import charge, spendable, zero_spend


def ratio_stream(n=8000, seed=0):
    """3 arms, costs 0.5/0.6/1.0 (+-10%), accuracies 0.2/0.9/0.9: best ratio = arm 1 (1.5 vs 0.4, 0.9)."""
    rng = np.random.default_rng(seed)
    acc = np.array([0.2, 0.9, 0.9])
    base = np.array([0.5, 0.6, 1.0])
    cost = (base * rng.uniform(0.9, 1.1, (n, 3))).astype(np.float32)
    correct = (rng.random((n, 3)) < acc).astype(np.float32)
    x = np.ones((n, 1), np.float32)
    avail = np.ones((n, 3), bool)
    return Stream(jnp.asarray(x), jnp.asarray(cost), jnp.asarray(cost), jnp.asarray(avail),
                  jnp.asarray(correct), jnp.asarray(correct))


@pytest.mark.parametrize("make,n", [(bts_router, 2000), (ucb_bv_router, 8000)], ids=["bts", "ucb_bv"])
def test_budgeted_bandits_settle_on_the_best_ratio_arm(make, n):
    stream = ratio_stream(n)
    n = stream.cost_usd.shape[0]
    keys = jax.random.split(jax.random.key(0), 2)
    orders = jnp.stack([jax.random.permutation(k, n) for k in keys])
    trace = replay_batch(make(AuditConfig()), stream, orders, jnp.asarray([1e6], jnp.float32), keys,
                         auditor=-1)  # free feedback: every payment reveals its outcome
    label = np.asarray(trace.label_arm)[:, 0]
    early, late = (label[:, : n // 4] == 1).mean(1), (label[:, -n // 4:] == 1).mean(1)
    assert (late > 0.85).all(), late
    assert (late >= early).all()


def context_stream(n=4000, seed=1):
    """Two item groups (feature), arm 0 right on group A only, arm 1 on group B only; human arm 2."""
    rng = np.random.default_rng(seed)
    group = rng.random(n) < 0.5
    x = np.stack([group, ~group], 1).astype(np.float32)
    correct = np.zeros((n, 3), np.float32)
    correct[:, 0] = np.where(group, rng.random(n) < 0.95, rng.random(n) < 0.1)
    correct[:, 1] = np.where(group, rng.random(n) < 0.1, rng.random(n) < 0.95)
    correct[:, 2] = 1.0
    price = np.tile(np.array([0.001, 0.001, 0.1], np.float32), (n, 1))
    avail = np.ones((n, 3), bool)
    return Stream(jnp.asarray(x), jnp.asarray(price), jnp.asarray(price), jnp.asarray(avail),
                  jnp.asarray(correct), jnp.asarray(correct)), correct


def test_contextual_ts_learns_who_is_right_where_and_paces_the_budget():
    stream, correct = context_stream()
    n = correct.shape[0]
    budget = n * 0.001 * 2.0  # room for some human labels and audits
    keys = jax.random.split(jax.random.key(1), 2)
    orders = jnp.stack([jax.random.permutation(k, n) for k in keys])
    router = contextual_ts_router(ContextualTSConfig(audit=AuditConfig(rate=0.1, share=0.3)))
    trace = replay_batch(router, stream, orders, jnp.asarray([budget], jnp.float32), keys, auditor=2)
    right = np.asarray(trace.label_correct)[:, 0]
    assert right[:, n // 2:].mean() > 0.85  # a context-free router is stuck near 0.5 + human share
    spend = np.asarray(trace.spend_usd, np.float64)[:, 0]
    halves = spend[:, : n // 2].sum(1), spend[:, n // 2:].sum(1)
    assert (spend.sum(1) > 0.9 * budget).all()
    assert (np.abs(halves[0] - halves[1]) < 0.35 * budget).all()  # spent evenly, not front-loaded


def test_cascade_accepts_the_cheap_stage_where_it_is_reliable():
    stream, correct = context_stream()
    n = correct.shape[0]
    keys = jax.random.split(jax.random.key(2), 2)
    orders = jnp.stack([jax.random.permutation(k, n) for k in keys])
    router = cascade_router([0, 2], CascadeConfig(target=0.9, min_count=10,
                                                  audit=AuditConfig(rate=0.2, share=0.5)))
    budget = n * 0.08  # enough to escalate every group-B item to the human
    trace = replay_batch(router, stream, orders, jnp.asarray([budget], jnp.float32), keys, auditor=2)
    late = slice(3 * n // 4, None)
    label = np.asarray(trace.label_arm)[:, 0, late]
    items = np.asarray(trace.item)[:, 0, late]
    group_a = np.asarray(stream.features)[items, 0] > 0.5
    accept_a = (label[group_a] == 0).mean()
    accept_b = (label[~group_a] == 0).mean()
    assert accept_a > 0.75 and accept_b < 0.1, (accept_a, accept_b)
    assert np.asarray(trace.label_correct)[:, 0, late].mean() > 0.9


def test_acceptance_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = rng.integers(0, 30, 10).astype(np.float32)
        hits = np.floor(counts * rng.random(10)).astype(np.float32)
        target, min_count = rng.uniform(0.3, 1.0), int(rng.integers(1, 40))
        got = float(acceptance_threshold(jnp.asarray(hits), jnp.asarray(counts), target, min_count))
        best = 2.0
        for b in range(10):
            c, h = counts[b:].sum(), hits[b:].sum()
            if c >= min_count and h >= target * c:
                best = b / 10
                break
        assert got == pytest.approx(best)


def test_pgr_and_apgr_of_always_strong_and_always_weak():
    assert float(pgr(0.81, 0.68, 0.81)) == pytest.approx(1.0)
    assert float(pgr(0.68, 0.68, 0.81)) == pytest.approx(0.0)
    assert apgr([0.81] * 11, 0.68, 0.81) == pytest.approx(1.0)
    assert apgr([0.68] * 11, 0.68, 0.81) == pytest.approx(0.0)
    # a router linear in the budget between weak and strong recovers half the gap on average
    assert apgr(np.linspace(0.68, 0.81, 11), 0.68, 0.81) == pytest.approx(0.5)
    grid = apgr_budget_grid(1.0, 3.0, 5)
    np.testing.assert_allclose(grid, [1.0, 1.5, 2.0, 2.5, 3.0])


def test_cost_to_target_reads_the_sweep():
    budgets = [1.0, 2.0, 4.0, 8.0]
    spent = [0.9, 1.9, 3.5, 3.6]
    acc = [0.5, 0.7, 0.8, 0.8]
    assert cost_to_target(budgets, spent, acc, 0.75) == pytest.approx(3.5)
    assert cost_to_target(budgets, spent, acc, 0.9) is None


def test_spend_total_tracks_float64_sums_without_drift():
    rng = np.random.default_rng(0)
    amounts = (10.0 ** rng.uniform(-6, -2, 20000)).astype(np.float32)
    step = jax.jit(lambda led, a: (charge(led, a), None))
    led, _ = jax.lax.scan(step, zero_spend(), jnp.asarray(amounts))
    exact = amounts.astype(np.float64).sum()
    total = float(led.hi) + float(led.lo)
    assert abs(total - exact) <= 4 * np.finfo(np.float32).eps * exact
    naive = float(jnp.cumsum(jnp.asarray(amounts))[-1])
    assert abs(total - exact) <= abs(naive - exact)
    budget = np.float32(exact * 1.5)
    left = float(spendable(led, budget))
    assert left <= float(budget) - exact


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (1.0, 60.0), (4.0, 400.0), (40.0, 7.0), (900.0, 2100.0)])
def test_loop_free_beta_sampler_matches_scipy(a, b):
    from scipy import stats

    from alband.routing.sampling import beta_ge1

    draws = np.asarray(beta_ge1(jax.random.key(0), jnp.full((20000,), a), jnp.full((20000,), b)), np.float64)
    assert stats.kstest(draws, stats.beta(a, b).cdf).pvalue > 1e-3
