"""Stopping rules (core): when is the model good enough for the dollars still to spend?

Rules are pure, causal functions of the round history
(:class:`~alband.stopping.history.StopHistory`) returning one flag per round
(:mod:`alband.stopping.rules`); the signals they read are computed by
:mod:`alband.stopping.signals` in both the simulator and the live loop; the
cost model, the hindsight-optimal round and each rule's cost regret are in
:mod:`alband.stopping.cost`; every rule's outcomes over many simulated episodes
(medians and bootstrap intervals) in :mod:`alband.stopping.outcome_statistics`;
the validation rows held out of the test set in :mod:`alband.stopping.holdout`.
"""

from alband.stopping.cost import (
    CostModel,
    StopOutcome,
    evaluate_rules,
    hindsight_optimal_round,
    rule_keys,
    stop_outcome,
    total_cost,
)
from alband.stopping.history import StopHistory, history_from_rows
from alband.stopping.holdout import validation_split
from alband.stopping.rules import (
    COST_RULES,
    RULES,
    StoppingRule,
    available_rules,
    cost_to_go_terms,
    default_rules,
    estimated_total_cost,
    make_rule,
    rule_parameters,
    stopping_round,
    with_cost_model,
)
from alband.stopping.signals import (
    batch_uncertainty,
    batch_uncertainty_of,
    cohens_kappa,
    stop_set_indices,
    stop_set_key,
    stop_set_signals,
    validation_accuracy,
)

__all__ = [
    "COST_RULES",
    "RULES",
    "CostModel",
    "StopHistory",
    "StopOutcome",
    "StoppingRule",
    "available_rules",
    "batch_uncertainty",
    "batch_uncertainty_of",
    "cohens_kappa",
    "cost_to_go_terms",
    "default_rules",
    "estimated_total_cost",
    "evaluate_rules",
    "hindsight_optimal_round",
    "history_from_rows",
    "make_rule",
    "rule_keys",
    "rule_parameters",
    "stop_outcome",
    "stop_set_indices",
    "stop_set_key",
    "stop_set_signals",
    "stopping_round",
    "total_cost",
    "validation_accuracy",
    "validation_split",
    "with_cost_model",
]
