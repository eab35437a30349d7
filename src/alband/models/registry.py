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

Registration, caching and error rules are those of
:class:`alband.registry.Registry`.
"""

from __future__ import annotations

from typing import Callable

from alband.models.base import Learner
from alband.registry import Registry


def _register_builtin() -> None:
    """Import the learners that ship with alband (each registers itself on import)."""
    import alband.models.bradley_terry  # noqa: F401
    import alband.models.laplace_logistic  # noqa: F401
    import alband.models.sklearn_learner  # noqa: F401
    import alband.models.softmax_regression  # noqa: F401


#: Every learner by name.
LEARNER_REGISTRY: Registry[Learner] = Registry("learner", builtins=_register_builtin)


def register_learner(name: str) -> Callable[[Callable[..., Learner]], Callable[..., Learner]]:
    """Decorator registering a learner factory under ``name``."""
    return LEARNER_REGISTRY.register(name)


def registered_factories() -> dict[str, Callable[..., Learner]]:
    """``{name: factory}`` of every registered learner, built-ins included (what :mod:`alband.plugins` resolves against)."""
    return LEARNER_REGISTRY.factories()


def takes_n_classes(name: str) -> bool:
    """Whether the factory registered as ``name`` takes ``n_classes`` (the run passes the task's)."""
    import inspect

    return "n_classes" in inspect.signature(LEARNER_REGISTRY.entry(name).factory).parameters


def available_learners() -> list[str]:
    return LEARNER_REGISTRY.names()


def make_learner(name: str, **hyperparameters) -> Learner:
    """The learner registered as ``name``, built with ``hyperparameters`` (cached by value)."""
    return LEARNER_REGISTRY.make(name, **hyperparameters)
