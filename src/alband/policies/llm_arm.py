"""The arm of a meta-bandit (``albl``, ``meta_ts``) that stands for an LLM selector.

A meta-bandit draws its strategy inside its jitted ``select``; an LLM cannot
run there. This arm is the placeholder: listed among the strategies
(``strategies = ["entropy", "llm_selection"]``), its own batch is a uniform
random one, and when the meta-bandit draws it the live loop's selector
(``[selector] mode = "meta_arm"``, :mod:`alband.selection`) replaces that batch
with the LLM's picks (:func:`alband.rounds.with_index`), so the LLM is paid
only in the rounds its arm is drawn. The meta-bandit's ``update`` then sees the
LLM's items and credits the arm with their reward. In the simulator the
recorded selections of those rounds replace it the same way; a round with no
record buys the placeholder's uniform batch (the simulator never invents an
LLM reply).
"""

from __future__ import annotations

import jax

from alband.policies.base import QueryPolicy, score_policy
from alband.policies.registry import register_policy

LLM_ARM = "llm_selection"


@register_policy(LLM_ARM)
def llm_selection_arm() -> QueryPolicy:
    return score_policy(LLM_ARM, lambda ctx, key: jax.random.uniform(key, ctx.queried.shape))
