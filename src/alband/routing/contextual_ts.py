"""Contextual cost-aware Thompson sampling over annotators, paced by a dual price.

For each item ``x`` the router draws, for every arm ``k``, a Thompson sample
of its probability of being right, ``p~_k(x) = clip(m0 + x' theta~_k, 0, 1)``
with ``theta~_k`` from the arm's Bayesian linear correctness model
(:mod:`alband.routing.posterior`; Cholesky sampling, rank-1 updates), and pays
the arm maximising the Lagrangian reward of a bandit with a knapsack::

    k* = argmax_k  p~_k(x) - lambda * c_k(x) / c_scale

over the arms available for the item that are affordable and keep the
coverage reserve (falling back to the cheapest affordable arm). The auditor is
taken as truth: its ``p~`` is 1. The price ``lambda`` follows the primal-dual
step of :mod:`alband.routing.pacing` (Agrawal and Devanur 2014), so spending
above the pace raises it and the budget is spent evenly over the stream.

Learning. A fraction of items is audited (:mod:`alband.routing.audit`): the
auditor is also paid (unless chosen), its answer becomes the label, and a
small panel of cheap arms is paid along; every paid arm's posterior gets its
verdict (1 if its answer agrees with the auditor's) by a rank-1 update. Only
audited items teach the model.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.routing.audit import AuditConfig, audit_cost, draw_audit
from alband.routing.base import (
    Decision,
    Feedback,
    Router,
    RouterSetup,
    StepContext,
    cheapest,
    masked_argmax,
    one_hot_pay,
)
from alband.routing.pacing import (
    DualPrice,
    FloorState,
    coverage_reserve_ok,
    dual_penalty,
    floor_estimate,
    init_dual,
    init_floor,
    reserved_choices,
    update_dual,
    update_floor,
)
from alband.routing.posterior import (
    LinearPosterior,
    PosteriorConfig,
    init_posterior,
    observe,
    sample_predictions,
)
from alband.routing.registry import AUDIT_PARAMETERS, NUMBER, audit_config, finite_in, finite_positive, register_router

Array = jax.Array


class ContextualTSConfig(NamedTuple):
    exploration: float = 1.0  # posterior spread multiplier (1 = exact Thompson sampling)
    dual_kappa: float = 20.0  # see alband.routing.pacing
    lambda0: float = 0.0
    audit: AuditConfig = AuditConfig()
    posterior: PosteriorConfig = PosteriorConfig()


class ContextualTSState(NamedTuple):
    posterior: LinearPosterior
    dual: DualPrice
    floor: FloorState
    auditor: Array  # () int32


def contextual_ts_router(config: ContextualTSConfig = ContextualTSConfig(),
                         name: str = "contextual_ts") -> Router:
    def init(setup: RouterSetup) -> ContextualTSState:
        return ContextualTSState(
            posterior=init_posterior(setup.n_arms, setup.dim, config.posterior),
            dual=init_dual(setup, config.dual_kappa, config.lambda0),
            floor=init_floor(),
            auditor=jnp.int32(setup.auditor),
        )

    def decide(state: ContextualTSState, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        k_sample, k_audit = jax.random.split(key)
        p = jnp.clip(sample_predictions(state.posterior, ctx.x, k_sample, config.exploration,
                                        config.posterior), 0.0, 1.0)
        p = jnp.where(jnp.arange(K) == state.auditor, 1.0, p)
        score = p - dual_penalty(state.dual, ctx.price_usd)
        affordable, keeps = reserved_choices(state.floor, ctx)
        best = masked_argmax(score, keeps)
        fallback = cheapest(ctx.price_usd, affordable, score)  # the reserve binds: cheapest price level
        arm = jnp.where(best >= 0, best, fallback).astype(jnp.int32)
        pay = one_hot_pay(arm, K)
        total = ctx.price_usd[jnp.maximum(arm, 0)] + audit_cost(ctx, state.auditor, pay, config.audit,
                                                                k_audit)
        audit_fits = coverage_reserve_ok(ctx.remaining_usd, total, ctx.items_left,
                                         floor_estimate(state.floor, ctx))
        audit_pay = draw_audit(ctx, state.auditor, pay, arm, config.audit, k_audit, audit_fits)
        return Decision(pay, arm, audit_pay, stop=~jnp.any(affordable) & jnp.any(ctx.available))

    def update(state: ContextualTSState, fb: Feedback, key: Array) -> ContextualTSState:
        K = fb.paid.shape[0]
        learnable = fb.observed & (jnp.arange(K) != state.auditor)
        # at most the chosen arm and the audit panel are observed: update those slots only
        slots = min(K, 1 + max(int(config.audit.panel_size), 0))
        arms = jax.lax.top_k(learnable.astype(jnp.float32), slots)[1]
        post = state.posterior
        for j in range(slots):
            arm = arms[j]
            post = observe(post, arm, fb.x, fb.verdict[arm], learnable[arm].astype(jnp.float32),
                           config.posterior)
        return ContextualTSState(post, update_dual(state.dual, fb), update_floor(state.floor, fb),
                                 state.auditor)

    return Router(name, init, decide, update)


_DEFAULTS = ContextualTSConfig()


@register_router("contextual_ts", learns=True, parameters={
    "exploration": NUMBER, "dual_kappa": NUMBER, "lambda0": NUMBER, **AUDIT_PARAMETERS})
def make_contextual_ts(exploration: float = _DEFAULTS.exploration,
                       dual_kappa: float = _DEFAULTS.dual_kappa,
                       lambda0: float = _DEFAULTS.lambda0, **audit) -> Router:
    """``contextual_ts``: contextual cost-aware Thompson sampling; ``audit`` holds the audit parameters."""
    return contextual_ts_router(ContextualTSConfig(
        exploration=finite_in("exploration", exploration, 0.0),
        dual_kappa=finite_positive("dual_kappa", dual_kappa),
        lambda0=finite_in("lambda0", lambda0, 0.0),
        audit=audit_config(**audit),
    ))
