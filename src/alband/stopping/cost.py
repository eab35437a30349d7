"""The cost model of stopping (Pullar-Strecker et al. 2024) with real dollars, and each rule's regret.

Stopping after round ``r`` costs, in dollars::

    C_r = (1 - acc_r) * n * m + spent_r

``n`` future predictions made by the deployed model, ``m`` dollars per
misclassification, ``acc_r`` the model's true (test) accuracy and ``spent_r``
the dollars paid to annotators up to round ``r`` (so heterogeneous prices --
a cheap LLM, a strong LLM, a human -- enter as they were paid, not as a label
count). The hindsight-optimal round is ``r* = argmin_r C_r`` (the earliest
on ties); a rule that stops at ``s`` has **cost regret** ``C_s - C_{r*} >= 0``.
Everything is jittable and vmaps over seeds and over cost models.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.stopping.history import StopHistory
from alband.stopping.rules import StoppingRule, stopping_round, with_cost_model

Array = jax.Array


class CostModel(NamedTuple):
    """``m`` dollars per error and ``n`` future predictions (arrays or floats)."""

    cost_per_error: Array | float
    n_future: Array | float


class StopOutcome(NamedTuple):
    """What stopping by one rule gave (scalars per run)."""

    round: Array  # int32 the stopping round (R when the rule never fired)
    fired: Array  # bool the rule fired within the horizon
    n_labeled: Array  # int32 labels at the stop
    spent_usd: Array  # float32 dollars at the stop
    accuracy: Array  # float32 test accuracy at the stop
    total_cost: Array  # float32 C at the stop
    optimal_round: Array  # int32 r*
    optimal_cost: Array  # float32 C at r*
    regret: Array  # float32 total_cost - optimal_cost


def total_cost(test_accuracy: Array, spent_usd: Array, cost: CostModel) -> Array:
    """``C_r`` for every round (module docstring)."""
    m = jnp.asarray(cost.cost_per_error, jnp.float32)
    n = jnp.asarray(cost.n_future, jnp.float32)
    return (1.0 - jnp.asarray(test_accuracy, jnp.float32)) * n * m + jnp.asarray(spent_usd, jnp.float32)


def hindsight_optimal_round(test_accuracy: Array, spent_usd: Array, cost: CostModel) -> Array:
    """``argmin_r C_r`` with the true accuracy (earliest round on ties)."""
    return jnp.argmin(total_cost(test_accuracy, spent_usd, cost), axis=-1).astype(jnp.int32)


def stop_outcome(flags: Array, history: StopHistory, test_accuracy: Array, cost: CostModel) -> StopOutcome:
    """The outcome of stopping at the first flagged round of one run."""
    costs = total_cost(test_accuracy, history.spent_usd, cost)
    stop = stopping_round(flags)
    best = jnp.argmin(costs).astype(jnp.int32)
    return StopOutcome(
        round=stop,
        fired=jnp.any(flags),
        n_labeled=jnp.asarray(history.n_labeled)[stop].astype(jnp.int32),
        spent_usd=jnp.asarray(history.spent_usd, jnp.float32)[stop],
        accuracy=jnp.asarray(test_accuracy, jnp.float32)[stop],
        total_cost=costs[stop],
        optimal_round=best,
        optimal_cost=costs[best],
        regret=costs[stop] - costs[best],
    )


def evaluate_rules(
    rules: tuple[StoppingRule, ...], history: StopHistory, test_accuracy: Array, cost: CostModel
) -> dict[str, StopOutcome]:
    """Every rule's outcome on one run; cost rules use ``cost`` as their own cost model.

    Pure and jittable (``rules`` closed over); vmap it over seeds and cost models. Keys are
    :func:`rule_keys` (note that a jitted dict comes back in sorted key order).
    """
    out = {}
    for key, rule in zip(rule_keys(rules), rules):
        rule = with_cost_model(rule, cost.cost_per_error, cost.n_future)
        out[key] = stop_outcome(rule.flags(history), history, test_accuracy, cost)
    return out


def rule_keys(rules: tuple[StoppingRule, ...]) -> list[str]:
    """The keys :func:`evaluate_rules` files the rules under, in order: the name, ``name#k`` for a repeat."""
    keys: list[str] = []
    for k, rule in enumerate(rules):
        keys.append(rule.name if rule.name not in keys else f"{rule.name}#{k}")
    return keys
