"""Query policies (core): which unlabeled items to buy labels for next.

Every policy has the one signature of :mod:`alband.policies.base`; names are
registered in :mod:`alband.policies.registry`. Importing this package
registers the built-in policies.
"""

from alband.policies import badge, bald, coreset, cost_aware, d_greedy, density, design_based, linear_bandits, llm_arm, meta_bandit, random_sampling, uncertainty  # noqa: F401,E501  (registration)
from alband.policies import preference  # noqa: F401,E402  (registration of the preference-pair policies)
from alband.policies.base import QueryPolicy, RoundContext, score_policy, top_unqueried
from alband.policies.registry import available_policies, make_policy, register_policy

__all__ = [
    "QueryPolicy",
    "RoundContext",
    "available_policies",
    "make_policy",
    "register_policy",
    "score_policy",
    "top_unqueried",
]
