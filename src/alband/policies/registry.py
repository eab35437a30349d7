"""Policy names -> factories. A new policy is one module that calls :func:`register_policy`.

``make_policy("entropy")`` returns a :class:`~alband.policies.base.QueryPolicy`;
keyword arguments are the policy's hyper-parameters. The config's
``[policy] name`` and the CLI use these names; a policy outside alband is a
plug-in (:mod:`alband.plugins`: ``"package.module:function"`` or an entry
point of group ``alband.policies``).

Registering the same function again under its name (a module or a notebook
cell run twice: same module and qualified name) replaces the entry; two
different functions under one name are an error.
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
        old = _FACTORIES.get(name)
        if old is not None and _where(old) != _where(factory):
            raise ValueError(f"query policy '{name}' is registered twice: by {_where(old)} and by {_where(factory)}")
        if old is not None and old is not factory:  # re-registered: forget the policies the old one built
            for key in [k for k in _BUILT if k[0] == name]:
                del _BUILT[key]
        _FACTORIES[name] = factory
        return factory

    return decorate


def _where(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def registered_factories() -> dict[str, Callable[..., QueryPolicy]]:
    """``{name: factory}`` of every registered policy (what :mod:`alband.plugins` resolves against)."""
    return dict(_FACTORIES)


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
