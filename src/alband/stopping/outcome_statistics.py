"""Every stopping rule on many simulated episodes at once: stopping rounds, dollars, accuracy, cost regret.

``rule_outcomes(rules, histories, test_accuracy, costs)`` evaluates each rule
of :mod:`alband.stopping` on every episode (leading axis: seed) under every
cost model (``CostModel`` arrays of shape ``(G,)``: dollars per error ``m``
and future predictions ``n``) in one jitted ``vmap``: outcome arrays have
shape ``(G, S)``. Cost rules (``cost_optimum``, ``cost_to_go``) use the cost
model they are evaluated under, as a practitioner who states ``m`` and ``n``
would. :func:`summarize` turns outcomes into JSON-able rows: medians with
their BCa bootstrap 95% intervals (:func:`alband.stats.bootstrap_interval`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from alband.stats import bootstrap_interval
from alband.stopping.cost import CostModel, StopOutcome, evaluate_rules, rule_keys
from alband.stopping.history import StopHistory
from alband.stopping.rules import StoppingRule

Array = jax.Array


@partial(jax.jit, static_argnums=0)
def rule_outcomes(
    rules: tuple[StoppingRule, ...], histories: StopHistory, test_accuracy: Array, costs: CostModel
) -> dict[str, StopOutcome]:
    """Outcomes of every rule, shape ``(G, S)`` (module docstring).

    ``histories`` and ``test_accuracy`` have a leading seed axis ``S``;
    ``costs`` holds ``G`` cost models. ``rules`` is static (a tuple of
    :class:`StoppingRule`, hashable when their params are Python floats).
    """

    def per_cost(cost: CostModel):
        return jax.vmap(lambda h, a: evaluate_rules(rules, h, a, cost))(histories, test_accuracy)

    return jax.vmap(per_cost)(CostModel(jnp.asarray(costs.cost_per_error, jnp.float32),
                                        jnp.asarray(costs.n_future, jnp.float32)))


def ordered_outcomes(rules: tuple[StoppingRule, ...], histories: StopHistory, test_accuracy: Array,
                     costs: CostModel) -> dict[str, StopOutcome]:
    """:func:`rule_outcomes` with the keys in the order of ``rules`` (:func:`alband.stopping.rule_keys`)."""
    out = rule_outcomes(rules, histories, test_accuracy, costs)
    return {key: out[key] for key in rule_keys(rules)}


def summarize(outcomes: dict[str, StopOutcome], *, relative: bool = True) -> list[dict]:
    """One row per rule over all cells of the outcome arrays: medians, 95% CIs, share that fired.

    ``relative`` adds the regret relative to the hindsight-optimal total cost
    (``regret / optimal_cost``), which is comparable across cost models.
    """
    rows = []
    for name, out in outcomes.items():
        regret = np.asarray(out.regret, np.float64)
        med, lo, hi = _median_interval(regret)
        row = {
            "rule": name,
            "episodes": int(regret.size),
            "fired_share": float(np.mean(np.asarray(out.fired))),
            "stop_round_median": float(np.median(np.asarray(out.round))),
            "optimal_round_median": float(np.median(np.asarray(out.optimal_round))),
            "labels_median": float(np.median(np.asarray(out.n_labeled))),
            "spent_usd_median": float(np.median(np.asarray(out.spent_usd))),
            "accuracy_median": float(np.median(np.asarray(out.accuracy))),
            "regret_usd_median": med,
            "regret_usd_ci95": [lo, hi],
            "regret_usd_mean": float(np.mean(regret)),
        }
        if relative:
            rel = regret / np.maximum(np.asarray(out.optimal_cost, np.float64), 1e-12)
            r_med, r_lo, r_hi = _median_interval(rel)
            row["relative_regret_median"] = r_med
            row["relative_regret_ci95"] = [r_lo, r_hi]
        rows.append(row)
    return rows


def _median_interval(values) -> tuple[float, float, float]:
    """Median and its BCa bootstrap 95% interval (NaNs dropped)."""
    interval = bootstrap_interval(values, np.median)
    return interval.estimate, interval.low, interval.high
