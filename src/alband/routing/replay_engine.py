"""Replay a router over an outcome matrix: one ``lax.scan`` over the items of a stream.

The stream visits the matrix rows in ``order`` (a permutation, one per seed).
At step ``t`` with item ``i = order[t]`` the engine

1. offers the router the item's features, price quotes and available arms,
   and the dollars still spendable (:mod:`alband.routing.spend_total`: compensated
   float32 sum, costs rounded up and the budget down by the caller, so the
   budget is never exceeded);
2. enforces the rules whatever the router asked, with the *realised* costs
   (the budget guard of a live run reserves an upper bound before each call;
   the replay knows the exact amount): unavailable arms are never paid; if the
   requested arms do not fit in the budget nothing is paid; the audit's extra
   arms are paid only if they fit too and the auditor is paid with them; the
   label must come from a paid arm;
3. stops the stream for good when the item has available arms but none is
   affordable, or when the router says its own annotators are out of reach
   (``Decision.stop``); an item without any available arm is skipped;
4. labels the item with the auditor's answer when the auditor was paid,
   otherwise with ``label_arm``; the verdicts of every other paid arm are then
   observed (with ``auditor = -1``, every paid arm's correctness is observed);
5. calls ``router.update`` with that feedback (skipped once stopped).

:func:`replay` returns a per-item :class:`Trace`; :func:`replay_batch` maps it
over seeds (orders and keys) and budgets with ``vmap``, so a whole budget sweep
is one compiled scan.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.purchase.rule import paid_arms
from alband.routing.base import Decision, Feedback, Router, RouterSetup, StepContext, Stream
from alband.routing.spend_total import charge, spendable, zero_spend

Array = jax.Array


class Trace(NamedTuple):
    """Per step of the stream (leading axis: position in the stream)."""

    item: Array  # int32 pool index
    label_arm: Array  # int32 arm whose answer became the label, -1 for none
    label_correct: Array  # bool the label is right (vs gold)
    spend_usd: Array  # float32 dollars paid on the item
    paid: Array  # (K,) bool arms paid (audit included)
    audited: Array  # bool an audit was paid on the item (auditor and/or panel)
    stopped: Array  # bool the stream had stopped before this item


def router_setup(stream: Stream, budget_usd, auditor: int) -> RouterSetup:
    n, K = stream.price_usd.shape
    avail = stream.available.astype(jnp.float32)
    per_arm_mean = jnp.sum(stream.price_usd * avail, 0) / jnp.maximum(jnp.sum(avail, 0), 1.0)
    return RouterSetup(
        n_arms=K,
        dim=stream.features.shape[1],
        auditor=int(auditor),
        budget_usd=jnp.asarray(budget_usd, jnp.float32),
        n_items=jnp.int32(n),
        cost_scale=jnp.max(per_arm_mean),
        cost_max=jnp.max(jnp.where(stream.available,
                                   jnp.maximum(stream.cost_usd, stream.price_usd), 0.0)),
    )


def _enforce(decision: Decision, cost: Array, available: Array, remaining: Array,
             auditor: int) -> tuple[Array, Array, Array]:
    """(paid mask, label arm, audited) after applying the rules of the module docstring.

    What fits is the purchase rule of both round drivers
    (:func:`alband.purchase.rule.paid_arms`) with the realised costs and the
    spendable dollars; the replay's own rules are that unavailable arms are
    never paid and that the label must come from a paid arm.
    """
    K = cost.shape[0]
    pay = decision.pay & available
    label = decision.label_arm
    label_ok = (label >= 0) & pay[jnp.clip(label, 0, K - 1)]
    if auditor < 0:
        audit = jnp.zeros((K,), bool)
    else:
        extra = decision.audit_pay & available & ~pay
        audit = extra & (jnp.any(extra) & label_ok & (pay[auditor] | extra[auditor]))
    fits, paid = paid_arms(pay, audit, cost, jnp.float32(0.0), remaining)
    paid = paid & fits
    label = jnp.where(label_ok & fits, label, -1)
    if auditor < 0:
        return paid, label.astype(jnp.int32), jnp.bool_(False)
    audited = jnp.any(paid & audit)
    label = jnp.where(paid[auditor], auditor, label)
    return paid, label.astype(jnp.int32), audited


def replay(router: Router, stream: Stream, order: Array, budget_usd, key: Array,
           auditor: int = -1) -> Trace:
    """Run ``router`` over ``stream`` in ``order`` under ``budget_usd``; see the module docstring."""
    setup = router_setup(stream, budget_usd, auditor)
    budget = setup.budget_usd
    n = order.shape[0]
    K = setup.n_arms
    state0 = router.init(setup)
    keys = jax.random.split(key, n)

    def step(carry, xs):
        state, ledger, stopped = carry
        t, i, k = xs
        k_decide, k_update = jax.random.split(k)
        x = stream.features[i]
        price = stream.price_usd[i]
        cost = stream.cost_usd[i]
        avail = stream.available[i]
        remaining = spendable(ledger, budget)
        items_left = (n - t).astype(jnp.int32)
        ctx = StepContext(i, x, price, avail, remaining, items_left)
        decision = router.decide(state, ctx, k_decide)

        # an item with no available arm at all is skipped; the stream stops when the budget
        # cannot pay any arm that is available
        nothing_affordable = jnp.any(avail) & ~jnp.any(avail & (cost <= remaining))
        stop_now = stopped | nothing_affordable | decision.stop
        paid, label, audited = _enforce(decision, cost, avail, remaining, auditor)
        paid = paid & ~stop_now
        label = jnp.where(stop_now, -1, label)
        audited = audited & ~stop_now
        spend = jnp.sum(jnp.where(paid, cost, 0.0))

        if auditor < 0:
            observed = paid
        else:
            observed = paid & paid[auditor]
        fb = Feedback(i, x, price, jnp.where(paid, cost, 0.0), avail, paid, stream.verdict[i],
                      observed, spend, remaining, items_left, ~stop_now)
        new_state = router.update(state, fb, k_update)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(stop_now, a, b), state, new_state)
        ledger = charge(ledger, spend)
        correct = (label >= 0) & (stream.correct[i, jnp.clip(label, 0, K - 1)] > 0.5)
        out = Trace(i.astype(jnp.int32), label, correct, spend, paid, audited, stopped)
        return (state, ledger, stop_now), out

    carry0 = (state0, zero_spend(), jnp.bool_(False))
    xs = (jnp.arange(n, dtype=jnp.int32), order.astype(jnp.int32), keys)
    _, trace = jax.lax.scan(step, carry0, xs)
    return trace


def _replay_batch(router: Router, stream: Stream, orders: Array, budgets_usd: Array, keys: Array,
                  auditor: int) -> Trace:
    per_budget = jax.vmap(lambda o, b, k: replay(router, stream, o, b, k, auditor),
                          in_axes=(None, 0, None))
    return jax.vmap(per_budget, in_axes=(0, None, 0))(orders, budgets_usd, keys)


@partial(jax.jit, static_argnames=("router", "auditor"))
def replay_batch(router: Router, stream: Stream, orders: Array, budgets_usd: Array, keys: Array,
                 auditor: int = -1) -> Trace:
    """:func:`replay` for every seed (``orders`` (S, n), ``keys`` (S,)) x budget (B,).

    Returns a :class:`Trace` whose arrays have leading axes (S, B, n). ``router``
    is a static argument: build it once and reuse it to avoid recompiling.
    """
    return _replay_batch(router, stream, orders, budgets_usd, keys, auditor)


@partial(jax.jit, static_argnames=("make_router", "auditor"))
def replay_batch_with(make_router, router_arg, stream: Stream, orders: Array, budgets_usd: Array,
                      keys: Array, auditor: int = -1) -> Trace:
    """:func:`replay_batch` for ``make_router(router_arg)`` with ``router_arg`` traced.

    One compilation serves every value of the argument, e.g.
    ``replay_batch_with(fixed_router, arm, ...)`` for each arm.
    """
    return _replay_batch(make_router(router_arg), stream, orders, budgets_usd, keys, auditor)
