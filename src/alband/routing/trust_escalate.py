"""Trust or escalate: the cheap annotator keeps an item when its confidence clears a certified threshold.

The rule of :mod:`alband.routing.escalation` (Jung et al., ICLR 2025;
CoAnnotating, Li et al. 2023) as a router over a ``chain`` of annotators,
cheapest first and the strongest last. Item ``x`` is kept by the first cheap
stage ``s`` whose confidence ``c_s(x) >= lambda_s``; with none, it goes to the
strongest annotator. The thresholds ``lambda_s`` are certified by
fixed-sequence testing on the router's audited sample so that, with
probability at least ``1 - delta``, the kept labels agree with the strongest
annotator at rate at least ``1 - alpha``. Until a threshold is certified
every item is escalated (abstention).

Where the confidence comes from. A router decides which annotators to pay
*before* any of them answers (:mod:`alband.routing.base`), so the cheap
annotator's confidence must be known when the item is routed. It is read from
the item's features: ``confidence_features[s]`` is the column of ``x`` that
holds stage ``s``'s confidence for the item (by default the last ``S``
columns). The columns carry a recorded confidence: the probability of the
emitted label from token logprobs (an :class:`~alband.annotation.Annotation`'s
``confidence``), the agreement of the cheap annotator's answers over prompt
variants, or, in a simulated world, a simulated annotator's confidence. This
keeps the router signature, the replay engine, the simulator and the live
loop unchanged; the confidence is a fixed function of the item, as the
guarantee requires (it is not fitted on the audited sample).

The audited sample. Each item is audited with probability ``audit_rate``,
independently of its confidence: every stage of the chain is paid, so every
cheap stage's agreement with the strongest is observed (with ``auditor = -1``
against gold). The first ``calibration_size`` audits are the calibration set;
audited items are a uniform sample of the stream, hence exchangeable with the
items routed after them. Thresholds are re-certified after each audit, which
makes the ``1 - delta`` statement hold at any item count fixed in advance (not
uniformly over the stream). Only audits are counted: an item a stage keeps or
escalates is never audited by that choice, which would bias the sample.

An item is bought only when its arms fit the dollars left; the audit only when
it fits too. A stage that cannot be afforded is skipped (the next is tried);
when none fits, the stream stops.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alband.errors import AlbandError
from alband.routing.base import Decision, Feedback, Router, RouterSetup, StepContext
from alband.routing.escalation import calibrate_cascade_jax, default_grid
from alband.routing.registry import ARMS, NUMBER, at_least, distinct_arms, finite_in, register_router

Array = jax.Array


class EscalationConfig(NamedTuple):
    alpha: float = 0.1  # largest disagreement of kept labels with the strongest annotator
    delta: float = 0.1  # largest chance that the guarantee fails (over the audited sample)
    audit_rate: float = 0.1  # probability that an item is audited by the whole chain
    grid_size: int = 100  # thresholds 1 - 1/size, ..., 0 (strict to lenient)
    calibration_size: int = 512  # audits kept as the calibration sample


class EscalationState(NamedTuple):
    confidence: Array  # (M, S) audited items' confidences per cheap stage
    agree: Array  # (M, S) bool their agreement with the strongest annotator
    filled: Array  # () int32 audits stored
    thresholds: Array  # (S,) certified thresholds (inf: the stage keeps nothing)
    free_feedback: Array  # () bool no auditor arm: an audit's arms are paid as part of the purchase


def trust_escalate_router(chain: Sequence[int], confidence_features: Sequence[int] | None = None,
                          config: EscalationConfig = EscalationConfig(), name: str = "trust_escalate") -> Router:
    """The router over ``chain`` (cheap stages first, the strongest last); module docstring."""
    chain = tuple(int(k) for k in chain)
    if len(chain) < 2:
        raise AlbandError(f"chain needs a cheap annotator and a stronger one, got {list(chain)}")
    stages = len(chain) - 1
    cols = None if confidence_features is None else tuple(int(c) for c in confidence_features)
    if cols is not None and len(cols) != stages:
        raise AlbandError(f"confidence_features needs one column per cheap stage ({stages}), got {list(cols)}")
    chain_arr = jnp.asarray(chain, jnp.int32)
    grid = jnp.asarray(default_grid(config.grid_size), jnp.float32)
    size = config.calibration_size

    def confidence_of(x: Array) -> Array:
        d = x.shape[0]
        idx = np.arange(d - stages, d) if cols is None else np.asarray(cols)
        if idx.min() < -d or idx.max() >= d:
            raise AlbandError(f"confidence_features {list(idx)} are outside the {d} feature columns")
        return x[jnp.asarray(idx)]

    def init(setup: RouterSetup) -> EscalationState:
        return EscalationState(
            confidence=jnp.zeros((size, stages), jnp.float32),
            agree=jnp.zeros((size, stages), bool),
            filled=jnp.int32(0),
            thresholds=jnp.full((stages,), jnp.inf, jnp.float32),
            free_feedback=jnp.bool_(setup.auditor < 0),
        )

    def decide(state: EscalationState, ctx: StepContext, key: Array) -> Decision:
        K = ctx.price_usd.shape[0]
        conf = confidence_of(ctx.x)
        price = ctx.price_usd[chain_arr]
        avail = ctx.available[chain_arr]
        fits = avail & (price <= ctx.remaining_usd)
        keeps = jnp.concatenate([conf >= state.thresholds, jnp.ones((1,), bool)]) & fits
        # The kept stage; when the wanted stage cannot be afforded, the next affordable one.
        stage = jnp.argmax(keeps)
        any_stage = jnp.any(keeps)
        label = jnp.where(any_stage, chain_arr[stage], jnp.int32(-1))
        pay = (jnp.arange(K) == label) & any_stage
        whole = jnp.zeros((K,), bool).at[chain_arr].set(avail)
        audit_price = jnp.sum(jnp.where(whole, ctx.price_usd, 0.0))
        audited = (jax.random.uniform(key) < config.audit_rate) & jnp.all(avail) & (audit_price <= ctx.remaining_usd)
        audit_pay = whole & ~pay & audited & any_stage
        # With free feedback there is no audit step: the audit's arms are bought with the label.
        pay = pay | (audit_pay & state.free_feedback)
        audit_pay = audit_pay & ~state.free_feedback
        stop = ~any_stage & jnp.any(avail)
        return Decision(pay, label, audit_pay, stop)

    def update(state: EscalationState, fb: Feedback, key: Array) -> EscalationState:
        cheap = chain_arr[:-1]
        audited = jnp.all(fb.paid[chain_arr]) & jnp.all(fb.observed[cheap])
        store = audited & (state.filled < size)
        row = jnp.minimum(state.filled, size - 1)
        conf = confidence_of(fb.x)
        confidence = state.confidence.at[row].set(jnp.where(store, conf, state.confidence[row]))
        agree = state.agree.at[row].set(jnp.where(store, fb.verdict[cheap] > 0.5, state.agree[row]))
        filled = state.filled + store.astype(jnp.int32)
        weight = (jnp.arange(size) < filled).astype(jnp.float32)
        thresholds = calibrate_cascade_jax(confidence, agree, weight, grid, config.alpha, config.delta)
        return state._replace(confidence=confidence, agree=agree, filled=filled,
                              thresholds=thresholds.astype(jnp.float32))

    return Router(name, init, decide, update)


_DEFAULTS = EscalationConfig()


@register_router("trust_escalate", learns=True, parameters={
    "chain": ARMS, "confidence_features": (list, tuple), "alpha": NUMBER, "delta": NUMBER,
    "audit_rate": NUMBER, "grid_size": int, "calibration_size": int})
def make_trust_escalate(chain: Sequence[int], confidence_features: Sequence[int] | None = None,
                        alpha: float = _DEFAULTS.alpha, delta: float = _DEFAULTS.delta,
                        audit_rate: float = _DEFAULTS.audit_rate, grid_size: int = _DEFAULTS.grid_size,
                        calibration_size: int = _DEFAULTS.calibration_size) -> Router:
    """``trust_escalate`` over ``chain`` (cheap first, strongest last); confidences in ``confidence_features``."""
    if confidence_features is not None and not all(isinstance(c, int) and not isinstance(c, bool)
                                                   for c in confidence_features):
        raise AlbandError(f"confidence_features must be feature column indices (ints), got {confidence_features!r}")
    alpha = finite_in("alpha", alpha, 0.0, 1.0)
    delta = finite_in("delta", delta, 0.0, 1.0)
    if alpha in (0.0, 1.0) or delta in (0.0, 1.0):
        raise AlbandError(f"alpha and delta must be strictly between 0 and 1, got {alpha} and {delta}")
    config = EscalationConfig(alpha=alpha, delta=delta, audit_rate=finite_in("audit_rate", audit_rate, 0.0, 1.0),
                              grid_size=at_least("grid_size", grid_size, 1),
                              calibration_size=at_least("calibration_size", calibration_size, 1))
    return trust_escalate_router(distinct_arms("chain", chain), confidence_features, config)
