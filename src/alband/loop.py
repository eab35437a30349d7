"""The live active-learning loop (shell): the survey's Algorithm 1 with real annotators.

One call of :func:`live_rounds` yields one :class:`RoundEvent` per round:

    round 0: buy labels for the seed set, first_fit;
    round r: proposal = before_buy(...)   (context, the policy's batch)
             buy the fresh items of proposal.index the budget covers (this module)
             after_buy(...)               (the policy's update, warm-started refit, signals)
             stop when the rounds are done, the budget cannot cover the next
             item, or the pool is used up.

``before_buy``, ``after_buy`` and ``first_fit`` are the pure steps of
:mod:`alband.rounds`, the very functions :func:`alband.simulate.simulate`
calls in its scan, with the same keys: this module implements only the
purchase (annotators, budget guard, ledger), so with simulated annotators it
buys the very items the simulator predicts for that seed. The learner is
computed on the whole pool once per round (in ``before_buy``); ``after_buy``
reuses those probabilities for the policy's ``update`` (a policy whose update
reads the context, such as the linear bandits, no longer costs a second pool
pass: 0.9 ms per round on AG News, 10k x 384, 4 classes; a stateless policy's
update never read it). A selector outside the core (``selector``, e.g. an LLM
shown a shortlist: :mod:`alband.selection`) plugs in between ``before_buy`` and
the purchase: in the rounds it ``wants``, it is handed the round's context and
its own key (:func:`alband.selection.candidates.selection_key`) and returns the
indices to buy, which replace the proposal's (:func:`alband.rounds.with_index`;
round 0: the random seed set); it pays for itself through the run's ledger and
budget guard.

A generator (``generator``, :mod:`alband.generation`) runs in the rounds it
``wants``, after the proposal and before the purchase: it is shown where the
learner is weak (the pool probabilities of the proposal, the labels bought,
the validation set's confusion), writes new labelled items through paid
calls in the same ledger and budget guard (so it is paid before, and competes
with, the round's purchase), filters them, and the accepted ones join the
refit of ``after_buy`` as extra training rows (:class:`alband.rounds.ExtraRows`,
a fixed number of slots, empty ones weighing 0). They are never pool rows
(no policy selects them) and never evaluation rows: test and validation
accuracy are measured on the task's real rows only.

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

Several annotators and a router (``routing``, a :class:`RoutingSettings`).
Each fresh proposed item is routed in batch order by the steps of
:mod:`alband.purchase` (the purchase rule and the routed steps, the
simulator's own): the router's jitted
``decide`` sees the item's embedding, each arm's price quote (the arm's
``max_cost_usd`` for the item), the dollars left and the labels still to buy;
every arm of ``pay`` and of the audit is paid through the ledger protocol
above (one ledger row per (item, annotator)); the arms of ``pay`` are reserved
all or none (the first item they do not fit ends the purchases), the audit's
arms are added when they fit too. The label is the auditor's answer when the
auditor was paid (it is taken as truth), else ``label_arm``'s; the verdicts of
the other paid arms are fed back (``Feedback``) and the router updated. With
``feedback = "gold"`` (simulated annotators only) every paid arm is checked
against the pool's gold label instead, as in the simulator's free-feedback
setting. Keys follow the simulator's scheme, so with simulated annotators a
live run buys exactly the items, arms and labels :func:`alband.simulate.simulate`
predicts for the same seed; a resumed run reuses the answers the ledger holds
for each (item, annotator) and replays the router to the same state. The arms
of a preference task are judges (simulated, LLM or human, answering in pool
terms); a tie is a paid invalid answer, and a judge asking both orders of a
pair is refused (a routed item is one request per arm).

Costs the policy sees (``ctx.cost_usd``) and the price quotes come from
:func:`pool_costs_usd`, vectorised over the pool: a simulated annotator's
arrays, a human's flat price, and for an LLM annotator the byte bound its
``max_cost_usd`` reserves (UTF-8 bytes of the item's text plus the fixed
prompt overhead), checked against ``max_cost_usd`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.pair_orders import combine_orders, order_items
from alband.annotators.base import Annotator
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.annotators.simulated_judge import SimulatedLivePairJudge
from alband.costs.budget import Budget
from alband.errors import AlbandError, BudgetExhausted
from alband.models.base import Learner
from alband.policies.base import QueryPolicy
from alband.pool import empty_label_state, n_labeled, record_annotations
from alband.purchase.routed import (
    decide_item,
    finish_batch,
    init_carry,
    item_keys,
    observe_item,
    routing_setup,
)
from alband.purchase.rule import Payment, item_purchase
from alband.rounds import (
    Evaluation,
    ExtraRows,
    Pool,
    RoundSignals,
    RoundSpec,
    after_buy,
    before_buy,
    first_fit,
    initial_indices,
    pseudo_label_summary,
    query_key,
    round_context,
    run_keys,
    with_index,
)
from alband.routing.base import Router
from alband.routing.label_weights import check_label_weight
from alband.stopping.history import history_from_rows
from alband.stopping.rules import StoppingRule
from alband.live.paid_call import Skipped, paid_call
from alband.stopping.signals import stop_set_indices, stop_set_key
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger
from alband.task import Task


FEEDBACK_MODES = ("audit", "gold")


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
    labels: list[int] = field(default_factory=list)  # per proposed item, -1 where not bought or invalid
    label_arms: list[int] = field(default_factory=list)  # arm that produced each label, -1 where not bought
    # a policy with pseudo-labels (QueryPolicy.pseudo_labels): pairs labelled free, and what asking would cost
    pseudo_labels: int | None = None
    dollars_saved_usd: float | None = None
    # with a generator: what this round generated, accepted and rejected, and the synthetic items trained on
    synthetic: dict | None = None

    def metrics(self) -> dict:
        """The round's line of ``metrics.jsonl``."""
        extra = {} if self.pseudo_labels is None else {"pseudo_labels": self.pseudo_labels,
                                                        "dollars_saved_usd": self.dollars_saved_usd}
        if self.synthetic is not None:
            extra["synthetic"] = self.synthetic
        return {**extra,
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

    learner: Learner  # any alband.models.base.Learner (hashable)
    policy: QueryPolicy
    n_initial: int
    batch_size: int
    n_rounds: int
    seed: int
    budget_usd: float
    stopping: StoppingRule | None = None
    stop_set_size: int = 500
    initial: str = "random"  # how round 0's seed set is drawn: "random" | "kmeans" (alband.cold_start)


@dataclass(frozen=True)
class RoutingSettings:
    """How a live run with several annotators routes items (module docstring).

    ``auditor`` is the arm index of the auditor (-1: none); ``feedback`` is
    ``"audit"`` (verdicts against the auditor's answer, observed only when it
    is paid) or ``"gold"`` (every paid arm against the gold label; simulated
    annotators only); ``label_weight`` is a mode of
    :mod:`alband.routing.label_weights`, ``configured_weights`` the
    annotators' configured weights in arm order (default 1).
    """

    router: Router
    auditor: int = -1
    feedback: str = "audit"
    label_weight: str = "configured"
    configured_weights: tuple[float, ...] | None = None


def pool_costs_usd(annotator: Annotator, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """``(expected, largest)`` dollars of asking ``annotator`` about each pool item (float64, (N,)).

    The largest is the amount the budget reserves before the call (and the
    router's price quote): the annotator's vectorised
    :meth:`~alband.annotators.base.Annotator.max_cost_usd_many`, equal to its
    per-item ``max_cost_usd`` without building a prompt per item. The expected
    one is what cost-aware policies see: a simulated annotator's actual price,
    else the same bound.
    """
    if isinstance(annotator, SimulatedLiveAnnotator):
        bound = np.fromiter((annotator.max_cost_usd(Item(i, "", "")) for i in range(task.n_items)), np.float64,
                            task.n_items)
        return annotator.expected_cost_usd(), bound
    bound = np.asarray(annotator.max_cost_usd_many([task.text(i) for i in range(task.n_items)]), np.float64)
    # a judge asking both orders makes two requests per pair (each reserved on its own)
    return bound * (2.0 if getattr(annotator, "both_orders", False) else 1.0), bound


class _StopWatch:
    """The round history of a live run and its stopping rule (the signals :func:`alband.rounds.after_buy` returns)."""

    def __init__(self, rule: StoppingRule, n_rounds: int) -> None:
        self.rule = rule
        self.flags = jax.jit(rule.fn)
        self.n_rounds = n_rounds
        self.rows: list[dict] = []

    def observe(self, signals: RoundSignals, state, exhausted: bool, uncertainty: float) -> bool:
        """Record the round just finished; True when the rule flags it."""
        self.rows.append({
            "n_labeled": int(n_labeled(state)),
            "n_queried": int(state.n_train),
            "spent_usd": float(state.spent_usd),  # the core's float32 sum, as in the simulator
            "exhausted": bool(exhausted),
            "validation_accuracy": float(signals.validation_accuracy),
            "kappa": float(signals.kappa),
            "change_rate": float(signals.change_rate),
            "mean_confidence": float(signals.confidence),
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
            if pool_index < 0 or queried[pool_index] or self.exhausted:  # -1: a slot the policy left empty
                continue
            requests = self._requests(pool_index)
            if len(requests) > 1:
                outcome = self._buy_orders(round_index, requests)
                if outcome is None:
                    continue
                label, cost, new, n_reused = outcome
                bought += new
                reused += n_reused
                accepted[k], labels[k], costs[k] = True, label, cost
                continue
            item_id = requests[0].item_id
            annotation = self.ledger.annotation_for(item_id, self.annotator.name)
            if annotation is not None:
                reused += 1
            elif self.ledger.skip_for(item_id, self.annotator.name) is not None:
                continue  # given up earlier (recorded in the ledger): not bought again
            else:
                annotation = self._purchase(round_index, requests[0])
                if annotation is None:
                    self.exhausted = True
                    continue
                if isinstance(annotation, Skipped):
                    continue
                bought.append(annotation)
            accepted[k] = True
            labels[k] = -1 if annotation.label is None else annotation.label
            costs[k] = annotation.cost_usd
        return labels, accepted, costs, bought, reused

    def _requests(self, pool_index: int) -> list[Item]:
        """The requests that annotate a pool item: the item, or one per order for a judge asking both orders."""
        item = self.task.item(pool_index)
        return order_items(item, both_orders=bool(getattr(self.annotator, "both_orders", False)))

    def _buy_orders(self, round_index: int, requests: list[Item]):
        """A pair asked in both orders: all orders reserved together (all or none), each its own paid call.

        Returns ``(label, cost, bought, reused)`` -- the label only when the
        orders agree (:func:`alband.annotators.pair_orders.combine_orders`),
        the dollars of both -- or None when the budget cannot cover the orders
        still to buy (purchases end). An order given up (skipped) leaves the
        pair judged invalid, paid for what it cost.
        """
        name = self.annotator.name
        known = {item.item_id: self.ledger.annotation_for(item.item_id, name)
                 or self.ledger.skip_for(item.item_id, name) for item in requests}
        missing = [item for item in requests if known[item.item_id] is None]
        max_costs = [float(self.annotator.max_cost_usd(item)) for item in missing]
        reservations = []
        try:
            for amount in max_costs:
                reservations.append(self.guard.reserve(amount))
        except BudgetExhausted:
            for reservation in reservations:
                self.guard.release(reservation)
            self.exhausted = True
            return None
        bought = []
        for item, amount, reservation in zip(missing, max_costs, reservations):
            answer = paid_call(self.ledger, self.guard, self.annotator, round_index, item, amount, reservation)
            known[item.item_id] = answer
            if isinstance(answer, Annotation):
                bought.append(answer)
        answers = [known[item.item_id] for item in requests]
        if any(isinstance(a, Skipped) or getattr(a, "status", "") == "skipped" for a in answers):
            label = -1
        else:
            verdict = combine_orders(answers)
            label = -1 if verdict.label is None else verdict.label
        cost = sum(float(a.cost_usd) for a in answers if isinstance(a, Annotation))
        return label, cost, bought, len(requests) - len(missing)

    def _purchase(self, round_index: int, item: Item) -> Annotation | Skipped | None:
        max_cost = float(self.annotator.max_cost_usd(item))
        try:
            reservation = self.guard.reserve(max_cost)
        except BudgetExhausted:
            return None
        return paid_call(self.ledger, self.guard, self.annotator, round_index, item, max_cost, reservation)


@lru_cache(maxsize=64)
def _routing_steps(router: Router, auditor: int, capacity: int):
    """The jitted per-item steps of a router (cached: a resumed or repeated run does not recompile)."""
    return jax.jit(partial(decide_item, router, auditor, capacity)), jax.jit(partial(observe_item, router, auditor))


_finish_batch = jax.jit(finish_batch, static_argnames=("label_weight", "auditor"))


class _RoutedPurchaser:
    """Buys the items of one batch in order, each from the arms its router names (module docstring)."""

    def __init__(self, annotators: Sequence[Annotator], routing: RoutingSettings, ledger: Ledger,
                 guard: BudgetGuard, task: Task, annotate_key, quote_usd: np.ndarray, budget_usd: float,
                 capacity: int) -> None:
        self.annotators = list(annotators)
        self.routing = routing
        self.ledger = ledger
        self.guard = guard
        self.task = task
        self.annotate_key = annotate_key
        self.capacity = capacity
        self.exhausted = False
        n_arms = len(self.annotators)
        self.auditor = routing.auditor if routing.feedback == "audit" else -1
        self.quote = jnp.asarray(quote_usd, jnp.float32)  # (K, N)
        self.budget = jnp.float32(budget_usd)
        self.x = jnp.asarray(task.x)
        self.gold = np.asarray(task.y, np.int32)
        weights = routing.configured_weights or (1.0,) * n_arms
        self.configured = jnp.asarray(weights, jnp.float32)
        router = routing.router
        setup = routing_setup(self.quote, task.x.shape[1], self.auditor, self.budget, capacity)
        self.carry = init_carry(router, setup, capacity)
        self._decide, self._observe = _routing_steps(router, self.auditor, capacity)

    def buy(self, round_index: int, index: np.ndarray, state):
        batch = index.shape[0]
        labels = np.full(batch, -1, np.int32)
        accepted = np.zeros(batch, bool)
        spend = np.zeros(batch, np.float32)
        source = np.full(batch, -1, np.int32)
        bought: list[Annotation] = []
        reused = 0
        queried = np.asarray(state.queried)
        spent = state.spent_usd  # the core's float32 running sum, as in the simulator's scan
        n_train = int(state.n_train)
        keys = item_keys(self.annotate_key, round_index, batch)
        for pos, pool_index in enumerate(index.tolist()):
            if pool_index < 0 or queried[pool_index] or self.exhausted:  # -1: a slot the policy left empty
                continue
            k_decide, k_update = jax.random.split(keys[pos])
            ctx, stop, payment = self._decide(self.carry.router, jnp.int32(pool_index), self.x[pool_index],
                                              self.quote[:, pool_index], spent, self.budget,
                                              jnp.int32(n_train), k_decide)
            outcome = self._pay(round_index, pool_index, Payment(*(np.asarray(v) for v in payment)), bool(stop))
            if outcome is None:
                continue
            paid, answers, costs, new, n_reused = outcome
            bought += new
            reused += n_reused
            self.carry, label, arm, item_spend = self._observe(
                self.carry, ctx, payment.label_arm, jnp.asarray(paid), jnp.asarray(answers),
                jnp.asarray(costs), jnp.int32(self.gold[pool_index]), jnp.bool_(True), k_update,
            )
            accepted[pos] = True
            labels[pos], source[pos], spend[pos] = int(label), int(arm), float(item_spend)
            spent = spent + item_spend
            n_train += 1
        state, self.carry = _finish_batch(
            state, self.carry, jnp.asarray(index), jnp.asarray(labels), jnp.asarray(accepted), jnp.asarray(spend),
            jnp.asarray(source), label_weight=self.routing.label_weight, configured_weight=self.configured,
            auditor=self.auditor,
        )
        return state, labels, accepted, source, bought, reused

    def _reserve_all(self, arms, max_costs) -> list | None:
        """Guard reservations for ``arms``, all or none."""
        taken = []
        for k in arms:
            try:
                taken.append(self.guard.reserve(max_costs[k]))
            except BudgetExhausted:
                for reservation in taken:
                    self.guard.release(reservation)
                return None
        return taken

    def _pay(self, round_index: int, pool_index: int, payment: Payment, stop_asked: bool):
        """Buy one fresh item under the purchase rule (:func:`alband.purchase.rule.item_purchase`).

        The quotes are the arms' ``max_cost_usd`` (0 for an answer the ledger
        already holds), tested against the guard's float64 dollars; the arms
        paid are then reserved, all or none. Returns ``(paid, answers, costs,
        bought, reused)``, or None when the item is not bought (``exhausted``
        is set when purchases have ended).
        """
        n_arms = len(self.annotators)
        item = self.task.item(pool_index)
        wanted = payment.pay | payment.audit
        # A pair given up earlier (a ledger 'skipped' row) reads as an invalid answer, as when it was given up.
        known = {k: self.ledger.annotation_for(item.item_id, self.annotators[k].name)
                 or self.ledger.skip_for(item.item_id, self.annotators[k].name)
                 for k in np.flatnonzero(wanted).tolist()}
        max_costs = {k: float(self.annotators[k].max_cost_usd(item)) for k, a in known.items() if a is None}
        quote = np.zeros(n_arms, np.float64)
        for k, amount in max_costs.items():
            quote[k] = amount
        budget = self.guard.budget
        take, paid, stopped = item_purchase(payment, np.bool_(stop_asked), quote,
                                            budget.spent_usd + budget.reserved_usd, budget.limit_usd,
                                            np.bool_(True), np.bool_(self.exhausted), xp=np)
        self.exhausted = bool(stopped)
        if not take:
            return None
        reservations = self._reserve_all([k for k in np.flatnonzero(paid).tolist() if known[k] is None], max_costs)
        if reservations is None:  # another request took the dollars meanwhile
            self.exhausted = True
            return None
        open_reservations = dict(zip([k for k in np.flatnonzero(paid).tolist() if known[k] is None], reservations))
        answers = np.full(n_arms, -1, np.int32)
        costs = np.zeros(n_arms, np.float32)
        bought: list[Annotation] = []
        reused = 0
        try:
            for k in np.flatnonzero(paid).tolist():
                annotation = known[k]
                if annotation is not None:
                    reused += 1
                else:
                    annotation = self._call(round_index, item, k, max_costs[k], open_reservations.pop(k))
                    if not isinstance(annotation, Skipped):
                        bought.append(annotation)
                answers[k] = -1 if annotation.label is None else annotation.label
                costs[k] = annotation.cost_usd
        finally:
            for reservation in open_reservations.values():  # arms not called (a failure ended the item)
                self.guard.release(reservation)
        return paid, answers, costs, bought, reused

    def _call(self, round_index: int, item: Item, arm: int, max_cost: float, reservation) -> Annotation | Skipped:
        return paid_call(self.ledger, self.guard, self.annotators[arm], round_index, item, max_cost, reservation)


def live_rounds(
    settings: LoopSettings,
    task: Task,
    annotator: Annotator | Sequence[Annotator],
    ledger: Ledger,
    *,
    expected_cost_usd: np.ndarray | None = None,
    label_weight: float = 1.0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    routing: RoutingSettings | None = None,
    aux=(),
    selector=None,
    generator=None,
) -> Iterator[RoundEvent]:
    """Run (or resume) the loop, yielding one event per round (module docstring).

    Without ``routing``, ``annotator`` labels every item and its labels weigh
    ``label_weight``; with it, ``annotator`` is the sequence of annotators in
    arm order. ``expected_cost_usd`` overrides what the policy sees as each
    item's cost ((N,), or (K, N) with routing, averaged over the arms).
    ``validation`` = ``(x_val, y_val)``, a labelled validation set for rules that read it.
    ``aux`` is the task's side information for the policies (``RoundContext.aux``).
    ``selector`` (an :class:`alband.selection.llm_selector.Selector`, optional)
    chooses the batches of the rounds it wants (module docstring).
    ``generator`` (an :class:`alband.generation.generator.Generator`, optional)
    adds generated items to the training rows of the rounds it wants.
    """
    n_items, n_features = task.x.shape
    if settings.n_initial > n_items:
        raise AlbandError(f"initial_labels={settings.n_initial} is larger than the pool ({n_items} items)")
    if settings.batch_size > n_items:
        raise AlbandError(f"batch_size={settings.batch_size} is larger than the pool ({n_items} items)")

    keys = run_keys(settings.seed)
    x = jnp.asarray(task.x)
    x_test, y_test = jnp.asarray(task.x_test), jnp.asarray(task.y_test)
    guard = BudgetGuard(Budget(settings.budget_usd, spent_usd=ledger.spent_usd()))
    capacity = settings.n_initial + settings.batch_size * settings.n_rounds
    if routing is None:
        if expected_cost_usd is None:
            expected_cost_usd = pool_costs_usd(annotator, task)[0]
        cost = jnp.asarray(expected_cost_usd, jnp.float32)
        purchaser = _Purchaser(annotator, ledger, guard, task)
    else:
        annotators = _check_routing(routing, annotator, task)
        costs = [pool_costs_usd(a, task) for a in annotators]
        expected = np.stack([c[0] for c in costs]) if expected_cost_usd is None else np.asarray(expected_cost_usd)
        cost = jnp.mean(jnp.asarray(expected, jnp.float32), axis=0) if expected.ndim == 2 else jnp.asarray(
            expected, jnp.float32)
        purchaser = _RoutedPurchaser(annotators, routing, ledger, guard, task, keys.annotate,
                                     np.stack([c[1] for c in costs]), settings.budget_usd, capacity)
    state = empty_label_state(n_items, capacity)
    if settings.stopping is not None and settings.stopping.needs_validation and validation is None:
        raise AlbandError(f"stopping rule '{settings.stopping.name}' needs a validation set")
    watch = None if settings.stopping is None else _StopWatch(settings.stopping, settings.n_rounds)
    spec = RoundSpec(settings.learner, settings.policy, settings.n_initial, settings.batch_size)
    pool = Pool(x, cost, aux)
    x_val, y_val = (None, None) if validation is None else (jnp.asarray(v) for v in validation)
    x_stop = x[stop_set_indices(stop_set_key(keys.init), n_items, settings.stop_set_size)]
    evaluation = Evaluation(x_test, y_test, x_stop, x_val, y_val)

    def buy(round_index: int, index):
        nonlocal state
        index = np.asarray(index)
        if routing is not None:
            state, labels, accepted, arms, bought, reused = purchaser.buy(round_index, index, state)
            return labels, accepted, arms, bought, reused
        labels, accepted, costs, bought, reused = purchaser.buy(
            round_index, index, np.asarray(state.queried)
        )
        state = record_annotations(
            state, jnp.asarray(index), jnp.asarray(labels), jnp.asarray(accepted), jnp.asarray(costs), label_weight
        )
        return labels, accepted, np.where(accepted, 0, -1), bought, reused

    extra_rows = None
    if generator is not None:
        slots = max(1, generator.capacity(settings.n_rounds))
        extra_rows = ExtraRows(jnp.zeros((slots, n_features), jnp.float32), jnp.zeros(slots, jnp.int32),
                               jnp.zeros(slots, jnp.float32))

    def generate(round_index: int, proposal) -> dict | None:
        """The generator's round (module docstring); the accepted items written into ``extra_rows``."""
        nonlocal extra_rows
        if generator is None:
            return None
        outcome = {}
        if generator.wants(round_index):
            filled = int(state.n_train)
            bought = np.asarray(state.train_label[:filled])
            bought = bought[(bought >= 0) & (np.asarray(state.train_weight[:filled]) > 0)]
            val_probs = None if x_val is None else np.asarray(settings.learner.predict_proba(params, x_val))
            record = generator.generate(
                round_index, probs=np.asarray(proposal.probs), queried=np.asarray(state.queried),
                train_labels=bought, n_real=int(n_labeled(state)), ledger=ledger, guard=guard,
                val_true=None if y_val is None else np.asarray(y_val), val_probs=val_probs)
            outcome = record.metrics()
            n = len(generator.accepted_ids)
            extra_rows = ExtraRows(extra_rows.x.at[:n].set(jnp.asarray(generator.accepted_x)),
                                   extra_rows.y.at[:n].set(jnp.asarray(generator.accepted_y)),
                                   extra_rows.weight.at[:n].set(generator.settings.weight))
        return {**outcome, "n_synthetic": len(generator.accepted_ids)}

    def event(round_index, index, bought_round, signals: RoundSignals, stop_reason=None,
              synthetic: dict | None = None) -> RoundEvent:
        pseudo = {}
        if settings.policy.pseudo_labels is not None:
            count, usd = pseudo_label_summary(settings.policy, policy_state, state, cost)
            pseudo = {"pseudo_labels": int(count), "dollars_saved_usd": float(usd)}
        labels, accepted, arms, bought, reused = bought_round
        return RoundEvent(
            round=round_index,
            n_labeled=int(n_labeled(state)),
            n_queried=int(state.n_train),
            spent_usd=guard.budget.spent_usd,
            test_accuracy=float(signals.test_accuracy),
            bought=bought,
            reused=reused,
            proposed=[int(i) for i in index],
            accepted=[bool(a) for a in accepted],
            stop_reason=stop_reason,
            labels=[int(v) if a else -1 for v, a in zip(labels, accepted)],
            label_arms=[int(v) for v in arms],
            synthetic=synthetic,
            **pseudo,
        )

    def select(round_index: int, params, probs, size: int):
        from alband.selection.candidates import selection_key

        ctx = round_context(settings.learner, pool, state, params, round_index,
                            max(1, settings.n_initial + settings.batch_size * (round_index - 1)), probs)
        return selector.choose(round_index, ctx, selection_key(keys, round_index), size, ledger, guard)

    initial = initial_indices(keys.init, x, settings.n_initial, settings.initial)
    if selector is not None and selector.wants(0):
        initial = jnp.asarray(select(0, settings.learner.init(n_features), None, settings.n_initial), jnp.int32)
    bought_round = buy(0, initial)
    params, policy_state, signals = first_fit(spec, pool, evaluation, state)
    stop = "budget exhausted" if purchaser.exhausted else ("rounds done" if settings.n_rounds == 0 else None)
    if watch is not None and watch.observe(signals, state, purchaser.exhausted, float("nan")):
        stop = stop or settings.stopping.name
    yield event(0, initial, bought_round, signals, stop)
    if stop:
        return

    for round_index in range(1, settings.n_rounds + 1):
        r = jnp.int32(round_index)
        proposal = before_buy(spec, pool, state, params, policy_state, r, query_key(keys, r))
        if selector is not None and selector.wants(round_index, proposal):
            proposal = with_index(proposal, select(round_index, params, proposal.probs, settings.batch_size))
        synthetic = generate(round_index, proposal)
        before = state
        bought_round = buy(round_index, proposal.index)
        labels, accepted = bought_round[0], bought_round[1]
        params, policy_state, signals = after_buy(
            spec, pool, evaluation, before, state, params, proposal, jnp.asarray(labels), jnp.asarray(accepted),
            r, signals.prediction, extra_rows,
        )
        if purchaser.exhausted:
            stop = "budget exhausted"
        elif round_index == settings.n_rounds:
            stop = "rounds done"
        elif bool(jnp.all(state.queried)):
            stop = "pool exhausted"
        if watch is not None and watch.observe(signals, state, purchaser.exhausted, float(proposal.uncertainty)):
            stop = stop or settings.stopping.name
        yield event(round_index, np.asarray(proposal.index), bought_round, signals, stop, synthetic)
        if stop:
            return


def _check_routing(routing: RoutingSettings, annotators, task: Task) -> list[Annotator]:
    """The annotators of a routed run, in arm order, after checking the routing settings against them."""
    if isinstance(annotators, (str, bytes)) or not isinstance(annotators, Sequence):
        raise AlbandError("with routing settings, pass the annotators as a sequence in arm order")
    annotators = list(annotators)
    if not annotators:
        raise AlbandError("a routed run needs at least one annotator")
    names = [a.name for a in annotators]
    if len(set(names)) != len(names):
        raise AlbandError(f"annotator names must be unique within a run, got {names}")
    if not -1 <= routing.auditor < len(annotators):
        raise AlbandError(f"auditor arm {routing.auditor} is not one of the {len(annotators)} annotators (or -1)")
    check_label_weight(routing.label_weight)
    if routing.configured_weights is not None and len(routing.configured_weights) != len(annotators):
        raise AlbandError(f"configured_weights has {len(routing.configured_weights)} entries for "
                          f"{len(annotators)} annotators")
    both = [a.name for a in annotators if getattr(a, "both_orders", False)]
    if both:
        raise AlbandError(f"annotator '{both[0]}' asks both orders of a pair: routed runs buy one request per arm "
                          "and item (set both_orders = false, or use it without [routing])")
    if routing.feedback not in FEEDBACK_MODES:
        raise AlbandError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {routing.feedback!r}")
    if routing.feedback == "gold":
        real = [a.name for a in annotators if not isinstance(a, (SimulatedLiveAnnotator, SimulatedLivePairJudge))]
        if real:
            raise AlbandError(f"feedback = 'gold' checks answers against the pool's gold labels, a simulation "
                              f"convenience: annotator '{real[0]}' is not simulated (use feedback = 'audit')")
        task.require_gold("feedback = 'gold'")
    return annotators
