"""Policy names -> factories. A new policy is one module that calls :func:`register_policy`.

``make_policy("entropy")`` returns a :class:`~alband.policies.base.QueryPolicy`;
keyword arguments are the policy's hyper-parameters. The config's
``[policy] name`` and the CLI use these names; a policy outside alband is a
plug-in (:mod:`alband.plugins`: ``"package.module:function"`` or an entry
point of group ``alband.policies``). Registration, caching and error rules are
those of :class:`alband.registry.Registry`. alband's own policies register
themselves when :mod:`alband.policies` is imported (the parent of this module).
"""

from __future__ import annotations

from typing import Callable

from alband.policies.base import QueryPolicy
from alband.registry import Registry

#: Every query policy by name.
POLICY_REGISTRY: Registry[QueryPolicy] = Registry("query policy")


def register_policy(name: str) -> Callable[[Callable[..., QueryPolicy]], Callable[..., QueryPolicy]]:
    """Decorator registering a policy factory under ``name``."""
    return POLICY_REGISTRY.register(name)


def registered_factories() -> dict[str, Callable[..., QueryPolicy]]:
    """``{name: factory}`` of every registered policy (what :mod:`alband.plugins` resolves against)."""
    return POLICY_REGISTRY.factories()


def available_policies() -> list[str]:
    return POLICY_REGISTRY.names()


def make_policy(name: str, **hyperparameters) -> QueryPolicy:
    """The policy registered as ``name``, built with ``hyperparameters``.

    Equal arguments return the *same* policy object, so jitted functions that
    take the policy as a static argument compile once per policy, not per call.
    """
    return POLICY_REGISTRY.make(name, **hyperparameters)
