"""Replay invariants of every router: the budget is never exceeded, empty cells are never paid.

Random outcome matrices (availability, accuracies, prices spanning four orders
of magnitude, realised costs that differ from the quotes) and random budgets,
drawn by hypothesis. Shapes are fixed so each router compiles once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.routing import (
    AuditConfig,
    CascadeConfig,
    ContextualTSConfig,
    Stream,
    bts_router,
    cascade_router,
    contextual_ts_router,
    fixed_router,
    oracle_router,
    random_router,
    replay_batch,
    replay_batch_with,
    ucb_bv_router,
)

N, K, D = 40, 4, 3
AUDITOR = K - 1
SEEDS, BUDGETS = 2, 3


def make_stream(seed: int, avail_rate: float, price_decades: float) -> tuple[Stream, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    x[:, -1] = 1.0
    available = rng.random((N, K)) < avail_rate
    available[:, AUDITOR] |= rng.random(N) < 0.5  # the auditor is sometimes missing too
    base = 10.0 ** (-4 + price_decades * rng.random(K))
    price = (base[None, :] * np.exp(0.3 * rng.normal(size=(N, K)))).astype(np.float32)
    cost = (price * np.exp(0.2 * rng.normal(size=(N, K)))).astype(np.float32)  # realised != quote
    price, cost = price * available, cost * available
    correct = (rng.random((N, K)) < rng.uniform(0.2, 0.95, K)).astype(np.float32) * available
    verdict = correct.copy()
    verdict[:, AUDITOR] = 1.0
    stream = Stream(jnp.asarray(x), jnp.asarray(price), jnp.asarray(cost), jnp.asarray(available),
                    jnp.asarray(correct), jnp.asarray(verdict * available))
    return stream, cost.astype(np.float64)


AUDIT = AuditConfig(rate=0.5, share=0.5)
ROUTERS = {
    "fixed": fixed_router(1),
    "random": random_router(),
    "cascade": cascade_router([0, 2, AUDITOR], CascadeConfig(min_count=2, audit=AUDIT)),
    "contextual_ts": contextual_ts_router(ContextualTSConfig(audit=AUDIT)),
    "bts": bts_router(AUDIT),
    "ucb_bv": ucb_bv_router(AUDIT),
}


def run(router, stream, budgets, seed, auditor=AUDITOR):
    keys = jax.random.split(jax.random.key(seed), SEEDS)
    orders = jnp.stack([jax.random.permutation(k, N) for k in keys])
    return replay_batch(router, stream, orders, jnp.asarray(budgets, jnp.float32), keys, auditor=auditor)


def _oracle(matrices):
    return oracle_router(*matrices)


def run_oracle(stream, budgets, seed):
    """The oracle closes over the outcome matrix: pass it traced so one compilation serves all."""
    keys = jax.random.split(jax.random.key(seed), SEEDS)
    orders = jnp.stack([jax.random.permutation(k, N) for k in keys])
    return replay_batch_with(_oracle, (stream.correct, stream.cost_usd), stream, orders,
                             jnp.asarray(budgets, jnp.float32), keys, auditor=AUDITOR)


def check_invariants(trace, stream, cost64, budgets):
    paid = np.asarray(trace.paid)  # (S, B, n, K)
    items = np.asarray(trace.item)
    available = np.asarray(stream.available)[items]  # (S, B, n, K)
    assert not (paid & ~available).any(), "an unavailable annotator was paid"
    spent = (paid * cost64[items]).sum((-1, -2))
    assert (spent <= np.asarray(budgets, np.float64)[None, :]).all(), (spent, budgets)
    # float32 per-item spends agree with the float64 re-addition
    np.testing.assert_allclose(np.asarray(trace.spend_usd, np.float64).sum(-1), spent, rtol=1e-5, atol=1e-9)
    label = np.asarray(trace.label_arm)
    has = label >= 0
    lab_paid = np.take_along_axis(paid, np.maximum(label, 0)[..., None], -1)[..., 0]
    assert (lab_paid | ~has).all(), "a label came from an arm that was not paid"
    stopped = np.asarray(trace.stopped)
    assert not (stopped & paid.any(-1)).any(), "something was paid after the stream stopped"
    # once stopped, always stopped
    assert (np.diff(stopped.astype(int), axis=-1) >= 0).all()


@pytest.mark.parametrize("name", sorted(ROUTERS))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), avail_rate=st.floats(0.3, 1.0),
       price_decades=st.floats(0.0, 4.0), budget_frac=st.floats(1e-4, 1.5))
def test_budget_never_exceeded_and_empty_cells_never_paid(name, seed, avail_rate, price_decades, budget_frac):
    stream, cost64 = make_stream(seed, avail_rate, price_decades)
    full = float(cost64.sum())
    budgets = np.array([budget_frac * full, budget_frac * full / 7, full * 2], np.float32)
    budgets = np.maximum(budgets, np.float32(1e-7))
    trace = run(ROUTERS[name], stream, budgets, seed)
    check_invariants(trace, stream, cost64, budgets)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), budget_frac=st.floats(1e-3, 1.5))
def test_oracle_buys_only_right_labels_at_their_cheapest_price(seed, budget_frac):
    stream, cost64 = make_stream(seed, 0.8, 3.0)
    budgets = np.array([budget_frac * cost64.sum(), cost64.sum(), 10 * cost64.sum()], np.float32)
    trace = run_oracle(stream, budgets, seed)
    check_invariants(trace, stream, cost64, budgets)
    label = np.asarray(trace.label_arm)
    correct = np.asarray(trace.label_correct)
    assert (correct | (label < 0)).all(), "the oracle bought a wrong label"
    # with an ample budget: every item with a right annotator is labeled, at its cheapest right price
    items = np.asarray(trace.item)[:, -1]  # (S, n)
    right = (np.asarray(stream.correct) > 0.5) & np.asarray(stream.available)
    cheapest_right = np.where(right, cost64, np.inf).min(-1)
    spend = np.asarray(trace.spend_usd, np.float64)[:, -1]
    for s in range(SEEDS):
        expect = cheapest_right[items[s]]
        has = np.isfinite(expect)
        np.testing.assert_allclose(spend[s][has], expect[has], rtol=1e-6)
        assert (spend[s][~has] == 0).all()


def test_oracle_is_the_lower_cost_envelope_at_full_accuracy():
    stream, cost64 = make_stream(11, 0.8, 3.0)
    budgets = np.array([cost64.sum() / 10, cost64.sum(), 10 * cost64.sum()], np.float32)
    oracle = run_oracle(stream, budgets, 0)
    right = (np.asarray(stream.correct) > 0.5) & np.asarray(stream.available)
    cheapest_right = np.where(right, cost64, np.inf).min(-1)
    oracle_right = np.asarray(oracle.label_correct)[:, -1].sum(-1)
    assert (oracle_right == np.isfinite(cheapest_right).sum()).all()
    for name, router in ROUTERS.items():
        other = run(router, stream, budgets, 0)
        items = np.asarray(other.item)[:, -1]
        got_right = np.asarray(other.label_correct)[:, -1]
        spend = (np.asarray(other.paid)[:, -1] * cost64[items]).sum(-1)
        # no router buys a right label for less than the oracle pays for that item
        assert (spend[got_right] >= cheapest_right[items][got_right] * (1 - 1e-6)).all(), name
        # and none gets more right labels than the oracle
        assert (got_right.sum(-1) <= oracle_right).all(), name


def test_free_feedback_mode_runs_without_auditor():
    stream, cost64 = make_stream(3, 0.9, 2.0)
    budgets = np.array([cost64.sum() / 3, cost64.sum() / 30, cost64.sum()], np.float32)
    for name in ("ucb_bv", "contextual_ts"):
        trace = run(ROUTERS[name], stream, budgets, 0, auditor=-1)
        check_invariants(trace, stream, cost64, budgets)
        assert not np.asarray(trace.audited).any()


def _reckless_router():
    """Asks for every arm, an unpaid label and a full audit on every item: the engine must refuse."""
    from alband.routing.base import Decision, Router, stateless_update

    def decide(state, ctx, key):
        K = ctx.price_usd.shape[0]
        return Decision(pay=jnp.ones((K,), bool).at[0].set(False), label_arm=jnp.int32(0),
                        audit_pay=jnp.ones((K,), bool), stop=jnp.bool_(False))

    return Router("reckless", lambda setup: (), decide, stateless_update)


RECKLESS = _reckless_router()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), budget_frac=st.floats(1e-4, 2.0))
def test_engine_enforces_the_rules_whatever_the_router_asks(seed, budget_frac):
    stream, cost64 = make_stream(seed, 0.6, 3.0)
    budgets = np.array([budget_frac * cost64.sum(), cost64.sum() / 50, 3 * cost64.sum()], np.float32)
    trace = run(RECKLESS, stream, budgets, seed)
    check_invariants(trace, stream, cost64, budgets)
    # arm 0 was never requested for payment: it may never label, and is never paid
    assert not np.asarray(trace.paid)[..., 0].any()
    label = np.asarray(trace.label_arm)
    assert ((label == AUDITOR) | (label == -1)).all()  # labels come from the paid auditor only


def test_an_item_without_any_available_arm_is_skipped_not_the_end_of_the_stream():
    stream, cost64 = make_stream(5, 1.0, 1.0)
    available = np.asarray(stream.available).copy()
    available[::3] = False  # every third item has no outcome at all
    stream = stream._replace(available=jnp.asarray(available),
                             price_usd=stream.price_usd * available, cost_usd=stream.cost_usd * available,
                             correct=stream.correct * available, verdict=stream.verdict * available)
    cost64 = cost64 * available
    budgets = np.array([cost64.sum() * 3] * 3, np.float32)
    for name in ("fixed", "random", "contextual_ts"):
        trace = run(ROUTERS[name], stream, budgets, 0)
        check_invariants(trace, stream, cost64, budgets)
        assert not np.asarray(trace.stopped).any(), name
        labeled = np.asarray(trace.label_arm) >= 0
        has_arm = available[np.asarray(trace.item)].any(-1)
        assert (labeled == has_arm).all() if name != "fixed" else (labeled <= has_arm).all()
