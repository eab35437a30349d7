"""Learner names -> factories. A new learner is one module that calls :func:`register_learner`.

``make_learner("softmax_regression", n_classes=4, c=1.0)`` returns a
:class:`~alband.models.base.Learner`; keyword arguments are its
hyper-parameters. Equal arguments return the *same* (hashable) object, so
jitted functions that take the learner as a static argument compile once.
"""

from __future__ import annotations

from typing import Callable

from alband.errors import AlbandError
from alband.models.base import Learner

_FACTORIES: dict[str, Callable[..., Learner]] = {}
_BUILT: dict[tuple, Learner] = {}


def register_learner(name: str) -> Callable[[Callable[..., Learner]], Callable[..., Learner]]:
    """Decorator registering a learner factory under ``name``."""

    def decorate(factory: Callable[..., Learner]) -> Callable[..., Learner]:
        if name in _FACTORIES:
            raise ValueError(f"learner '{name}' is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorate


def available_learners() -> list[str]:
    _register_builtin()
    return sorted(_FACTORIES)


def make_learner(name: str, **hyperparameters) -> Learner:
    """The learner registered as ``name``, built with ``hyperparameters`` (cached by value)."""
    _register_builtin()
    try:
        key = (name, tuple(sorted(hyperparameters.items())))
        hash(key)
    except TypeError:
        return _build(name, hyperparameters)
    if key not in _BUILT:
        _BUILT[key] = _build(name, hyperparameters)
    return _BUILT[key]


def _build(name: str, hyperparameters: dict) -> Learner:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise AlbandError(f"unknown learner '{name}'; available: {', '.join(available_learners())}") from None
    try:
        return factory(**hyperparameters)
    except TypeError as err:
        raise AlbandError(f"learner '{name}': bad hyper-parameters {hyperparameters}: {err}") from None


def _register_builtin() -> None:
    """Import the learners that ship with alband (each registers itself on import)."""
    import alband.models.bradley_terry  # noqa: F401
    import alband.models.laplace_logistic  # noqa: F401
    import alband.models.softmax_regression  # noqa: F401
