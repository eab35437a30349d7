"""Plug-ins: a policy, router or learner named by module path or by entry point (shell).

A config names a registered component in one of three ways:

* a built-in name: ``name = "entropy"``;
* a module path ``"package.module:attr"``: the module is imported (its
  registration decorators run) and ``attr`` is the registered factory, or
  the registered name itself. The module is looked up on ``sys.path``, then
  in the config's folder (a ``mypolicies.py`` beside the config just works);
* an entry-point name of the group (``alband.policies``, ``alband.routers``,
  ``alband.learners``) declared by an installed package, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."alband.policies"]
      noisy_entropy = "mypkg.policies:noisy_entropy"

:func:`resolve_plugin` imports what the name points to and returns the name
under which the component is registered, so the rest of alband only ever
sees registered names. Anything wrong (a module that does not import, a
missing attribute, a function never registered, a name nobody declares) is
one :class:`~alband.errors.AlbandError` line naming the plug-in.

Each group reads its registry through one function returning
``{registered name: factory}``; hooking up a new group is one
:class:`PluginGroup` line in :data:`GROUPS`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from alband.errors import AlbandError


@dataclass(frozen=True)
class PluginGroup:
    """An entry-point group and the registry its components register into.

    ``registry`` is ``"module:function"``: the function returns the registry
    as ``{registered name: factory}``; ``decorator`` names the registering
    decorator (for the message when a plug-in forgot it).
    """

    entry_point_group: str
    noun: str
    registry: str
    decorator: str

    def factories(self) -> Mapping[str, Callable[..., Any]]:
        return _load(self.registry, self.noun)()

    def entry_point_names(self) -> list[str]:
        return sorted(ep.name for ep in importlib.metadata.entry_points(group=self.entry_point_group))


POLICIES = PluginGroup("alband.policies", "query policy", "alband.policies.registry:registered_factories",
                       "alband.policies.register_policy")
ROUTERS = PluginGroup("alband.routers", "router", "alband.routing.registry:registered_factories",
                      "alband.routing.register_router")
LEARNERS = PluginGroup("alband.learners", "learner", "alband.models.registry:registered_factories",
                       "alband.models.register_learner")
GROUPS: dict[str, PluginGroup] = {g.entry_point_group: g for g in (POLICIES, ROUTERS, LEARNERS)}


def resolve_plugin(name: str, group: PluginGroup, *, search: Path | None = None) -> str:
    """The registered name of the component ``name`` points to, importing its plug-in first (module docstring).

    ``search``: a folder (the config's) holding a plug-in module not on ``sys.path``.
    """
    factories = group.factories()
    if name in factories:
        return name
    if ":" in name:
        return _registered_name(_load(name, group.noun, search), name, group)
    points = [ep for ep in importlib.metadata.entry_points(group=group.entry_point_group) if ep.name == name]
    if points:
        try:
            target = points[0].load()
        except Exception as err:  # noqa: BLE001 - any failure of a plug-in's import is the plug-in's error
            raise AlbandError(f"{group.noun} '{name}': entry point {points[0].value} "
                              f"({group.entry_point_group}) does not load: {type(err).__name__}: {err}") from None
        return _registered_name(target, name, group)
    known = sorted(set(factories) | set(group.entry_point_names()))
    raise AlbandError(f"unknown {group.noun} '{name}' (available: {', '.join(known)}; or a plug-in as "
                      f"'package.module:function', or an entry point of group {group.entry_point_group})")


def _load(path: str, noun: str, search: Path | None = None) -> Any:
    """The object at ``"module:attr"`` (``attr`` may be dotted); the module from ``sys.path``, else ``search``."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AlbandError(f"{noun} '{path}': a plug-in path is 'package.module:function'")
    top = module_name.split(".")[0]
    if search is not None and top and str(search) not in sys.path and _missing(top) and (
            (search / f"{top}.py").is_file() or (search / top).is_dir()):
        sys.path.append(str(search))
    try:
        target = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001
        raise AlbandError(f"{noun} '{path}': cannot import module '{module_name}': "
                          f"{type(err).__name__}: {err}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AlbandError(f"{noun} '{path}': module '{module_name}' has no attribute '{attr}'") from None
    return target


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _registered_name(target: Any, spelled: str, group: PluginGroup) -> str:
    factories = group.factories()
    if isinstance(target, str) and target in factories:
        return target
    for registered, factory in factories.items():
        if factory is target:
            return registered
    what = getattr(target, "__qualname__", repr(target))
    raise AlbandError(f"{group.noun} '{spelled}': {what} is not registered (decorate it with "
                      f"@{group.decorator}(\"name\"))")


def load_entry_points(group: PluginGroup) -> list[str]:
    """Import every entry point of ``group`` (so its components register); one line per one that fails."""
    failures = []
    for ep in importlib.metadata.entry_points(group=group.entry_point_group):
        try:
            _registered_name(ep.load(), ep.name, group)
        except Exception as err:  # noqa: BLE001 - a broken plug-in must not hide the others
            failures.append(f"{group.noun} '{ep.name}' ({ep.value}): {type(err).__name__}: {err}")
    return failures


@dataclass(frozen=True)
class Listing:
    """One registered component as ``alband policies`` / ``routers`` / ``learners`` print it."""

    name: str
    parameters: dict[str, str]  # name -> default (as text), or "required"
    summary: str
    origin: str  # "built-in" or the factory's module


def describe(name: str, factory: Callable[..., Any], declared: Mapping[str, Any] | None = None,
             defaults_from: Callable[..., Any] | None = None) -> Listing:
    """``factory``'s hyper-parameters with their defaults and its docstring's first line.

    ``declared``: parameter names a ``**kwargs`` factory forwards (a router's
    registered kinds); their defaults come from ``defaults_from``'s signature.
    """
    parameters: dict[str, str] = {}
    fallback = _defaults(defaults_from) if defaults_from is not None else {}
    for key, default in _defaults(factory).items():
        parameters[key] = default
    for key in declared or {}:
        parameters.setdefault(key, fallback.get(key, "default"))
    if declared is not None:
        parameters = {k: v for k, v in parameters.items() if k in declared}
    module = getattr(factory, "__module__", "") or ""
    doc = inspect.getdoc(factory) or inspect.getdoc(sys.modules.get(module)) or ""
    origin = "built-in" if module.startswith("alband.") else module
    return Listing(name, parameters, doc.strip().split("\n")[0], origin)


def _defaults(function: Callable[..., Any]) -> dict[str, str]:
    return {p.name: "required" if p.default is p.empty else repr(p.default)
            for p in inspect.signature(function).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


__all__ = ["GROUPS", "LEARNERS", "POLICIES", "ROUTERS", "Listing", "PluginGroup", "describe", "load_entry_points", "resolve_plugin"]
