r"""Pair uncertainty: ask the pairs whose predicted preference is nearest a coin flip.

Uncertainty sampling (Lewis and Gale 1994) for a Bradley-Terry model: with
``P(first preferred) = sigmoid(theta' z)`` the least certain pairs are those of
smallest ``|theta' z|``, so the score is ``-|theta' z|``: one matrix-vector
product over the pool (``N d`` reads; the benchmark times it against one read
of ``z``) and a masked ``top_k``. It ignores how well ``theta`` is known
(epistemic uncertainty): a pair can sit at 1/2 because the two responses are
equally good, which no answer will change -- the weakness
:mod:`.information_gain` and :mod:`.apo` address.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, score_policy
from alband.policies.registry import register_policy

Array = jax.Array


def pair_uncertainty_scores(z: Array, theta: Array) -> Array:
    """``-|theta' z_i|``: largest for ``P(first preferred)`` nearest 1/2."""
    return -jnp.abs(z @ theta)


@register_policy("pair_uncertainty")
def pair_uncertainty() -> QueryPolicy:
    return score_policy("pair_uncertainty", lambda ctx, key: pair_uncertainty_scores(ctx.x, ctx.params.theta))
