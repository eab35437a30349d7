"""alband.registry.Registry: the one set of rules behind the policy, learner and router registries."""

from __future__ import annotations

import pytest

from alband.errors import AlbandError
from alband.models.registry import LEARNER_REGISTRY
from alband.policies.registry import POLICY_REGISTRY
from alband.registry import Registry
from alband.routing.registry import ROUTER_REGISTRY


class Part:
    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def __eq__(self, other):
        return isinstance(other, Part) and other.scale == self.scale

    def __hash__(self):
        return hash(self.scale)


def _source(body: str) -> dict:
    namespace = {"__name__": "parts_module", "Part": Part}
    exec(compile(f"def part(scale=1.0):\n    {body}\n", "parts_module.py", "exec"), namespace)
    return namespace


def test_equal_hyperparameters_give_the_same_object_and_unhashable_ones_a_fresh_one():
    registry: Registry[Part] = Registry("part")
    registry.add("p", lambda scale=1.0: Part(scale))
    assert registry.make("p", scale=2.0) is registry.make("p", scale=2.0)
    assert registry.make("p", scale=2.0) is not registry.make("p", scale=3.0)
    assert registry.make("p", scale=[1]) is not registry.make("p", scale=[1])


def test_registering_the_same_function_again_replaces_it_and_forgets_what_it_built():
    registry: Registry[Part] = Registry("part")
    first = _source("return Part(scale)")["part"]
    registry.add("p", first)
    built = registry.make("p", scale=2.0)
    again = _source("return Part(scale * 10)")["part"]  # same module and name: a cell run again
    registry.add("p", again)
    assert registry.factories()["p"] is again
    rebuilt = registry.make("p", scale=2.0)
    assert rebuilt is not built and rebuilt.scale == 20.0


def test_two_different_functions_under_one_name_are_an_error():
    registry: Registry[Part] = Registry("part")
    registry.add("p", lambda: Part())

    def other():
        return Part()

    with pytest.raises(ValueError, match="part 'p' is registered twice"):
        registry.add("p", other)


def test_unknown_names_and_bad_hyperparameters_are_one_line_listing_what_exists():
    registry: Registry[Part] = Registry("widget")
    registry.add("b", lambda scale=1.0: Part(scale))
    registry.add("a", lambda scale=1.0: Part(scale))
    with pytest.raises(AlbandError, match=r"^unknown widget 'c'; available: a, b$"):
        registry.make("c")
    with pytest.raises(AlbandError, match=r"^widget 'a': bad hyper-parameters \{'size': 3\}"):
        registry.make("a", size=3)


def test_builtins_are_loaded_before_any_lookup_and_a_snapshot_restores_the_registrations():
    loaded = []
    registry: Registry[Part] = Registry("part", builtins=lambda: loaded.append(True) or registry.add("own", Part))
    assert registry.names() == ["own"] and loaded
    state = registry.snapshot()
    registry.add("extra", lambda: Part(2.0))
    registry.restore(state)
    assert registry.names() == ["own"]


def test_the_three_kinds_share_the_registry():
    assert {"entropy", "random"} <= set(POLICY_REGISTRY.names())
    assert "softmax_regression" in LEARNER_REGISTRY.names()
    assert "contextual_ts" in ROUTER_REGISTRY.names()
    assert ROUTER_REGISTRY.entry("contextual_ts").meta.learns
