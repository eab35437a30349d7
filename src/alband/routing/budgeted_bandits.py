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

Both keep the same per-arm counts (:class:`ArmCounts`): the sum and number of
reward observations and the sum and number of cost observations (payments),
costs in [0, 1]. BTS's Beta posteriors are read off them, ``Beta(1 + sum,
1 + n - sum)``; its cost observations are the Bernoulli trials ``z``, UCB-BV's
the normalised costs themselves.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.routing.audit import AuditConfig, draw_audit
from alband.routing.base import (
    Decision,
    Feedback,
    Router,
    RouterSetup,
    StepContext,
    masked_argmax,
    one_hot_pay,
)
from alband.routing.registry import AUDIT_PARAMETERS, audit_config, register_router
from alband.routing.sampling import beta_ge1

Array = jax.Array


class ArmCounts(NamedTuple):
    """Per-arm observation counts: the state of both routers (module docstring)."""

    reward_sum: Array  # (K,) sum of reward observations (audit verdicts; the auditor's reward is 1)
    reward_n: Array  # (K,) reward observations
    cost_sum: Array  # (K,) sum of cost observations in [0, 1]
    pulls: Array  # (K,) payments (one cost observation each)
    cost_max: Array  # () dollars that normalise a cost to [0, 1]
    auditor: Array  # () int32


def init_counts(setup: RouterSetup) -> ArmCounts:
    """No observations yet."""
    zeros = jnp.zeros((setup.n_arms,), jnp.float32)
    return ArmCounts(zeros, zeros, zeros, zeros,
                     jnp.maximum(jnp.asarray(setup.cost_max, jnp.float32), 1e-30),
                     jnp.int32(setup.auditor))


def record(counts: ArmCounts, fb: Feedback, cost_observation: Array) -> ArmCounts:
    """``counts`` after one item: a reward for every arm whose verdict was observed, a cost for every arm paid.

    The auditor is taken as truth: its reward (1) is known on every payment.
    ``cost_observation`` (K,) is in [0, 1] and is counted where ``fb.paid``.
    """
    K = fb.paid.shape[0]
    is_aud = jnp.arange(K) == counts.auditor
    paid = fb.paid.astype(jnp.float32)
    learn = jnp.where(is_aud, paid, (fb.observed & ~is_aud).astype(jnp.float32))
    reward = jnp.where(is_aud, 1.0, fb.verdict)
    return counts._replace(
        reward_sum=counts.reward_sum + learn * reward,
        reward_n=counts.reward_n + learn,
        cost_sum=counts.cost_sum + paid * cost_observation,
        pulls=counts.pulls + paid,
    )


def _affordable(ctx: StepContext) -> Array:
    return ctx.available & (ctx.price_usd <= ctx.remaining_usd)


def _pay_one(ctx: StepContext, auditor: Array, arm: Array, audit_config: AuditConfig, key: Array) -> Decision:
    """Pay ``arm`` for the label (none when ``arm < 0``: stop if an arm was available), maybe audit."""
    pay = one_hot_pay(arm, ctx.price_usd.shape[0])
    audit = draw_audit(ctx, auditor, pay, arm, audit_config, key)
    return Decision(pay, arm, audit, stop=(arm < 0) & jnp.any(ctx.available))


def bts_router(audit_config: AuditConfig = AuditConfig(), name: str = "bts") -> Router:
    def decide(state: ArmCounts, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        k_r, k_c, k_audit = jax.random.split(key, 3)
        r = beta_ge1(k_r, 1.0 + state.reward_sum, 1.0 + state.reward_n - state.reward_sum)
        r = jnp.where(jnp.arange(K) == state.auditor, 1.0, r)
        c = beta_ge1(k_c, 1.0 + state.cost_sum, 1.0 + state.pulls - state.cost_sum)
        arm = masked_argmax(r / jnp.maximum(c, 1e-12), _affordable(ctx))
        return _pay_one(ctx, state.auditor, arm, audit_config, k_audit)

    def update(state: ArmCounts, fb: Feedback, key: Array) -> ArmCounts:
        # a cost in [0, 1] enters the Beta posterior as a Bernoulli trial with that probability
        z = (jax.random.uniform(key, fb.paid.shape) < fb.cost_usd / state.cost_max).astype(jnp.float32)
        return record(state, fb, z)

    return Router(name, init_counts, decide, update)


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


def ucb_bv_router(audit_config: AuditConfig = AuditConfig(), name: str = "ucb_bv") -> Router:
    def decide(state: ArmCounts, ctx: StepContext, key: Array) -> Decision:
        d = ucb_bv_index(state.reward_sum, state.reward_n, state.cost_sum, state.pulls)
        affordable = _affordable(ctx)
        infinite = affordable & jnp.isinf(d)
        # among unbounded arms: fewest observations first, then fewest payments
        explore = masked_argmax(-(state.reward_n * 1e6 + state.pulls), infinite)
        arm = jnp.where(explore >= 0, explore, masked_argmax(d, affordable)).astype(jnp.int32)
        return _pay_one(ctx, state.auditor, arm, audit_config, key)

    def update(state: ArmCounts, fb: Feedback, key: Array) -> ArmCounts:
        return record(state, fb, fb.cost_usd / state.cost_max)

    return Router(name, init_counts, decide, update)


@register_router("bts", parameters=AUDIT_PARAMETERS, learns=True)
def make_bts(**audit) -> Router:
    """``bts``: budgeted Thompson sampling; ``audit`` holds the audit parameters (:data:`AUDIT_PARAMETERS`)."""
    return bts_router(audit_config(**audit))


@register_router("ucb_bv", parameters=AUDIT_PARAMETERS, learns=True)
def make_ucb_bv(**audit) -> Router:
    """``ucb_bv``: UCB-BV2; ``audit`` holds the audit parameters (:data:`AUDIT_PARAMETERS`)."""
    return ucb_bv_router(audit_config(**audit))
