"""Cascade router (FrugalGPT-style): ask the cheap annotator first, escalate when unsure.

FrugalGPT (Chen, Zaharia and Zou 2023) queries a chain of LLMs in order and
stops at the first answer whose scorer confidence clears the stage's
threshold. There are no log-probabilities in a replayed outcome matrix, so here
the confidence of stage ``j``'s answer on item ``x`` is a **learned
correctness predictor over item features**: the posterior mean ``p_j(x)`` of
the arm's Bayesian linear correctness model (:mod:`alband.routing.posterior`),
fitted online to audit verdicts. (Agreement between answers is not used: the
RouteLLM MMLU matrix stores correctness but not the answers.)

Thresholds are learned online to reach a target label accuracy. For each arm
the router keeps a histogram over ``n_bins`` confidence bins of audited
outcomes (how many answers fell in the bin, how many were right). The
threshold of the arm is the lowest bin edge ``t`` such that, among audited
answers with confidence ``>= t``, the share right is at least ``target``
(with at least ``min_count`` of them); with no such edge the arm's answers are
never accepted and the item is escalated. This is the largest acceptance
region whose audited accuracy meets the target, re-estimated after every
audit.

Feedback comes for free whenever the cascade escalates to the auditor (the
last stage: its answer is truth for every earlier stage paid on the item), and
from random audits (:mod:`alband.routing.audit`), which correct the selection
bias of escalations. Escalation past the first stage must keep the coverage
reserve and the even pace (:mod:`alband.routing.pacing`), so a small budget
still labels the whole stream with the first stage and spreads its
escalations over the stream instead of spending them on the first items.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.routing.audit import AuditConfig, audit_cost, draw_audit
from alband.routing.base import Decision, Feedback, Router, RouterSetup, StepContext
from alband.routing.pacing import (
    FloorState,
    coverage_reserve_ok,
    floor_estimate_with,
    init_floor,
    on_pace,
    update_floor_with,
)
from alband.routing.posterior import (
    LinearPosterior,
    PosteriorConfig,
    init_posterior,
    observe,
    predict,
)
from alband.routing.registry import ARMS, AUDIT_PARAMETERS, NUMBER, at_least, audit_config, distinct_arms, register_router

Array = jax.Array


class CascadeConfig(NamedTuple):
    target: float = 0.95  # accuracy (agreement with the auditor) required of accepted answers
    n_bins: int = 20
    min_count: int = 20
    audit: AuditConfig = AuditConfig()
    posterior: PosteriorConfig = PosteriorConfig()


class CascadeState(NamedTuple):
    posterior: LinearPosterior
    hits: Array  # (K, n_bins) audited answers judged right, per confidence bin
    counts: Array  # (K, n_bins) audited answers, per confidence bin
    floor: FloorState
    auditor: Array  # () int32
    budget_usd: Array  # ()
    n_items: Array  # () int32


def acceptance_threshold(hits: Array, counts: Array, target: float, min_count: int) -> Array:
    """Lowest bin edge whose upper tail has audited accuracy >= target; 2.0 (never) if none.

    ``hits`` and ``counts`` have shape (..., n_bins); returns shape (...).
    """
    n_bins = hits.shape[-1]
    tail_hits = jnp.flip(jnp.cumsum(jnp.flip(hits, -1), -1), -1)
    tail_counts = jnp.flip(jnp.cumsum(jnp.flip(counts, -1), -1), -1)
    ok = (tail_hits >= target * tail_counts) & (tail_counts >= min_count)
    edges = jnp.arange(n_bins, dtype=jnp.float32) / n_bins
    return jnp.min(jnp.where(ok, edges, 2.0), axis=-1)


def _bin(p: Array, n_bins: int) -> Array:
    return jnp.clip(jnp.floor(p * n_bins), 0, n_bins - 1).astype(jnp.int32)


def cascade_router(chain: Sequence[int], config: CascadeConfig = CascadeConfig(),
                   name: str = "cascade") -> Router:
    """A cascade over ``chain`` (arm indices, cheapest first; typically ending with the auditor)."""
    chain = tuple(int(k) for k in chain)
    if not chain:
        raise ValueError("a cascade needs at least one stage")
    chain_arr = jnp.asarray(chain, jnp.int32)
    scored = chain[:-1]  # the last stage is always accepted: nothing to escalate to
    scored_arr = jnp.asarray(scored, jnp.int32)
    audit_config = config.audit._replace(panel_share=0.0)  # only the chain's arms are learned

    def first_stage_price(cost_usd: Array, available: Array) -> tuple[Array, Array]:
        """Price of the first available stage of the chain (the least the cascade pays)."""
        avail = available[chain_arr]
        first = jnp.argmax(avail)
        return cost_usd[chain_arr[first]], jnp.any(avail)

    def init(setup: RouterSetup) -> CascadeState:
        K = setup.n_arms
        return CascadeState(
            posterior=init_posterior(K, setup.dim, config.posterior),
            hits=jnp.zeros((K, config.n_bins), jnp.float32),
            counts=jnp.zeros((K, config.n_bins), jnp.float32),
            floor=init_floor(),
            auditor=jnp.int32(setup.auditor),
            budget_usd=jnp.asarray(setup.budget_usd, jnp.float32),
            n_items=jnp.asarray(setup.n_items, jnp.int32),
        )

    def confidences(state: CascadeState, x: Array) -> Array:
        """Posterior-mean correctness per arm (computed for the stages that can escalate)."""
        post = state.posterior
        K = post.inv_chol.shape[0]
        if not scored:
            return jnp.zeros((K,), jnp.float32)
        sub = jax.tree_util.tree_map(lambda a: a[scored_arr], post)
        mean, _ = predict(sub, x, config.posterior)
        return jnp.zeros((K,), jnp.float32).at[scored_arr].set(jnp.clip(mean, 0.0, 1.0))

    def decide(state: CascadeState, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        conf = confidences(state, ctx.x)
        tau = acceptance_threshold(state.hits, state.counts, config.target, config.min_count)
        floor = floor_estimate_with(state.floor, *first_stage_price(ctx.price_usd, ctx.available))
        pay = jnp.zeros((K,), bool)
        spent = jnp.float32(0.0)
        label = jnp.int32(-1)
        settled = jnp.bool_(False)
        for k in chain:  # static unroll over the (short) chain
            c = ctx.price_usd[k]
            affordable = spent + c <= ctx.remaining_usd
            first = label < 0
            reserve = coverage_reserve_ok(ctx.remaining_usd, spent + c, ctx.items_left, floor)
            paced = on_pace(state.budget_usd, state.n_items, ctx.remaining_usd, ctx.items_left, spent + c)
            take = ctx.available[k] & ~settled & affordable & (first | (reserve & paced))
            pay = pay.at[k].set(pay[k] | take)
            spent = spent + jnp.where(take, c, 0.0)
            label = jnp.where(take, jnp.int32(k), label)
            accepted = (conf[k] >= tau[k]) | (state.auditor == k) | (k == chain[-1])
            settled = settled | (take & accepted)
        chain_available = jnp.any(ctx.available[chain_arr])
        stop = (label < 0) & chain_available
        extra = spent + audit_cost(ctx, state.auditor, pay, audit_config, key)
        audit_fits = coverage_reserve_ok(ctx.remaining_usd, extra, ctx.items_left, floor)
        audit_pay = draw_audit(ctx, state.auditor, pay, label, audit_config, key, audit_fits)
        return Decision(pay, label, audit_pay, stop)

    def update(state: CascadeState, fb: Feedback, key: Array) -> CascadeState:
        conf = confidences(state, fb.x)  # the confidences the decision used
        post, hits, counts = state.posterior, state.hits, state.counts
        for k in scored:
            learn = fb.observed[k] & (state.auditor != k)
            w = learn.astype(jnp.float32)
            post = observe(post, jnp.int32(k), fb.x, fb.verdict[k], w, config.posterior)
            b = _bin(conf[k], config.n_bins)
            hits = hits.at[k, b].add(w * fb.verdict[k])
            counts = counts.at[k, b].add(w)
        floor = update_floor_with(state.floor, *first_stage_price(fb.price_usd, fb.available))
        return state._replace(posterior=post, hits=hits, counts=counts, floor=floor)

    return Router(name, init, decide, update)


_DEFAULTS = CascadeConfig()


@register_router("cascade", learns=True, parameters={
    "chain": ARMS, "target": NUMBER, "n_bins": int, "min_count": int, **AUDIT_PARAMETERS})
def make_cascade(chain: Sequence[int], target: float = _DEFAULTS.target,
                 n_bins: int = _DEFAULTS.n_bins,
                 min_count: int = _DEFAULTS.min_count, **audit) -> Router:
    """``cascade`` over ``chain`` (arms, cheapest first); ``audit`` holds the audit parameters."""
    if not 0 < target <= 1:
        raise AlbandError(f"target must be in (0, 1], got {target}")
    config = CascadeConfig(target=float(target), n_bins=at_least("n_bins", n_bins, 1),
                           min_count=at_least("min_count", min_count, 0), audit=audit_config(**audit))
    return cascade_router(distinct_arms("chain", chain), config)
