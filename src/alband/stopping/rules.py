"""Stopping rules as pure functions of the round history: ``flags = rule(history, params)``.

Every rule maps a :class:`~alband.stopping.history.StopHistory` (arrays of
shape ``(R+1,)``) and a params pytree to ``(R+1,)`` booleans; the run stops
after the first round whose flag is True (:func:`stopping_round`). Rules are
*causal* -- the flag at round ``r`` depends only on rounds ``0..r`` -- so the
live loop evaluates the same function on the prefix it has seen, and they are
jittable and vmappable over seeds and over params (windows and thresholds
are traced numbers, not static). Windowed sums use a causal 0/1 band matrix
(``(R+1)^2`` products: exact for these short series, unlike differences of
cumulative sums).

Rules (``r`` is the round, ``w`` a window):

* ``budget_exhausted``: the budget could not cover the next item.
* ``max_labels``: at least ``max_labels`` annotations bought.
* ``validation_plateau``: the best validation accuracy so far improved by at
  most ``min_delta`` over the last ``w`` rounds (early stopping with
  patience ``w``; Beatty et al. 2019 call it performance convergence on a
  labelled set). Needs a validation set; never fires without one.
* ``stabilizing_predictions`` (Bloodgood and Vijay-Shanker 2009): the mean of
  Cohen's kappa between successive models on the stop set over the last
  ``w = 3`` rounds is ``>= 0.99``.
* ``classification_change`` (Zhu, Wang and Hovy 2008): at most
  ``max_change_rate`` (default 0: none) of the stop-set predictions changed,
  for ``w`` consecutive rounds.
* ``max_uncertainty`` (Zhu et al. 2010): the most uncertain item of the
  batch the policy just proposed has least-confidence ``<= threshold``.
* ``overall_uncertainty`` (Zhu et al. 2010): the mean least-confidence on the
  stop set (the model's own error estimate, ``1 - mean max p``) is
  ``<= threshold``.
* ``cost_optimum``: Pullar-Strecker et al. 2024's total cost
  ``C_r = (1 - acc_r) n m + spent_r`` (``n`` future predictions, ``m``
  dollars per error, the labelling cost in real dollars) with the accuracy
  estimated by the model's mean confidence on the stop set; stop once the
  running minimum of the estimate has not improved for ``patience`` rounds
  (the estimated minimum lies behind). ``cost_optimum_validation`` is the
  same with the accuracy measured on a labelled validation set.
* ``cost_to_go`` (new; for heterogeneous annotators): stop when the predicted
  reduction in misclassification cost from the next batch is below that
  batch's dollar cost under the current annotator mix. With the model's own
  error estimate ``e_r = 1 - mean confidence`` on the stop set, over the last
  ``w`` rounds::

      gain per label  g_r = |e_{r-w} - e_r| / (q_r - q_{r-w})
      price per label p_r = (spent_r - spent_{r-w}) / (q_r - q_{r-w})
      stop when  g_r n m < p_r

  (``q`` = annotations bought). For a next batch of ``b`` labels the
  predicted saving is ``g_r b n m`` and its cost ``p_r b``: ``b`` cancels.
  Assumptions, stated plainly: (i) the model's confidence is calibrated
  enough that the *change* of ``1 - mean max p`` tracks the change of the
  true error. It is not, in two known ways: an L2-regularised softmax is
  under-confident and its confidence keeps rising with the number of labels
  after the accuracy has levelled off, so late slopes overstate the gain and
  the rule stops late; and uncertainty sampling first *lowers* the model's
  confidence (the labels it buys expose its mistakes) while the true error
  falls. The magnitude ``|.|`` reads such a rise as "the model is still
  changing" rather than as a zero gain, which would stop every run in its
  first rounds;
  (ii) the next batch helps as much per label as the last ``w`` batches did
  (diminishing returns make it optimistic, so it stops a little late);
  (iii) the recent mix of annotators (cheap LLM, strong LLM, human) and its
  price per label carry over to the next batch. It never fires over a window
  in which nothing was bought (then ``budget_exhausted`` applies).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.stopping.history import StopHistory

Array = jax.Array


# --------------------------------------------------------------------------- params


class NoParams(NamedTuple):
    """A rule without parameters."""


class MaxLabelsParams(NamedTuple):
    max_labels: float = 1000.0


class ValidationPlateauParams(NamedTuple):
    window: float = 5.0
    min_delta: float = 0.005


class StabilizingParams(NamedTuple):
    threshold: float = 0.99
    window: float = 3.0


class ClassificationChangeParams(NamedTuple):
    max_change_rate: float = 0.0
    window: float = 1.0


class UncertaintyParams(NamedTuple):
    threshold: float = 0.1


class CostOptimumParams(NamedTuple):
    cost_per_error: float = 0.1
    n_future: float = 10_000.0
    patience: float = 3.0


class CostToGoParams(NamedTuple):
    cost_per_error: float = 0.1
    n_future: float = 10_000.0
    window: float = 3.0


# --------------------------------------------------------------------------- helpers


def _rounds(series: Array) -> Array:
    return jnp.arange(series.shape[-1], dtype=jnp.int32)


def _window(params_window) -> Array:
    return jnp.maximum(jnp.asarray(params_window, jnp.float32).astype(jnp.int32), 1)


def _band(n: int, window: Array) -> Array:
    """``B[r, s] = 1`` for ``r - window < s <= r`` (causal window of ``window`` rounds)."""
    r = jnp.arange(n)[:, None]
    s = jnp.arange(n)[None, :]
    return ((s <= r) & (s > r - window)).astype(jnp.float32)


def _window_sum(values: Array, window: Array) -> Array:
    band = _band(values.shape[-1], window)
    return jnp.sum(band * values[None, :], axis=-1)


def _held_for(condition: Array, window: Array) -> Array:
    """True at ``r`` when ``condition`` held at each of the rounds ``r-w+1..r``."""
    count = _window_sum(condition.astype(jnp.float32), window)
    return count >= window.astype(jnp.float32)


def _lagged(series: Array, lag: Array) -> tuple[Array, Array]:
    """``series[r - lag]`` (clipped at 0) and whether ``r - lag >= 0``."""
    r = _rounds(series)
    return series[jnp.clip(r - lag, 0)], r >= lag


# --------------------------------------------------------------------------- rules


def budget_exhausted(history: StopHistory, params: NoParams = NoParams()) -> Array:
    return jnp.asarray(history.exhausted, bool)


def max_labels(history: StopHistory, params: MaxLabelsParams) -> Array:
    return history.n_queried.astype(jnp.float32) >= jnp.asarray(params.max_labels, jnp.float32)


def validation_plateau(history: StopHistory, params: ValidationPlateauParams) -> Array:
    val = history.validation_accuracy.astype(jnp.float32)
    has = ~jnp.isnan(val)
    best = jax.lax.cummax(jnp.where(has, val, -jnp.inf))
    window = _window(params.window)
    earlier, defined = _lagged(best, window)
    return defined & has & (best - earlier <= jnp.asarray(params.min_delta, jnp.float32))


def stabilizing_predictions(history: StopHistory, params: StabilizingParams) -> Array:
    kappa = history.kappa.astype(jnp.float32)
    has = ~jnp.isnan(kappa)
    window = _window(params.window)
    total = _window_sum(jnp.where(has, kappa, 0.0), window)
    complete = _held_for(has, window)
    return complete & (total / window.astype(jnp.float32) >= jnp.asarray(params.threshold, jnp.float32))


def classification_change(history: StopHistory, params: ClassificationChangeParams) -> Array:
    rate = history.change_rate.astype(jnp.float32)
    calm = rate <= jnp.asarray(params.max_change_rate, jnp.float32)  # False where NaN
    return _held_for(calm, _window(params.window))


def max_uncertainty(history: StopHistory, params: UncertaintyParams) -> Array:
    return history.batch_uncertainty.astype(jnp.float32) <= jnp.asarray(params.threshold, jnp.float32)


def overall_uncertainty(history: StopHistory, params: UncertaintyParams) -> Array:
    error = 1.0 - history.mean_confidence.astype(jnp.float32)
    return error <= jnp.asarray(params.threshold, jnp.float32)


def estimated_total_cost(history: StopHistory, cost_per_error, n_future) -> Array:
    """``(1 - mean confidence) n m + spent``: the total cost with the model's own accuracy estimate."""
    error = 1.0 - history.mean_confidence.astype(jnp.float32)
    m = jnp.asarray(cost_per_error, jnp.float32)
    n = jnp.asarray(n_future, jnp.float32)
    return error * n * m + history.spent_usd.astype(jnp.float32)


def _past_minimum(cost: Array, patience) -> Array:
    best = jax.lax.cummin(jnp.where(jnp.isnan(cost), jnp.inf, cost))
    earlier, defined = _lagged(best, _window(patience))
    return defined & ~jnp.isnan(cost) & (best >= earlier)


def cost_optimum(history: StopHistory, params: CostOptimumParams) -> Array:
    return _past_minimum(estimated_total_cost(history, params.cost_per_error, params.n_future), params.patience)


def cost_optimum_validation(history: StopHistory, params: CostOptimumParams) -> Array:
    error = 1.0 - history.validation_accuracy.astype(jnp.float32)
    cost = (error * jnp.asarray(params.n_future, jnp.float32) * jnp.asarray(params.cost_per_error, jnp.float32)
            + history.spent_usd.astype(jnp.float32))
    return _past_minimum(cost, params.patience)


def cost_to_go_terms(history: StopHistory, window) -> tuple[Array, Array, Array]:
    """``(gain per label g_r, price per label p_r, labels bought over the window)`` (module docstring)."""
    window = _window(window)
    error = 1.0 - history.mean_confidence.astype(jnp.float32)
    queried = history.n_queried.astype(jnp.float32)
    spent = history.spent_usd.astype(jnp.float32)
    error_then, defined = _lagged(error, window)
    queried_then, _ = _lagged(queried, window)
    spent_then, _ = _lagged(spent, window)
    bought = jnp.where(defined, queried - queried_then, 0.0)
    per = jnp.maximum(bought, 1.0)
    gain = jnp.abs(error_then - error) / per
    price = (spent - spent_then) / per
    return gain, price, bought


def cost_to_go(history: StopHistory, params: CostToGoParams) -> Array:
    gain, price, bought = cost_to_go_terms(history, params.window)
    value = gain * jnp.asarray(params.n_future, jnp.float32) * jnp.asarray(params.cost_per_error, jnp.float32)
    return (bought > 0) & (value < price)


# --------------------------------------------------------------------------- registry


class RuleSpec(NamedTuple):
    fn: Callable[[StopHistory, Any], Array]
    params: type
    needs_validation: bool = False
    integer_params: tuple[str, ...] = ()
    unit_params: tuple[str, ...] = ()  # must lie in [0, 1]


RULES: dict[str, RuleSpec] = {
    "budget_exhausted": RuleSpec(budget_exhausted, NoParams),
    "max_labels": RuleSpec(max_labels, MaxLabelsParams, integer_params=("max_labels",)),
    "validation_plateau": RuleSpec(validation_plateau, ValidationPlateauParams, True, ("window",), ("min_delta",)),
    "stabilizing_predictions": RuleSpec(stabilizing_predictions, StabilizingParams, False, ("window",), ("threshold",)),
    "classification_change": RuleSpec(classification_change, ClassificationChangeParams, False, ("window",),
                                      ("max_change_rate",)),
    "max_uncertainty": RuleSpec(max_uncertainty, UncertaintyParams, unit_params=("threshold",)),
    "overall_uncertainty": RuleSpec(overall_uncertainty, UncertaintyParams, unit_params=("threshold",)),
    "cost_optimum": RuleSpec(cost_optimum, CostOptimumParams, integer_params=("patience",)),
    "cost_optimum_validation": RuleSpec(cost_optimum_validation, CostOptimumParams, True, ("patience",)),
    "cost_to_go": RuleSpec(cost_to_go, CostToGoParams, integer_params=("window",)),
}

COST_RULES = ("cost_optimum", "cost_optimum_validation", "cost_to_go")


class StoppingRule(NamedTuple):
    """A named rule with its params; ``rule.flags(history)`` is ``rule.fn(history, rule.params)``."""

    name: str
    fn: Callable[[StopHistory, Any], Array]
    params: Any

    def flags(self, history: StopHistory) -> Array:
        return self.fn(history, self.params)

    @property
    def needs_validation(self) -> bool:
        return RULES[self.name].needs_validation


def available_rules() -> list[str]:
    return list(RULES)


def rule_parameters(name: str) -> dict[str, float]:
    """The parameter names of rule ``name`` and their defaults."""
    spec = _spec(name)
    return dict(spec.params._field_defaults)


def _spec(name: str) -> RuleSpec:
    try:
        return RULES[name]
    except KeyError:
        raise AlbandError(f"unknown stopping rule '{name}'; available: {', '.join(RULES)}") from None


def make_rule(name: str, **params) -> StoppingRule:
    """The rule registered as ``name`` with ``params`` (others at their defaults), validated."""
    spec = _spec(name)
    allowed = spec.params._fields
    for key, value in params.items():
        if key not in allowed:
            raise AlbandError(
                f"stopping rule '{name}': unknown parameter '{key}' (allowed: {', '.join(allowed) or 'none'})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AlbandError(f"stopping rule '{name}': parameter '{key}' must be a finite number, got {value!r}")
        if value < 0:
            raise AlbandError(f"stopping rule '{name}': parameter '{key}' must be >= 0, got {value!r}")
        if key in spec.integer_params and (value != int(value) or value < 1):
            raise AlbandError(f"stopping rule '{name}': parameter '{key}' must be an integer >= 1, got {value!r}")
        if key in spec.unit_params and value > 1:
            raise AlbandError(f"stopping rule '{name}': parameter '{key}' must be in [0, 1], got {value!r}")
    values = {**spec.params._field_defaults, **{k: float(v) for k, v in params.items()}}
    return StoppingRule(name, spec.fn, spec.params(**values))


def default_rules(cost_per_error: float = 0.1, n_future: float = 10_000.0, max_labels_: float = 1000.0
                  ) -> tuple[StoppingRule, ...]:
    """Every registered rule at its literature defaults; cost rules with the given cost model."""
    rules = []
    for name in RULES:
        if name in COST_RULES:
            rules.append(make_rule(name, cost_per_error=cost_per_error, n_future=n_future))
        elif name == "max_labels":
            rules.append(make_rule(name, max_labels=max_labels_))
        else:
            rules.append(make_rule(name))
    return tuple(rules)


def with_cost_model(rule: StoppingRule, cost_per_error, n_future) -> StoppingRule:
    """``rule`` with its cost model replaced (cost rules only; others unchanged). Traced values are fine."""
    if rule.name not in COST_RULES:
        return rule
    return rule._replace(params=rule.params._replace(cost_per_error=cost_per_error, n_future=n_future))


def stopping_round(flags: Array) -> Array:
    """The first round whose flag is True; the last round ``R`` when none is."""
    flags = jnp.asarray(flags, bool)
    last = flags.shape[-1] - 1
    return jnp.where(jnp.any(flags, axis=-1), jnp.argmax(flags, axis=-1), last).astype(jnp.int32)
