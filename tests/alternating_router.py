"""A router defined outside ``src/``: pay arm ``item mod K`` (the extension-point test's router).

Every item is labelled by one arm chosen from its pool index; the router
counts what it paid (its state) and stops once the quote of its arm no longer
fits the dollars left.
"""

from __future__ import annotations

import jax.numpy as jnp

from alband.routing.base import Decision, Feedback, Router, RouterSetup, StepContext, no_audit, one_hot_pay


def alternating_router() -> Router:
    def init(setup: RouterSetup):
        return jnp.zeros((setup.n_arms,), jnp.int32)

    def decide(state, ctx: StepContext, key) -> Decision:
        n_arms = ctx.price_usd.shape[0]
        arm = (ctx.item % n_arms).astype(jnp.int32)
        fits = ctx.price_usd[arm] <= ctx.remaining_usd
        chosen = jnp.where(fits, arm, -1).astype(jnp.int32)
        return Decision(pay=one_hot_pay(chosen, n_arms), label_arm=chosen, audit_pay=no_audit(n_arms), stop=~fits)

    def update(state, feedback: Feedback, key):
        return state + feedback.paid.astype(jnp.int32)

    return Router("alternating", init, decide, update)
