"""Routers that do not learn: a fixed annotator, uniform random, and the hindsight oracle.

* :func:`fixed_router` always pays one arm. Where that arm's cell is empty
  the item is skipped (no label); once the arm is available but no longer
  affordable, the stream stops.
* :func:`random_router` pays an arm drawn uniformly among the available ones
  that keep the coverage reserve (:mod:`alband.routing.pacing`),
  falling back to the cheapest affordable arm: the "random with CIs" baseline
  that every router comparison should report (LLMRouterBench's caution).
* :func:`oracle_router` pays, per item, the cheapest arm whose answer is right
  in hindsight, and nothing when no arm is right: it never buys a wrong label,
  so it is the lower cost envelope at full accuracy. Evaluation only: it reads
  the correctness matrix, which no other router sees.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.routing.base import (
    Decision,
    Feedback,
    Router,
    RouterSetup,
    StepContext,
    cheapest,
    one_hot_pay,
    stateless_update,
)
from alband.routing.pacing import init_floor, reserved_choices, update_floor

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
            audit=jnp.bool_(False),
            stop=avail & ~affordable,
        )

    return Router(name or "fixed", init, decide, stateless_update)


def random_router(name: str = "random") -> Router:
    def init(setup: RouterSetup):
        return init_floor()

    def decide(state, ctx: StepContext, key: Array) -> Decision:
        n_arms = ctx.price_usd.shape[0]
        affordable, keeps = reserved_choices(state, ctx)
        u = jax.random.uniform(key, (n_arms,))
        drawn = jnp.where(jnp.any(keeps), jnp.argmax(jnp.where(keeps, u, -1.0)), -1)
        arm = jnp.where(drawn >= 0, drawn, cheapest(ctx.price_usd, affordable)).astype(jnp.int32)
        return Decision(one_hot_pay(arm, n_arms), arm, jnp.bool_(False),
                        stop=~jnp.any(affordable) & jnp.any(ctx.available))

    def update(state, fb: Feedback, key: Array):
        return update_floor(state, fb)

    return Router(name, init, decide, update)


def oracle_router(correct: Array, cost_usd: Array, name: str = "oracle") -> Router:
    """Cheapest arm right in hindsight; ``correct`` and realised ``cost_usd`` are (n, K) in pool order."""
    correct = jnp.asarray(correct)
    cost_usd = jnp.asarray(cost_usd)

    def init(setup: RouterSetup):
        return ()

    def decide(state, ctx: StepContext, key: Array) -> Decision:
        n_arms = ctx.price_usd.shape[0]
        cost = cost_usd[ctx.item]
        right = ctx.available & (correct[ctx.item] > 0.5)
        affordable_right = right & (cost <= ctx.remaining_usd)
        arm = cheapest(cost, affordable_right)
        return Decision(one_hot_pay(arm, n_arms), arm, jnp.bool_(False), stop=jnp.bool_(False))

    return Router(name, init, decide, stateless_update)
