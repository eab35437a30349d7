"""Random sampling: ``B`` unqueried items uniformly without replacement.

Scores are i.i.d. uniform draws from the round's key; the top ``B`` of them
among unqueried items is a uniform random subset. The baseline every other
policy must beat (and often does not: report it with confidence intervals).
"""

from __future__ import annotations

import jax

from alband.policies.base import QueryPolicy, score_policy
from alband.policies.registry import register_policy


@register_policy("random")
def random_sampling() -> QueryPolicy:
    return score_policy("random", lambda ctx, key: jax.random.uniform(key, ctx.queried.shape))
