"""Buying one item from a router's choice of annotators: the pure steps shared by the simulator and the live loop.

The pay rule itself (steps 3) is :mod:`alband.purchase.rule`.

Within a batch the proposed items are routed one by one, in batch order. For a
fresh item ``i`` (never queried) while purchases go on:

1. **Context** (:func:`item_context`): the item's features, each arm's price
   quote ``q_k(i)`` = the arm's largest possible cost for the item (the amount
   the budget reserves before the call: :func:`alband.simulate.reserve_usd`
   for a simulated annotator, ``max_cost_usd`` for a live one), the dollars
   left ``B - s`` (``s`` = the float32 sum of the actual costs paid so far)
   and the labels still to buy (the episode's capacity minus the items bought).
2. **Decision**: ``router.decide(state, ctx, k_decide)``.
3. **Payment** (:func:`alband.purchase.rule.plan_payment`, :func:`alband.purchase.rule.item_purchase`): the arms of ``pay`` plus ``label_arm``
   are the purchase; the audit's extra arms (``audit_pay`` minus those) are
   paid only in the audited setting (``auditor >= 0``), when the auditor is
   among the paid arms and the item gets a label. The purchase is made iff the
   quotes of its arms fit: ``s + sum_{k in pay} q_k <= B``; the first item
   that does not fit, or a ``Decision.stop``, ends the purchases. The audit is
   added iff ``s + sum_{k in pay or audit} q_k <= B`` (else the item is bought
   without it).
4. **Feedback** (:func:`observe_item`): the label is the auditor's answer when
   the auditor was paid (it is taken as truth), else ``label_arm``'s. In the
   audited setting the verdict "arm k agrees with the auditor" is observed for
   every paid arm iff the auditor was paid; with free feedback (``auditor =
   -1``, a simulation convenience) every paid arm's answer is checked against
   the gold label. The router is updated with that :class:`Feedback`, and the
   verdicts are counted for the ``"audited"`` label weights
   (:mod:`alband.routing.label_weights`).
5. **Batch end** (:func:`finish_batch`): the bought labels are recorded with
   their cost (every paid arm's, audits included) and every label bought so
   far is re-weighted from the current verdict counts.

Keys. Round ``r`` routes with ``fold_in(fold_in(annotate, ROUTE_STREAM), r)``
split into one key per batch position, each split into ``(k_decide,
k_update)``; arm ``k`` of a simulated mix answers with ``fold_in(annotate, k)``.
A live run therefore makes the simulator's decisions for the same seed, and a
resumed run replays the router to the same state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.pool import LabelState, record_annotations
from alband.purchase.rule import plan_payment
from alband.routing.base import Feedback, Router, RouterSetup, RouterState, StepContext
from alband.routing.label_weights import (
    VerdictCounts,
    arm_weights,
    empty_counts,
    record_verdicts,
    refresh_weights,
)

Array = jax.Array

# ``fold_in`` constant of the routing key stream (derived from the annotate key).
ROUTE_STREAM = 0x2047E


class RoutingCarry(NamedTuple):
    """What routing carries from item to item: the router's state and what labels are weighted by."""

    router: RouterState
    counts: VerdictCounts  # verdicts observed per arm
    slot_arm: Array  # (M,) int32 arm whose answer is the label of each training slot (-1: empty)


def route_key(annotate_key: Array, round_index: int | Array) -> Array:
    """The routing key of round ``round_index`` (0 = the seed set)."""
    return jax.random.fold_in(jax.random.fold_in(annotate_key, ROUTE_STREAM), round_index)


def item_keys(annotate_key: Array, round_index: int | Array, batch_size: int) -> Array:
    """One key per batch position of round ``round_index``."""
    return jax.random.split(route_key(annotate_key, round_index), batch_size)


def arm_key(annotate_key: Array, arm: int | Array) -> Array:
    """The answer key of arm ``arm`` of a simulated mix."""
    return jax.random.fold_in(annotate_key, arm)


def routing_setup(quote_usd: Array, dim: int, auditor: int, budget_usd: Array | float,
                  capacity: int) -> RouterSetup:
    """What the router knows before the first item: ``quote_usd`` is ``(K, N)``, one quote per arm and pool item."""
    quote_usd = jnp.asarray(quote_usd, jnp.float32)
    return RouterSetup(
        n_arms=int(quote_usd.shape[0]),
        dim=int(dim),
        auditor=int(auditor),
        budget_usd=jnp.asarray(budget_usd, jnp.float32),
        n_items=jnp.int32(capacity),
        cost_scale=jnp.max(jnp.mean(quote_usd, axis=1)),
        cost_max=jnp.max(quote_usd),
    )


def init_carry(router: Router, setup: RouterSetup, capacity: int) -> RoutingCarry:
    return RoutingCarry(router.init(setup), empty_counts(setup.n_arms), jnp.full((capacity,), -1, jnp.int32))


def item_context(item: Array, x: Array, quote_usd: Array, spent_usd: Array, budget_usd: Array,
                 n_train: Array, capacity: int) -> StepContext:
    """The router's view of one item (module docstring, step 1); ``quote_usd`` is ``(K,)``."""
    n_arms = quote_usd.shape[0]
    return StepContext(
        item=jnp.asarray(item, jnp.int32),
        x=x,
        price_usd=jnp.asarray(quote_usd, jnp.float32),
        available=jnp.ones((n_arms,), bool),
        remaining_usd=jnp.asarray(budget_usd, jnp.float32) - jnp.asarray(spent_usd, jnp.float32),
        items_left=jnp.int32(capacity) - jnp.asarray(n_train, jnp.int32),
    )


def decide_item(router: Router, auditor: int, capacity: int, router_state: RouterState, item: Array, x: Array,
                quote_usd: Array, spent_usd: Array, budget_usd: Array, n_train: Array, key: Array):
    """Steps 1-3 for one item: ``(ctx, stop_asked, payment)`` -- the router's view, its ``Decision.stop``, the arms it asks to pay."""
    ctx = item_context(item, x, quote_usd, spent_usd, budget_usd, n_train, capacity)
    decision = router.decide(router_state, ctx, key)
    return ctx, decision.stop, plan_payment(decision, auditor)


def observe_item(router: Router, auditor: int, carry: RoutingCarry, ctx: StepContext, label_arm: Array,
                 paid: Array, answers: Array, cost_usd: Array, gold: Array, take: Array, key: Array):
    """Feedback of one item to the router and the verdict counts (module docstring, step 4).

    ``label_arm`` is the decision's, ``paid`` (K,) the arms paid (audit
    included), ``answers`` (K,) int32 each paid arm's answer (-1 for an invalid answer or
    an arm not paid), ``cost_usd`` (K,) what each paid arm charged, ``gold``
    the gold label (read only with free feedback), ``take`` whether the item
    was bought (nothing changes otherwise).

    Returns ``(carry, label, label_source, spend)``: the label (-1 invalid),
    the arm that produced it (-1 when not bought) and the dollars paid.
    """
    n_arms = answers.shape[0]
    arms = jnp.arange(n_arms)
    paid = paid & take
    valid = answers >= 0
    label_arm = jnp.asarray(label_arm, jnp.int32)
    if auditor < 0:
        observed = paid
        verdict = (valid & (answers == gold)).astype(jnp.float32)
        source = label_arm
    else:
        truth = answers[auditor]
        audited = paid[auditor] & valid[auditor]
        observed = paid & audited
        verdict = (valid & (answers == truth)).astype(jnp.float32)
        source = jnp.where(audited, jnp.int32(auditor), label_arm)
    spend = jnp.sum(jnp.where(paid, cost_usd, 0.0)).astype(jnp.float32)
    feedback = Feedback(
        item=ctx.item, x=ctx.x, price_usd=ctx.price_usd, cost_usd=jnp.where(paid, cost_usd, 0.0).astype(jnp.float32),
        available=ctx.available, paid=paid, verdict=verdict, observed=observed, spend_usd=spend,
        remaining_usd=ctx.remaining_usd, items_left=ctx.items_left, active=take,
    )
    updated = router.update(carry.router, feedback, key)
    router_state = jax.tree_util.tree_map(lambda new, old: jnp.where(take, new, old), updated, carry.router)
    counts = record_verdicts(carry.counts, observed & (arms != auditor), verdict)
    source = jnp.where(take, source, -1).astype(jnp.int32)
    label = jnp.where(take, answers[jnp.clip(source, 0, n_arms - 1)], -1).astype(jnp.int32)
    return carry._replace(router=router_state, counts=counts), label, source, jnp.where(take, spend, 0.0)



def finish_batch(state: LabelState, carry: RoutingCarry, index: Array, labels: Array, accepted: Array,
                 spend_usd: Array, source: Array, label_weight: str, configured_weight: Array,
                 auditor: int) -> tuple[LabelState, RoutingCarry]:
    """Record a routed batch and re-weight every label bought so far (module docstring, step 5).

    ``source`` (B,) is the arm that produced each label (-1 where not bought),
    ``configured_weight`` (K,) the annotators' configured label weights.
    """
    accepted = accepted.astype(bool)
    capacity = carry.slot_arm.shape[0]
    slot = jnp.where(accepted, state.n_train + jnp.cumsum(accepted.astype(jnp.int32)) - 1, capacity)
    slot_arm = carry.slot_arm.at[slot].set(source.astype(jnp.int32), mode="drop")
    weight = arm_weights(label_weight, carry.counts, configured_weight, auditor)
    state = record_annotations(state, index, labels, accepted, spend_usd, weight[jnp.clip(source, 0)])
    return refresh_weights(state, slot_arm, weight), carry._replace(slot_arm=slot_arm)
