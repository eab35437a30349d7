"""Router names -> factories. A new router is one module that calls :func:`register_router`.

``make_router("cascade", chain=(0, 2), target=0.9)`` returns a
:class:`~alband.routing.base.Router`; keyword arguments are the router's
hyper-parameters, checked against the types it registered and, by its
factory, against their ranges (one :class:`~alband.errors.AlbandError` line
naming the parameter). A router outside alband is a plug-in
(:mod:`alband.plugins`: ``"package.module:function"`` or an entry point of
group ``alband.routers``). The registered name is the one spelling of the router
everywhere: the config's ``[routing] router``, ``alband route replay
--routers``, the replay's JSON report and the runs' reports (snake_case:
``contextual_ts``, ``ucb_bv``).

A registration declares each hyper-parameter's kind:

* a Python type or tuple of types (:data:`NUMBER` for an int or a float);
* :data:`ARM`: one annotator, an arm index in the core and an annotator's
  name in a config (a config that omits it means the first annotator);
* :data:`ARMS`: annotators in order, arm indices in the core and names in a
  config (a config that omits it means every annotator, in arm order).

``learns=True`` marks a router that learns which annotator to trust from
verdicts (a config must then name an auditor, or use gold feedback);
``hindsight=True`` one that reads the outcomes it routes on (the oracle): its
factory takes the ``(n, K)`` matrices ``correct`` and ``cost_usd`` and it is
for evaluation only, never for a run.

Registration and error rules are those of :class:`alband.registry.Registry`;
a router's entry keeps its parameter kinds as the registration's metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from alband.errors import AlbandError
from alband.registry import Registry
from alband.routing.audit import AuditConfig
from alband.routing.base import Router

#: An int or a float (a bool is neither).
NUMBER = (int, float)
#: One annotator: an arm index (a name in a config).
ARM = "arm"
#: Annotators in order: arm indices (names in a config).
ARMS = "arms"

ParameterKind = type | tuple[type, ...] | str

#: The audit parameters of every learning router (:mod:`alband.routing.audit`).
AUDIT_PARAMETERS: Mapping[str, ParameterKind] = MappingProxyType(
    {"audit_rate": NUMBER, "audit_share": NUMBER, "panel_share": NUMBER, "panel_size": int}
)


@dataclass(frozen=True)
class RouterEntry:
    """A registered router: its factory, its hyper-parameters' kinds and what it needs."""

    name: str
    factory: Callable[..., Router]
    parameters: Mapping[str, ParameterKind] = field(default_factory=dict)
    learns: bool = False
    hindsight: bool = False


#: Every router by name; each entry's metadata is its :class:`RouterEntry`.
ROUTER_REGISTRY: Registry[Router] = Registry("router")


def register_router(
    name: str,
    *,
    parameters: Mapping[str, ParameterKind] | None = None,
    learns: bool = False,
    hindsight: bool = False,
) -> Callable[[Callable[..., Router]], Callable[..., Router]]:
    """Decorator registering a router factory under ``name`` (module docstring)."""
    kinds = dict(parameters or {})
    for key, kind in kinds.items():
        if not (kind in (ARM, ARMS) or isinstance(kind, type)
                or (isinstance(kind, tuple) and kind and all(isinstance(t, type) for t in kind))):
            raise ValueError(f"router '{name}': parameter '{key}' has kind {kind!r}; use a type, a tuple of types, "
                             "ARM or ARMS")

    def decorate(factory: Callable[..., Router]) -> Callable[..., Router]:
        return ROUTER_REGISTRY.add(name, factory, RouterEntry(name, factory, MappingProxyType(kinds), learns, hindsight))

    return decorate


def available_routers() -> list[str]:
    return ROUTER_REGISTRY.names()


def registered_factories() -> dict[str, Callable[..., Router]]:
    """``{name: factory}`` of every registered router (what :mod:`alband.plugins` resolves against)."""
    return ROUTER_REGISTRY.factories()


def router_entry(name: str) -> RouterEntry:
    """The registration of ``name``; an :class:`AlbandError` lists the known names."""
    return ROUTER_REGISTRY.entry(name).meta


def make_router(name: str, **hyperparameters: Any) -> Router:
    """The router registered as ``name``, built with ``hyperparameters`` (checked first)."""
    entry = router_entry(name)
    for key, value in hyperparameters.items():
        if key not in entry.parameters:
            allowed = ", ".join(sorted(entry.parameters)) or "none"
            raise AlbandError(f"router '{name}': unknown parameter '{key}' (allowed: {allowed})")
        _check_kind(name, key, value, entry.parameters[key])
    return entry.factory(**hyperparameters)


def _check_kind(router: str, key: str, value: Any, kind: ParameterKind) -> None:
    if kind == ARM:
        ok = _is_int(value)
        expected = "an arm index (int)"
    elif kind == ARMS:
        ok = isinstance(value, Sequence) and not isinstance(value, str) and all(_is_int(v) for v in value)
        expected = "a sequence of arm indices (ints)"
    else:
        types = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        expected = "/".join(t.__name__ for t in types)
    if not ok:
        raise AlbandError(f"router '{router}': {key} must be {expected}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- range checks shared by the factories: one line naming the parameter -------------------------


def at_least(key: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise AlbandError(f"{key} must be >= {minimum}, got {value}")
    return value


def finite_in(key: str, value: float, low: float, high: float = math.inf) -> float:
    if not (math.isfinite(value) and low <= value <= high):
        raise AlbandError(f"{key} must be a finite number in [{low:g}, {high:g}], got {value}")
    return float(value)


def finite_positive(key: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise AlbandError(f"{key} must be a finite number > 0, got {value}")
    return float(value)


def distinct_arms(key: str, arms: Sequence[int]) -> tuple[int, ...]:
    """``arms`` as a non-empty tuple of distinct arm indices >= 0."""
    arms = tuple(int(k) for k in arms)
    if not arms or len(set(arms)) != len(arms) or min(arms) < 0:
        raise AlbandError(f"{key} must be a non-empty list of distinct arms, got {list(arms)}")
    return arms


_AUDIT = AuditConfig()


def audit_config(audit_rate: float = _AUDIT.rate, audit_share: float = _AUDIT.share,
                 panel_share: float = _AUDIT.panel_share, panel_size: int = _AUDIT.panel_size) -> AuditConfig:
    """An :class:`~alband.routing.audit.AuditConfig` from the :data:`AUDIT_PARAMETERS`, range-checked."""
    return AuditConfig(
        rate=finite_in("audit_rate", audit_rate, 0.0, 1.0),
        share=finite_in("audit_share", audit_share, 0.0),
        panel_share=finite_in("panel_share", panel_share, 0.0),
        panel_size=at_least("panel_size", panel_size, 0),
    )


__all__ = [
    "ARM",
    "ARMS",
    "AUDIT_PARAMETERS",
    "NUMBER",
    "RouterEntry",
    "audit_config",
    "available_routers",
    "make_router",
    "register_router",
    "registered_factories",
    "router_entry",
]
