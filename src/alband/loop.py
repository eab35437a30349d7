"""The live active-learning loop (shell): the survey's Algorithm 1 with real annotators.

One call of :func:`live_rounds` yields one :class:`RoundEvent` per round:

    round 0: buy labels for the seed set, train;
    round r: propose a batch (the policy), buy the fresh items the budget covers,
             train (warm start), evaluate; stop when the rounds are done, the
             budget cannot cover the next item, or the pool is used up.

It calls the same jitted steps as :func:`alband.simulate.simulate`
(:mod:`alband.rounds`) with the same keys, so with simulated annotators it
buys the very items the simulator predicts for that seed.

With a stopping rule (``LoopSettings.stopping``, :mod:`alband.stopping`) the
loop records after each round the signals the simulator records (stop-set
kappa, change rate and mean confidence, the batch's largest uncertainty, the
validation accuracy when a validation set is given), evaluates the rule on
the history so far and stops with ``stop_reason`` = the rule's name after the
first round it flags -- the round the simulator predicts for the same seed.

Every purchase follows the ledger protocol (:mod:`alband.store.ledger`):
reserve the annotator's largest possible cost in the budget guard and in the
ledger, make the call, settle both with the actual cost; the settled row is
committed before the next request. A resumed run replays the rounds from the
start: items whose answers are in the ledger are taken from it, not bought
again, and the budget starts from everything the ledger holds (reservations
left by a crash included), so a resumed run never exceeds its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from alband.annotators.base import Annotation, Annotator, Item
from alband.costs.budget import Budget
from alband.errors import AlbandError, AnnotatorError, BudgetExhausted
from alband.models.softmax_regression import SoftmaxRegression, accuracy, init_params
from alband.policies.base import QueryPolicy
from alband.pool import empty_label_state, n_labeled, record_annotations
from alband.rounds import (
    initial_indices,
    propose,
    query_key,
    round_context,
    run_keys,
    train,
    update_policy,
)
from alband.stopping.history import history_from_rows
from alband.stopping.rules import StoppingRule
from alband.stopping.signals import (
    batch_uncertainty_of,
    stop_set_indices,
    stop_set_key,
    stop_set_signals,
    validation_accuracy,
)
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger
from alband.task import Task


@dataclass
class RoundEvent:
    """What one round of the live loop did."""

    round: int
    n_labeled: int
    n_queried: int
    spent_usd: float
    test_accuracy: float
    bought: list[Annotation] = field(default_factory=list)
    reused: int = 0
    proposed: list[int] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    stop_reason: str | None = None

    def metrics(self) -> dict:
        """The round's line of ``metrics.jsonl``."""
        return {
            "round": self.round,
            "n_labeled": self.n_labeled,
            "n_queried": self.n_queried,
            "spent_usd": self.spent_usd,
            "test_accuracy": self.test_accuracy,
            "bought": len(self.bought),
            "reused": self.reused,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True)
class LoopSettings:
    """The static settings of a live run."""

    learner: SoftmaxRegression
    policy: QueryPolicy
    n_initial: int
    batch_size: int
    n_rounds: int
    seed: int
    budget_usd: float
    stopping: StoppingRule | None = None
    stop_set_size: int = 500


class _StopWatch:
    """The round history of a live run and its stopping rule (same signals as the simulator)."""

    def __init__(self, rule: StoppingRule, keys, x, n_rounds: int, stop_set_size: int, validation) -> None:
        self.rule = rule
        self.flags = jax.jit(rule.fn)
        self.n_rounds = n_rounds
        index = stop_set_indices(stop_set_key(keys.init), x.shape[0], stop_set_size)
        self.x_stop = x[index]
        self.previous = jnp.zeros(index.shape, jnp.int32)
        self.validation = None if validation is None else tuple(jnp.asarray(v) for v in validation)
        self.rows: list[dict] = []

    def observe(self, params, state, exhausted: bool, uncertainty: float) -> bool:
        """Record the round just finished; True when the rule flags it."""
        has_previous = jnp.bool_(bool(self.rows))
        prediction, kappa, change, confidence = stop_set_signals(params, self.x_stop, self.previous, has_previous)
        self.previous = prediction
        self.rows.append({
            "n_labeled": int(n_labeled(state)),
            "n_queried": int(state.n_train),
            "spent_usd": float(state.spent_usd),  # the core's float32 sum, as in the simulator
            "exhausted": bool(exhausted),
            "validation_accuracy": float("nan") if self.validation is None
            else float(validation_accuracy(params, *self.validation)),
            "kappa": float(kappa),
            "change_rate": float(change),
            "mean_confidence": float(confidence),
            "batch_uncertainty": float(uncertainty),
        })
        flags = self.flags(history_from_rows(self.rows, self.n_rounds), self.rule.params)
        return bool(flags[len(self.rows) - 1])


class _Purchaser:
    """Buys the items of one batch in order: ledger reuse, reserve, call, settle."""

    def __init__(self, annotator: Annotator, ledger: Ledger, guard: BudgetGuard, task: Task) -> None:
        self.annotator = annotator
        self.ledger = ledger
        self.guard = guard
        self.task = task
        self.exhausted = False

    def buy(self, round_index: int, index: np.ndarray, queried: np.ndarray):
        labels = np.full(index.shape, -1, np.int32)
        accepted = np.zeros(index.shape, bool)
        costs = np.zeros(index.shape, np.float32)
        bought: list[Annotation] = []
        reused = 0
        for k, pool_index in enumerate(index.tolist()):
            if queried[pool_index] or self.exhausted:
                continue
            annotation = self.ledger.annotation_for(pool_index, self.annotator.name)
            if annotation is not None:
                reused += 1
            else:
                annotation = self._purchase(round_index, pool_index)
                if annotation is None:
                    self.exhausted = True
                    continue
                bought.append(annotation)
            accepted[k] = True
            labels[k] = -1 if annotation.label is None else annotation.label
            costs[k] = annotation.cost_usd
        return labels, accepted, costs, bought, reused

    def _purchase(self, round_index: int, pool_index: int) -> Annotation | None:
        item = Item(pool_index, str(self.task.ids[pool_index]), self.task.text(pool_index))
        max_cost = float(self.annotator.max_cost_usd(item))
        try:
            reservation = self.guard.reserve(max_cost)
        except BudgetExhausted:
            return None
        row = self.ledger.reserve(round_index, pool_index, item.item_id, self.annotator.name, max_cost)
        try:
            annotation = self.annotator.annotate(item)
        except AnnotatorError:
            # The annotator reports that the request failed without billing.
            self.ledger.release(row)
            self.guard.release(reservation)
            raise
        # Any other exception (an interrupt, a crash) leaves the row 'reserved': the
        # call may have been billed, so the ledger keeps counting its reservation.
        self.ledger.settle(row, annotation)
        self.guard.settle(reservation, annotation.cost_usd)
        return annotation

def live_rounds(
    settings: LoopSettings,
    task: Task,
    annotator: Annotator,
    ledger: Ledger,
    *,
    expected_cost_usd: np.ndarray | None = None,
    label_weight: float = 1.0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[RoundEvent]:
    """Run (or resume) the loop, yielding one event per round (module docstring).

    ``validation`` = ``(x_val, y_val)``, a labelled validation set for rules that read it.
    """
    n_items, n_features = task.x.shape
    if settings.n_initial > n_items:
        raise AlbandError(f"initial_labels={settings.n_initial} is larger than the pool ({n_items} items)")
    if settings.batch_size > n_items:
        raise AlbandError(f"batch_size={settings.batch_size} is larger than the pool ({n_items} items)")

    keys = run_keys(settings.seed)
    x = jnp.asarray(task.x)
    x_test, y_test = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
    if expected_cost_usd is None:
        expected_cost_usd = np.array(
            [annotator.max_cost_usd(Item(i, str(task.ids[i]), task.text(i))) for i in range(n_items)]
        )
    cost = jnp.asarray(expected_cost_usd, jnp.float32)
    guard = BudgetGuard(Budget(settings.budget_usd, spent_usd=ledger.spent_usd()))
    purchaser = _Purchaser(annotator, ledger, guard, task)
    capacity = settings.n_initial + settings.batch_size * settings.n_rounds
    state = empty_label_state(n_items, capacity)
    learner = settings.learner
    if settings.stopping is not None and settings.stopping.needs_validation and validation is None:
        raise AlbandError(f"stopping rule '{settings.stopping.name}' needs a validation set")
    watch = None if settings.stopping is None else _StopWatch(
        settings.stopping, keys, x, settings.n_rounds, settings.stop_set_size, validation
    )

    def buy(round_index: int, index):
        nonlocal state
        index = np.asarray(index)
        labels, accepted, costs, bought, reused = purchaser.buy(
            round_index, index, np.asarray(state.queried)
        )
        state = record_annotations(
            state, jnp.asarray(index), jnp.asarray(labels), jnp.asarray(accepted), jnp.asarray(costs), label_weight
        )
        return labels, accepted, bought, reused

    def event(round_index, index, accepted, bought, reused, params, stop_reason=None) -> RoundEvent:
        return RoundEvent(
            round=round_index,
            n_labeled=int(n_labeled(state)),
            n_queried=int(state.n_train),
            spent_usd=guard.budget.spent_usd,
            test_accuracy=float(accuracy(params, x_test, y_test)),
            bought=bought,
            reused=reused,
            proposed=[int(i) for i in index],
            accepted=[bool(a) for a in accepted],
            stop_reason=stop_reason,
        )

    initial = initial_indices(keys.init, n_items, settings.n_initial)
    _, accepted, bought, reused = buy(0, initial)
    params = train(learner, init_params(learner, n_features), x, state)
    policy_state = settings.policy.init(round_context(x, state, params, cost, 0))
    stop = "budget exhausted" if purchaser.exhausted else ("rounds done" if settings.n_rounds == 0 else None)
    if watch is not None and watch.observe(params, state, purchaser.exhausted, float("nan")):
        stop = stop or settings.stopping.name
    yield event(0, initial, accepted, bought, reused, params, stop)
    if stop:
        return

    for round_index in range(1, settings.n_rounds + 1):
        r = jnp.int32(round_index)
        index, new_policy_state = propose(
            settings.policy, policy_state, x, state, params, cost, r, query_key(keys, r), settings.batch_size
        )
        before = state
        uncertainty = float(batch_uncertainty_of(params, x[jnp.asarray(index)])) if watch is not None else 0.0
        labels, accepted, bought, reused = buy(round_index, index)
        policy_state = update_policy(
            settings.policy, new_policy_state, x, before, params, cost, r,
            jnp.asarray(index), jnp.asarray(labels), jnp.asarray(accepted),
        )
        params = train(learner, params, x, state)
        if purchaser.exhausted:
            stop = "budget exhausted"
        elif round_index == settings.n_rounds:
            stop = "rounds done"
        elif bool(jnp.all(state.queried)):
            stop = "pool exhausted"
        if watch is not None and watch.observe(params, state, purchaser.exhausted, uncertainty):
            stop = stop or settings.stopping.name
        yield event(round_index, index, accepted, bought, reused, params, stop)
        if stop:
            return

