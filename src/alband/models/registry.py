"""Learner names -> factories. A new learner is one module that calls :func:`register_learner`.

``make_learner("softmax_regression", n_classes=4, c=1.0)`` returns a
:class:`~alband.models.base.Learner`; keyword arguments are its
hyper-parameters. Equal arguments return the *same* (hashable) object, so
jitted functions that take the learner as a static argument compile once.

The config's ``[learner] name`` uses these names; a learner outside alband is
a plug-in (:mod:`alband.plugins`: ``"package.module:function"`` or an entry
point of group ``alband.learners``). A factory that takes ``n_classes`` gets
the task's number of classes from the run; its other keyword arguments are
the hyper-parameters a config sets.

Registering the same function again under its name (a module or a notebook
cell run twice: same module and qualified name) replaces the entry; two
different functions under one name are an error.
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
        old = _FACTORIES.get(name)
        if old is not None and _where(old) != _where(factory):
            raise ValueError(f"learner '{name}' is registered twice: by {_where(old)} and by {_where(factory)}")
        if old is not None and old is not factory:  # re-registered: forget the learners the old one built
            for key in [k for k in _BUILT if k[0] == name]:
                del _BUILT[key]
        _FACTORIES[name] = factory
        return factory

    return decorate


def _where(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def registered_factories() -> dict[str, Callable[..., Learner]]:
    """``{name: factory}`` of every registered learner, built-ins included (what :mod:`alband.plugins` resolves against)."""
    _register_builtin()
    return dict(_FACTORIES)


def takes_n_classes(name: str) -> bool:
    """Whether the factory registered as ``name`` takes ``n_classes`` (the run passes the task's)."""
    import inspect

    return "n_classes" in inspect.signature(registered_factories()[name]).parameters


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
    import alband.models.sklearn_learner  # noqa: F401
    import alband.models.softmax_regression  # noqa: F401
