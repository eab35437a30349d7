"""Uncertainty sampling from the learner's predictive distribution ``p`` (Lewis and Gale 1994).

* least confidence: ``1 - max_c p_c``
* margin: ``-(p_(1) - p_(2))`` (smallest gap between the two most probable classes first;
  Scheffer et al. 2001). The runner-up is found by masking the maximum and taking the
  maximum again, which is faster than ``lax.top_k(p, 2)`` on wide pools.
* entropy: ``-sum_c p_c log p_c`` (Settles 2009, section 3.1)

Each is one vectorised pass over the ``(N, C)`` probabilities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, score_policy
from alband.policies.registry import register_policy

Array = jax.Array


def least_confidence_scores(probs: Array) -> Array:
    return 1.0 - jnp.max(probs, axis=-1)


def margin_scores(probs: Array) -> Array:
    top = jnp.max(probs, axis=-1, keepdims=True)
    is_top = probs >= top
    # If several classes tie for the top, the margin is 0.
    n_top = jnp.sum(is_top, axis=-1)
    runner_up = jnp.max(jnp.where(is_top, -jnp.inf, probs), axis=-1)
    gap = jnp.where(n_top > 1, 0.0, top[:, 0] - runner_up)
    return -gap


def entropy_scores(probs: Array) -> Array:
    return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0), axis=-1)


@register_policy("least_confidence")
def least_confidence() -> QueryPolicy:
    return score_policy("least_confidence", lambda ctx, key: least_confidence_scores(ctx.probs))


@register_policy("margin")
def margin() -> QueryPolicy:
    return score_policy("margin", lambda ctx, key: margin_scores(ctx.probs))


@register_policy("entropy")
def entropy() -> QueryPolicy:
    return score_policy("entropy", lambda ctx, key: entropy_scores(ctx.probs))


