"""Policy names -> factories. A new policy is one module that calls :func:`register_policy`.

``make_policy("entropy")`` returns a :class:`~alband.policies.base.QueryPolicy`;
keyword arguments are the policy's hyper-parameters. The config's
``loop.policy`` and the CLI use these names.
"""

from __future__ import annotations

from typing import Callable

from alband.errors import AlbandError
from alband.policies.base import QueryPolicy

_FACTORIES: dict[str, Callable[..., QueryPolicy]] = {}
_BUILT: dict[tuple, QueryPolicy] = {}


def register_policy(name: str) -> Callable[[Callable[..., QueryPolicy]], Callable[..., QueryPolicy]]:
    """Decorator registering a policy factory under ``name``."""

    def decorate(factory: Callable[..., QueryPolicy]) -> Callable[..., QueryPolicy]:
        if name in _FACTORIES:
            raise ValueError(f"query policy '{name}' is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorate


def available_policies() -> list[str]:
    return sorted(_FACTORIES)


def make_policy(name: str, **hyperparameters) -> QueryPolicy:
    """The policy registered as ``name``, built with ``hyperparameters``.

    Equal arguments return the *same* policy object, so jitted functions that
    take the policy as a static argument compile once per policy, not per call.
    """
    try:
        key = (name, tuple(sorted(hyperparameters.items())))
        hash(key)
    except TypeError:
        return _build(name, hyperparameters)
    if key not in _BUILT:
        _BUILT[key] = _build(name, hyperparameters)
    return _BUILT[key]


def _build(name: str, hyperparameters: dict) -> QueryPolicy:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise AlbandError(
            f"unknown query policy '{name}'; available: {', '.join(available_policies())}"
        ) from None
    try:
        return factory(**hyperparameters)
    except TypeError as err:
        raise AlbandError(f"query policy '{name}': bad hyper-parameters {hyperparameters}: {err}") from None
