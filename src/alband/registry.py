"""Names -> factories: the one registry behind policies, learners and routers.

alband has three kinds of pluggable parts, each a factory registered under a
name: query policies (:mod:`alband.policies.registry`), learners
(:mod:`alband.models.registry`) and routers (:mod:`alband.routing.registry`).
They share the rules written here once:

* ``@registry.register("name")`` adds a factory. Registering the same function
  again under its name (a module or a notebook cell run twice: same module and
  qualified name) replaces the entry and forgets what the old one built; two
  different functions under one name are a :class:`ValueError`.
* :meth:`Registry.make` builds by name; equal hyper-parameters return the
  *same* (hashable) object, so jitted functions that take it as a static
  argument compile once per configuration, not once per call.
* An unknown name or a hyper-parameter the factory does not take is one
  :class:`~alband.errors.AlbandError` line listing what is available.

A registration may carry metadata (a router's parameter kinds), kept beside
the factory and read with :meth:`Registry.entry`. A part outside alband is a
plug-in (:mod:`alband.plugins`), resolved against :meth:`Registry.factories`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from alband.errors import AlbandError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registration: its name, its factory and any metadata the registry's kind keeps."""

    name: str
    factory: Callable[..., T]
    meta: Any = None


def qualified_name(factory: Callable) -> str:
    """``module.qualname`` of a factory: what "the same function registered again" means."""
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


class Registry(Generic[T]):
    """Factories of one kind of part, by name (module docstring).

    ``what`` names the kind in messages (``"query policy"``); ``builtins`` is
    called before any lookup to import the modules that register alband's own
    parts (so a lookup never depends on what happened to be imported).
    """

    def __init__(self, what: str, builtins: Callable[[], None] | None = None) -> None:
        self.what = what
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._built: dict[tuple, T] = {}

    # -- registration -------------------------------------------------------------------------------

    def add(self, name: str, factory: Callable[..., T], meta: Any = None) -> Callable[..., T]:
        """Register ``factory`` under ``name`` (the rules of the module docstring); returns the factory."""
        old = self._entries.get(name)
        if old is not None and qualified_name(old.factory) != qualified_name(factory):
            raise ValueError(f"{self.what} '{name}' is registered twice: by {qualified_name(old.factory)} "
                             f"and by {qualified_name(factory)}")
        if old is not None and old.factory is not factory:  # re-registered: forget what the old one built
            self.forget(name)
        self._entries[name] = Entry(name, factory, meta)
        return factory

    def register(self, name: str, meta: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form of :meth:`add`."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            return self.add(name, factory, meta)

        return decorate

    def forget(self, name: str) -> None:
        """Drop the parts built from ``name`` (the registration stays)."""
        for key in [k for k in self._built if k[0] == name]:
            del self._built[key]

    # -- lookup -------------------------------------------------------------------------------------

    def _loaded(self) -> dict[str, Entry[T]]:
        if self._builtins is not None:
            self._builtins()
        return self._entries

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._loaded())

    def factories(self) -> dict[str, Callable[..., T]]:
        """``{name: factory}`` of every registration, alband's own included."""
        return {name: entry.factory for name, entry in self._loaded().items()}

    def entry(self, name: str) -> Entry[T]:
        """The registration of ``name``; an unknown name is one :class:`AlbandError` line listing the known."""
        try:
            return self._loaded()[name]
        except KeyError:
            raise AlbandError(f"unknown {self.what} '{name}'; available: {', '.join(self.names())}") from None

    def make(self, name: str, **hyperparameters: Any) -> T:
        """The part registered as ``name`` built with ``hyperparameters``, cached by value where hashable."""
        try:
            key = (name, tuple(sorted(hyperparameters.items())))
            hash(key)
        except TypeError:
            return self._build(name, hyperparameters)
        if key not in self._built:
            self._built[key] = self._build(name, hyperparameters)
        return self._built[key]

    def _build(self, name: str, hyperparameters: dict[str, Any]) -> T:
        factory = self.entry(name).factory
        try:
            return factory(**hyperparameters)
        except TypeError as err:
            raise AlbandError(f"{self.what} '{name}': bad hyper-parameters {hyperparameters}: {err}") from None

    # -- tests and notebooks ------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict, dict]:
        """The registrations and built parts as they are now (for :meth:`restore`)."""
        return dict(self._entries), dict(self._built)

    def restore(self, state: tuple[dict, dict]) -> None:
        """Put back a :meth:`snapshot`: registrations made since are gone."""
        self._entries, self._built = dict(state[0]), dict(state[1])


__all__ = ["Entry", "Registry", "qualified_name"]
