"""Uncertainty sampling from the learner's predictive distribution ``p`` (Lewis and Gale 1994).

* least confidence: ``1 - max_c p_c``
* margin: ``-(p_(1) - p_(2))`` (smallest gap between the two most probable classes first;
  Scheffer et al. 2001). The runner-up is found by masking the maximum and taking the
  maximum again, which is faster than ``lax.top_k(p, 2)`` on wide pools.
* entropy: ``-sum_c p_c log p_c`` (Settles 2009, section 3.1)

Each is one vectorised pass over the ``(N, C)`` probabilities. On large pools
(:func:`alband.kernels.uses_native_kernel`) the policies compute them instead
from the pool and the learner's parameters in one fused native pass
(:func:`alband.kernels.pool_uncertainty`: logits, softmax and score per row,
each row of ``X`` read once), which agrees with the probability form to float32
rounding. They do so when the learner's probabilities are a softmax of a
linear map, ``ctx.probs == softmax(x W + b)`` with ``(W, b) = ctx.head``
(:func:`alband.models.base.linear_head`, filled by
:func:`alband.rounds.round_context`); any other learner is scored from ``probs``.
"""

from __future__ import annotations

import jax

from alband.kernels import pool_uncertainty, uses_native_kernel, xla_uncertainty
from alband.policies.base import QueryPolicy, RoundContext, score_policy
from alband.policies.registry import register_policy

Array = jax.Array


def least_confidence_scores(probs: Array) -> Array:
    return xla_uncertainty(probs, "least_confidence")


def margin_scores(probs: Array) -> Array:
    """``-(p_(1) - p_(2))``; 0 when several classes tie for the top."""
    return xla_uncertainty(probs, "margin")


def entropy_scores(probs: Array) -> Array:
    return xla_uncertainty(probs, "entropy")


def uncertainty_scores(ctx: RoundContext, kind: str) -> Array:
    """Score ``kind`` of every pool item: fused from ``x`` and the parameters on large pools, else from ``probs``."""
    if ctx.head is not None and uses_native_kernel(ctx.x.shape, ctx.head[0].shape, ctx.x.dtype):
        w, b = ctx.head
        return pool_uncertainty(ctx.x, w, b, kind)
    return xla_uncertainty(ctx.probs, kind)


@register_policy("least_confidence")
def least_confidence() -> QueryPolicy:
    return score_policy("least_confidence", lambda ctx, key: uncertainty_scores(ctx, "least_confidence"))


@register_policy("margin")
def margin() -> QueryPolicy:
    return score_policy("margin", lambda ctx, key: uncertainty_scores(ctx, "margin"))


@register_policy("entropy")
def entropy() -> QueryPolicy:
    return score_policy("entropy", lambda ctx, key: uncertainty_scores(ctx, "entropy"))


