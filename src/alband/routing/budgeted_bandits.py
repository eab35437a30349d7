"""Budgeted bandits without context: budgeted Thompson sampling (BTS) and UCB-BV.

Both maximise the total reward (here: correct labels) before the budget runs
out, so both converge to the arm with the best ratio of expected reward to
expected cost; neither paces its spending. Rewards are audit verdicts (the
auditor is taken as truth, its reward is 1); costs are normalised to [0, 1] by
``cost_max``, the largest single price of the matrix.

BTS (Xia, Li, Qin, Yu and Liu 2015, "Thompson sampling for budgeted
multi-armed bandits"): Beta(1, 1) priors on each arm's reward and cost
probabilities; pick ``argmax_k r~_k / c~_k`` with ``r~_k ~ Beta(a_k, b_k)``,
``c~_k ~ Beta(a'_k, b'_k)``. Continuous outcomes in [0, 1] enter through a
Bernoulli trial (observe ``z ~ Bernoulli(c / cost_max)``, then update the Beta
with ``z``), the paper's extension to general distributions. The cost
posterior is updated on every payment, the reward posterior on every audit.
Beta draws use the loop-free sampler of :mod:`alband.routing.sampling`.

UCB-BV (Ding, Qin, Zhang and Liu 2013, "Multi-armed bandit with budget
constraint and variable costs"): pick ``argmax_k D_k`` with::

    D_k = rbar_k / cbar_k + (1 + 1/l) e_k / (l - e_k),   e_k = sqrt(ln(t - 1) / n_k)

and ``D_k = +inf`` while ``e_k >= l`` or the arm is untried, ties among
infinite indices going to the arm with the fewest observations. ``l`` is the
lower bound on expected costs; here it is estimated as the smallest empirical
mean cost (the paper's UCB-BV2 variant), ``n_k`` counts the arm's reward
observations (audits; the auditor counts every payment) and ``t`` all of them.
When prices span orders of magnitude ``l`` is tiny and the index stays infinite
for a long time: UCB-BV then explores round-robin, as its bound says it must.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.routing.audit import AuditConfig, draw_audit
from alband.routing.sampling import beta_ge1
from alband.routing.base import (
    Decision,
    Feedback,
    Router,
    RouterSetup,
    StepContext,
    masked_argmax,
    one_hot_pay,
)

Array = jax.Array


class BTSState(NamedTuple):
    reward_a: Array  # (K,)
    reward_b: Array
    cost_a: Array
    cost_b: Array
    cost_max: Array  # ()
    auditor: Array  # () int32


def bts_router(audit_config: AuditConfig = AuditConfig(), name: str = "bts") -> Router:
    def init(setup: RouterSetup) -> BTSState:
        ones = jnp.ones((setup.n_arms,), jnp.float32)
        return BTSState(ones, ones, ones, ones,
                        jnp.maximum(jnp.asarray(setup.cost_max, jnp.float32), 1e-30),
                        jnp.int32(setup.auditor))

    def decide(state: BTSState, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        k_r, k_c, k_audit = jax.random.split(key, 3)
        r = beta_ge1(k_r, state.reward_a, state.reward_b)
        r = jnp.where(jnp.arange(K) == state.auditor, 1.0, r)
        c = beta_ge1(k_c, state.cost_a, state.cost_b)
        ratio = r / jnp.maximum(c, 1e-12)
        affordable = ctx.available & (ctx.price_usd <= ctx.remaining_usd)
        arm = masked_argmax(ratio, affordable)
        pay = one_hot_pay(arm, K)
        audit = draw_audit(ctx, state.auditor, pay, arm, audit_config, k_audit)
        return Decision(pay, arm, audit, stop=(arm < 0) & jnp.any(ctx.available))

    def update(state: BTSState, fb: Feedback, key: Array) -> BTSState:
        K = fb.paid.shape[0]
        learn = (fb.observed & (jnp.arange(K) != state.auditor)).astype(jnp.float32)
        v = fb.verdict
        z = (jax.random.uniform(key, (K,)) < fb.cost_usd / state.cost_max).astype(jnp.float32)
        paid = fb.paid.astype(jnp.float32)
        return state._replace(
            reward_a=state.reward_a + learn * v,
            reward_b=state.reward_b + learn * (1.0 - v),
            cost_a=state.cost_a + paid * z,
            cost_b=state.cost_b + paid * (1.0 - z),
        )

    return Router(name, init, decide, update)


class UCBBVState(NamedTuple):
    reward_sum: Array  # (K,)
    reward_n: Array  # (K,) reward observations
    cost_sum: Array  # (K,) normalised cost paid
    pulls: Array  # (K,) payments
    cost_max: Array
    auditor: Array


def ucb_bv_index(reward_sum: Array, reward_n: Array, cost_sum: Array, pulls: Array) -> Array:
    """UCB-BV2 index ``D_k`` of the module docstring (``+inf`` while unbounded)."""
    rbar = reward_sum / jnp.maximum(reward_n, 1.0)
    cbar = cost_sum / jnp.maximum(pulls, 1.0)
    tried = pulls > 0
    lam = jnp.min(jnp.where(tried, cbar, jnp.inf))
    lam = jnp.where(jnp.isfinite(lam), lam, 1.0)
    t = jnp.sum(reward_n)
    eps = jnp.sqrt(jnp.log(jnp.maximum(t - 1.0, 1.0)) / jnp.maximum(reward_n, 1.0))
    bonus = (1.0 + 1.0 / jnp.maximum(lam, 1e-12)) * eps / (lam - eps)
    finite = tried & (reward_n > 0) & (eps < lam)
    return jnp.where(finite, rbar / jnp.maximum(cbar, 1e-12) + bonus, jnp.inf)


def ucb_bv_router(audit_config: AuditConfig = AuditConfig(), name: str = "ucb-bv") -> Router:
    def init(setup: RouterSetup) -> UCBBVState:
        zeros = jnp.zeros((setup.n_arms,), jnp.float32)
        return UCBBVState(zeros, zeros, zeros, zeros,
                          jnp.maximum(jnp.asarray(setup.cost_max, jnp.float32), 1e-30),
                          jnp.int32(setup.auditor))

    def decide(state: UCBBVState, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        d = ucb_bv_index(state.reward_sum, state.reward_n, state.cost_sum, state.pulls)
        affordable = ctx.available & (ctx.price_usd <= ctx.remaining_usd)
        infinite = affordable & jnp.isinf(d)
        # among unbounded arms: fewest observations first, then fewest payments
        explore = masked_argmax(-(state.reward_n * 1e6 + state.pulls), infinite)
        arm = jnp.where(explore >= 0, explore, masked_argmax(d, affordable)).astype(jnp.int32)
        pay = one_hot_pay(arm, K)
        audit = draw_audit(ctx, state.auditor, pay, arm, audit_config, key)
        return Decision(pay, arm, audit, stop=(arm < 0) & jnp.any(ctx.available))

    def update(state: UCBBVState, fb: Feedback, key: Array) -> UCBBVState:
        K = fb.paid.shape[0]
        is_aud = jnp.arange(K) == state.auditor
        paid = fb.paid.astype(jnp.float32)
        # the auditor's reward is known (1) on every payment; other arms learn on audits
        learn = jnp.where(is_aud, paid, (fb.observed & ~is_aud).astype(jnp.float32))
        reward = jnp.where(is_aud, 1.0, fb.verdict)
        return state._replace(
            reward_sum=state.reward_sum + learn * reward,
            reward_n=state.reward_n + learn,
            cost_sum=state.cost_sum + paid * fb.cost_usd / state.cost_max,
            pulls=state.pulls + paid,
        )

    return Router(name, init, decide, update)
