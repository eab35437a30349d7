"""Routers that do not learn: a fixed annotator, uniform random, and the hindsight oracle.

* :func:`fixed_router` always pays one arm. Where that arm's cell is empty
  the item is skipped (no label); once the arm is available but no longer
  affordable, the stream stops.
* :func:`random_router` pays an arm drawn uniformly among the available ones
  that keep the coverage reserve and the even pace (:mod:`alband.routing.pacing`),
  falling back to the cheapest affordable arm: the "random with CIs" baseline
  that every router comparison should report (LLMRouterBench's caution).
* :func:`oracle_router` pays, per item, the cheapest arm whose answer is right
  in hindsight, and nothing when no arm is right: it never buys a wrong label,
  so it is the lower cost envelope at full accuracy; under a budget it buys the
  items whose cheapest right label is cheapest first (the most right labels the
  budget can buy). Evaluation only: it reads the correctness matrix and the
  realised costs, which no other router sees.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.routing.base import (
    Decision,
    Feedback,
    Router,
    RouterSetup,
    StepContext,
    cheapest,
    no_audit,
    one_hot_pay,
    stateless_update,
)
from alband.routing.pacing import FloorState, init_floor, on_pace, reserved_choices, update_floor
from alband.routing.registry import ARM, register_router

Array = jax.Array


def fixed_router(arm, name: str | None = None) -> Router:
    """Always arm ``arm`` (a Python int or a traced int32 scalar)."""

    def init(setup: RouterSetup):
        return jnp.asarray(arm, jnp.int32)

    def decide(state, ctx: StepContext, key: Array) -> Decision:
        k = state
        n_arms = ctx.price_usd.shape[0]
        avail = ctx.available[k]
        affordable = ctx.price_usd[k] <= ctx.remaining_usd
        pays = avail & affordable
        return Decision(
            pay=one_hot_pay(jnp.where(pays, k, -1), n_arms),
            label_arm=jnp.where(pays, k, -1).astype(jnp.int32),
            audit_pay=no_audit(n_arms),
            stop=avail & ~affordable,
        )

    return Router(name or "fixed", init, decide, stateless_update)


class _RandomState(NamedTuple):
    floor: FloorState
    budget_usd: Array
    n_items: Array


def random_router(name: str = "random") -> Router:
    def init(setup: RouterSetup) -> _RandomState:
        return _RandomState(init_floor(), jnp.asarray(setup.budget_usd, jnp.float32),
                            jnp.asarray(setup.n_items, jnp.int32))

    def decide(state: _RandomState, ctx: StepContext, key: Array) -> Decision:
        n_arms = ctx.price_usd.shape[0]
        affordable, keeps = reserved_choices(state.floor, ctx)
        keeps = keeps & on_pace(state.budget_usd, state.n_items, ctx.remaining_usd, ctx.items_left,
                                ctx.price_usd)
        u = jax.random.uniform(key, (n_arms,))
        drawn = jnp.where(jnp.any(keeps), jnp.argmax(jnp.where(keeps, u, -1.0)), -1)
        fallback = cheapest(ctx.price_usd, affordable, u)  # uniform among the cheapest price level
        arm = jnp.where(drawn >= 0, drawn, fallback).astype(jnp.int32)
        return Decision(one_hot_pay(arm, n_arms), arm, no_audit(n_arms),
                        stop=~jnp.any(affordable) & jnp.any(ctx.available))

    def update(state: _RandomState, fb: Feedback, key: Array) -> _RandomState:
        return state._replace(floor=update_floor(state.floor, fb))

    return Router(name, init, decide, update)


def hindsight_plan(correct: Array, cost_usd: Array, budget_usd: Array) -> Array:
    """(n,) bool: the items whose cheapest right label the budget-optimal oracle buys.

    Buying, for every item, its cheapest right annotator in increasing order of
    that price maximises the number of right labels a budget can buy (unit
    values: the greedy knapsack is optimal up to the last item). The plan is
    the longest prefix of that order that fits in the budget; ties are broken
    by pool index. ``correct`` is 0 where an arm is unavailable.
    """
    right = correct > 0.5
    c_star = jnp.min(jnp.where(right, cost_usd, jnp.inf), axis=1)
    order = jnp.argsort(c_star, stable=True)
    ordered = c_star[order]
    total = jnp.cumsum(jnp.where(jnp.isfinite(ordered), ordered, 0.0))
    fits = jnp.isfinite(ordered) & (total <= budget_usd)
    return jnp.zeros(c_star.shape, bool).at[order].set(fits)


def oracle_router(correct: Array, cost_usd: Array, name: str = "oracle") -> Router:
    """Cheapest right arm in hindsight, for the items the budget-optimal plan buys.

    ``correct`` and realised ``cost_usd`` are (n, K) in pool order. The oracle
    buys item ``i``'s cheapest right label iff ``i`` is in the
    :func:`hindsight_plan` for the budget, i.e. it spends the budget on the most
    right labels it can buy, and never on a wrong one.
    """
    correct = jnp.asarray(correct)
    cost_usd = jnp.asarray(cost_usd)

    def init(setup: RouterSetup):
        return hindsight_plan(correct, cost_usd, setup.budget_usd)

    def decide(plan, ctx: StepContext, key: Array) -> Decision:
        n_arms = ctx.price_usd.shape[0]
        cost = cost_usd[ctx.item]
        right = ctx.available & (correct[ctx.item] > 0.5) & (cost <= ctx.remaining_usd)
        arm = cheapest(cost, right)
        arm = jnp.where((arm >= 0) & plan[ctx.item], arm, -1).astype(jnp.int32)
        return Decision(one_hot_pay(arm, n_arms), arm, no_audit(n_arms), stop=jnp.bool_(False))

    return Router(name, init, decide, stateless_update)


@register_router("fixed", parameters={"arm": ARM})
def make_fixed(arm: int = 0) -> Router:
    """``fixed``: always arm ``arm`` (default the first)."""
    if arm < 0:
        raise AlbandError(f"arm must be an arm index >= 0, got {arm}")
    return fixed_router(arm)


@register_router("random")
def make_random() -> Router:
    """``random``: a uniform draw among the arms that keep the pace."""
    return random_router()


@register_router("oracle", hindsight=True, parameters={"correct": object, "cost_usd": object})
def make_oracle(correct: Array, cost_usd: Array) -> Router:
    """``oracle``: the cheapest right arm in hindsight, from the ``(n, K)`` outcome matrices (evaluation only)."""
    return oracle_router(correct, cost_usd)


@register_router("shares", parameters={"shares": list})
def make_shares(shares: list | None = None) -> Router:
    """``shares``: arm ``k`` with probability ``shares[k]`` (normalised), drawn per item, blind to price and outcome.

    A fixed annotator mix (60 % cheap LLM / 30 % strong LLM / 10 % human: ``shares = [0.6, 0.3, 0.1]``), the
    price-blind baseline of :func:`alband.simulate.share_router`; ``shares`` has one entry per ``[routing]``
    annotator, in their order.
    """
    from alband.simulate.mix import share_router

    if shares is None:
        raise AlbandError("router 'shares' needs shares: one non-negative number per annotator")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in shares):
        raise AlbandError(f"router 'shares': shares must be numbers, got {shares!r}")
    return share_router(shares, name="shares")
