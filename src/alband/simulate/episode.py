"""A whole active-learning episode with simulated annotators, as one ``lax.scan``.

``simulate(config, data, annotator, budget_usd, key)`` runs the survey's
Algorithm 1 with the two pure steps of :mod:`alband.rounds` around a purchase
from simulated annotators (``before_buy`` -> purchase -> ``after_buy``, the
live loop's very steps):

0. buy labels for a random seed set of ``n_initial`` items, fit the learner;
1. for rounds ``r = 1..n_rounds``: propose a batch with the policy, buy the
   fresh items the budget covers (stopping at the first that does not fit),
   record them, update the policy, refit (warm start), evaluate on the test set.

Once the budget is exhausted, or the pool is used up, later rounds buy nothing
and repeat the last state, so every episode has the same shapes and
``jax.vmap`` runs many seeds (or annotator settings) in one call:
:func:`simulate_seeds`. The live loop (:mod:`alband.loop`) calls the same step
functions with the same keys, so for one seed it buys the same items.

Stopping signals. Each round also records what the stopping rules of
:mod:`alband.stopping` read (:func:`episode_history`): the accuracy on an
optional labelled validation set (``EpisodeData.x_val``), and on the run's
stop set (``config.stop_set_size`` pool items drawn from a key derived from
the seed, :func:`alband.stopping.stop_set_key`) Cohen's kappa and the change
rate between successive models and the mean max-probability, plus the largest
least-confidence of each proposed batch. Kappa is computed inside the scan
from the previous round's predictions, so only scalars are stored per round.

Annotator mixes. With ``config.router`` (an :class:`alband.routing.Router`)
the ``annotator`` is a stack of ``K`` simulated annotators (every field with a
leading axis ``K``, e.g. cheap LLM, strong LLM, human: :func:`stack_annotators`).
Within a batch the items are routed one by one, in batch order, by the steps
of :mod:`alband.purchase` (the one purchase rule, shared with the live loop): the router sees
the item's embedding, each arm's price quote (its reservation, the largest
possible cost, as a live annotator's ``max_cost_usd``), the dollars left and
the labels still to buy (the episode's remaining capacity), and names the arms
to pay and the arm whose answer is the label. The item is bought iff the paid
arms' reservations fit in the budget; the first item that does not fit (or a
``Decision.stop``) ends the purchases, as with one annotator. Feedback:

* ``config.auditor = -1`` (free feedback, a simulation convenience): the router
  learns each paid arm's correctness against the gold label; audits it asks
  for are not paid;
* ``config.auditor = a >= 0`` (audited): the audits the router asks for are
  paid (and counted in the spend) when they fit in the budget; the auditor's
  answer is the label and the verdicts "agrees with the auditor" of the other
  paid arms are observed only on items where the auditor was paid.

``config.label_weight`` sets the learner's weight of each label from the arm
that produced it (:mod:`alband.routing.label_weights`: ``"none"``,
``"configured"`` = ``annotator.label_weight``, ``"audited"`` = the arm's
posterior mean accuracy from the verdicts so far).
Arm ``k`` answers item ``i`` with the key ``fold_in(fold_in(annotate, k), i)``.
A stack of preference judges (:class:`~alband.simulate.judge_model.PairJudge`)
routes the same way; a judge's tie is a paid invalid answer (no label, and a
verdict "wrong" under free feedback).
Policies see the mean price over the arms as ``ctx.cost_usd``.

At scale (:func:`simulate_many`, :func:`simulate_grid`) the seeds are mapped
with ``lax.map`` in vmapped groups of ``vmap_width``: on CPU, vmapping the
learner's L-BFGS (a ``while_loop`` around a zoom line search full of
``while_loop``/``cond``) runs every lane to the slowest lane's iteration
count and both sides of every ``cond``, which measured 6-8x slower per seed
than one seed at a time; ``vmap_width=1`` avoids it and gives the same
numbers as :func:`simulate` seed by seed.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.models.base import Learner
from alband.policies.base import QueryPolicy
from alband.pool import LabelState, empty_label_state, n_labeled, record_annotations
from alband.purchase.routed import (  # noqa: F401  (ROUTE_STREAM re-exported)
    ROUTE_STREAM,
    RoutingCarry,
    arm_key,
    decide_item,
    finish_batch,
    init_carry,
    item_keys,
    observe_item,
    routing_setup,
)
from alband.purchase.rule import affordable, item_purchase
from alband.rounds import (
    Evaluation,
    Pool,
    RoundSpec,
    SelectedIndices,
    after_buy,
    before_buy,
    first_fit,
    initial_indices,
    query_key,
    run_keys,
    with_index,
)
from alband.routing.base import Router
from alband.simulate.annotator_model import (
    SimulatedAnnotator,
    annotation_cost_usd,
    noisy_labels,
    reserve_usd,
)
from alband.simulate.judge_model import PairJudge, judge_answers
from alband.stopping.history import StopHistory
from alband.stopping.signals import stop_set_indices, stop_set_key

Array = jax.Array


class EpisodeConfig(NamedTuple):
    """Static settings of an episode (hashable: a jit static argument)."""

    learner: Learner  # any alband.models.base.Learner (hashable)
    policy: QueryPolicy
    n_initial: int
    batch_size: int
    n_rounds: int
    stop_set_size: int = 500
    router: Router | None = None
    auditor: int = -1  # with a router: the auditor arm (audited setting), or -1 (free feedback against gold)
    label_weight: str = "configured"  # with a router: "none" | "configured" | "audited" (alband.routing.label_weights)
    initial: str = "random"  # how round 0's seed set is drawn: "random" | "kmeans" (alband.cold_start)

    @property
    def capacity(self) -> int:
        """The most annotations an episode can buy."""
        return self.n_initial + self.batch_size * self.n_rounds

    @property
    def round_spec(self) -> RoundSpec:
        """The static part of the round (:mod:`alband.rounds`)."""
        return RoundSpec(self.learner, self.policy, self.n_initial, self.batch_size)


class EpisodeData(NamedTuple):
    """Arrays of a task: pool (with gold labels and text lengths), test set, optional validation set."""

    x: Array  # (N, d) float32
    y: Array  # (N,) int32 gold
    text_chars: Array  # (N,) int32
    text_bytes: Array  # (N,) int32
    x_test: Array  # (T, d)
    y_test: Array  # (T,)
    x_val: Array | None = None  # (V, d) labelled validation set, or None
    y_val: Array | None = None  # (V,)
    aux: Any = ()  # task side information the policies read (RoundContext.aux)
    true_margin: Array | None = None  # (N,) a synthetic preference world's true reward margins (judge noise)


class EpisodeTrace(NamedTuple):
    """Per-round results; index 0 of the per-round arrays is the seed set."""

    n_labeled: Array  # (R+1,) valid labels bought so far
    n_queried: Array  # (R+1,) items paid for so far
    spent_usd: Array  # (R+1,)
    test_accuracy: Array  # (R+1,)
    exhausted: Array  # (R+1,) bool, budget ran out at or before this round
    initial_index: Array  # (n_initial,)
    initial_accepted: Array  # (n_initial,)
    query_index: Array  # (R, B) proposed pool indices
    query_accepted: Array  # (R, B) bought
    query_label: Array  # (R, B) the annotator's answers (valid where accepted)
    final_params: Any  # the learner's parameters after the last round
    validation_accuracy: Array  # (R+1,) NaN without a validation set
    stop_kappa: Array  # (R+1,) Cohen's kappa of rounds r-1, r on the stop set; NaN at 0
    stop_change_rate: Array  # (R+1,) share of stop-set predictions that changed; NaN at 0
    stop_confidence: Array  # (R+1,) mean max-probability on the stop set
    batch_uncertainty: Array  # (R+1,) largest least-confidence of the proposed batch; NaN at 0
    initial_arm: Array  # (n_initial,) annotator arm of each seed item (0 without a router), -1 if not bought
    query_arm: Array  # (R, B) annotator arm of each proposed item, -1 if not bought


def stack_annotators(annotators):
    """``K`` annotators (or ``K`` pair judges) as one with a leading arm axis (for ``config.router``).

    Every leaf gets a leading axis of size ``K``: a stack of
    :class:`SimulatedAnnotator` is a ``SimulatedAnnotator``, a stack of
    :class:`~alband.simulate.judge_model.PairJudge` a ``PairJudge`` (whose
    ``annotator`` is the stack of the judges' annotators). Mixing the two is
    an error.
    """
    kinds = {type(a) for a in annotators}
    if len(kinds) != 1:
        raise AlbandError(f"stack annotators of one kind (all SimulatedAnnotator or all PairJudge), got "
                          f"{sorted(k.__name__ for k in kinds)}")
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *annotators)


def arm_costs(annotator: SimulatedAnnotator, data: EpisodeData, routed: bool) -> tuple[Array, Array]:
    """Dollars and reservations per item: ``(N,)`` for one annotator, ``(K, N)`` for a stack."""
    if routed:
        cost = jax.vmap(annotation_cost_usd, in_axes=(0, None))(annotator, data.text_chars)
        reserve = jax.vmap(reserve_usd, in_axes=(0, None))(annotator, data.text_bytes)
        return cost, reserve
    return annotation_cost_usd(annotator, data.text_chars), reserve_usd(annotator, data.text_bytes)


@partial(jax.jit, static_argnums=0)
def simulate(
    config: EpisodeConfig,
    data: EpisodeData,
    annotator: SimulatedAnnotator | PairJudge,
    budget_usd: Array | float,
    key: Array,
    selection: SelectedIndices | None = None,
) -> EpisodeTrace:
    """One seeded episode (module docstring). Jitted; vmap over ``key`` or ``annotator``.

    ``annotator`` may be a preference judge (:class:`~alband.simulate.judge_model.PairJudge`):
    its answers are :func:`~alband.simulate.judge_model.judge_answers` (ties are invalid
    answers; the true margins of ``data`` drive Bradley-Terry noise), its prices its
    annotator's. With ``config.router`` it is a stack of ``K`` judges
    (:func:`stack_annotators`), arm ``k`` answering with ``arm_key(annotate, k)`` as a
    stack of annotators does.

    ``selection`` (optional) holds indices chosen outside the core -- a
    selection recorded by a live run's selector (:mod:`alband.selection.replay`)
    -- which replace the seed set and the proposals of the rounds it marks
    (:class:`alband.rounds.SelectedIndices`).
    """
    n_items, n_features = data.x.shape
    keys = run_keys(key)
    routed = config.router is not None
    judge = annotator if isinstance(annotator, PairJudge) else None
    if judge is not None:
        annotator = judge.annotator
    cost, reserve = arm_costs(annotator, data, routed)
    policy_cost = jnp.mean(cost, axis=0) if routed else cost
    budget_usd = jnp.asarray(budget_usd, jnp.float32)
    stop_index = stop_set_indices(stop_set_key(keys.init), n_items, config.stop_set_size)
    x_stop = data.x[stop_index]

    def buy(state: LabelState, index: Array, stopped: Array):
        accepted, exhausted = affordable(state, index, reserve, cost, budget_usd, stopped)
        if judge is None:
            labels = noisy_labels(annotator, keys.annotate, index, data.y[index])
        else:
            margin = None if data.true_margin is None else data.true_margin[index]
            labels = judge_answers(judge, keys.annotate, index, data.y[index], margin)
        state = record_annotations(state, index, labels, accepted, cost[index], annotator.label_weight)
        arm = jnp.where(accepted, 0, -1).astype(jnp.int32)
        return state, (), labels, accepted, exhausted, arm

    def buy_routed(state: LabelState, carry: RoutingCarry, index: Array, stopped: Array, round_index):
        router = config.router
        n_arms = cost.shape[0]
        gold = data.y[index]
        # answers[k, b]: arm k's answer to item index[b] (order-independent keys).
        arm_keys = jax.vmap(lambda k: arm_key(keys.annotate, k))(jnp.arange(n_arms))
        if judge is None:
            answers = jax.vmap(lambda ann, k: noisy_labels(ann, k, index, gold))(annotator, arm_keys)
        else:  # pair judges: -1 (a tie) is an invalid answer, paid, never a verdict "right"
            margin = None if data.true_margin is None else data.true_margin[index]
            answers = jax.vmap(lambda jd, k: judge_answers(jd, k, index, gold, margin))(judge, arm_keys)
        fresh = ~state.queried[index] & (index >= 0)

        def item(carry_, xs):
            spent, n_train, r_carry, stop = carry_
            pos, item_key = xs
            i = index[pos]
            k_decide, k_update = jax.random.split(item_key)
            ctx, stop_asked, payment = decide_item(router, config.auditor, config.capacity, r_carry.router, i,
                                                   data.x[i], reserve[:, i], spent, budget_usd, n_train, k_decide)
            take, paid, stop = item_purchase(payment, stop_asked, reserve[:, i], spent, budget_usd, fresh[pos], stop)
            r_carry, label, source, spend = observe_item(
                router, config.auditor, r_carry, ctx, payment.label_arm, paid,
                jnp.where(paid, answers[:, pos], -1), cost[:, i], gold[pos], take, k_update,
            )
            return (spent + spend, n_train + take.astype(jnp.int32), r_carry, stop), (take, source, label, spend)

        positions = jnp.arange(index.shape[0])
        (_, _, carry, exhausted), (accepted, arm, labels, spend) = jax.lax.scan(
            item, (state.spent_usd, state.n_train, carry, jnp.asarray(stopped)),
            (positions, item_keys(keys.annotate, round_index, index.shape[0])),
        )
        state, carry = finish_batch(state, carry, index, labels, accepted, spend, arm, config.label_weight,
                                    annotator.label_weight, config.auditor)
        return state, carry, labels, accepted, exhausted, arm

    def purchase(state, router_state, index, stopped, round_index):
        if routed:
            return buy_routed(state, router_state, index, stopped, round_index)
        return buy(state, index, stopped)

    if routed and not -1 <= config.auditor < cost.shape[0]:
        raise AlbandError(f"auditor arm {config.auditor} is not one of the {cost.shape[0]} annotators (or -1)")
    router_state = init_carry(
        config.router, routing_setup(reserve, n_features, config.auditor, budget_usd, config.capacity),
        config.capacity,
    ) if routed else ()
    spec = config.round_spec
    pool = Pool(data.x, policy_cost, data.aux)
    evaluation = Evaluation(data.x_test, data.y_test, x_stop, data.x_val, data.y_val)
    state = empty_label_state(n_items, config.capacity)
    initial = initial_indices(keys.init, data.x, config.n_initial, config.initial)
    if selection is not None:
        initial = jnp.where(selection.use_initial, jnp.asarray(selection.initial, jnp.int32), initial)
    state, router_state, _, initial_accepted, exhausted, initial_arm = purchase(
        state, router_state, initial, jnp.bool_(False), 0
    )
    params, policy_state, signals = first_fit(spec, pool, evaluation, state)

    def measure(state: LabelState, signals, exhausted: Array, uncertainty: Array):
        return (
            n_labeled(state),
            state.n_train,
            state.spent_usd,
            signals.test_accuracy,
            exhausted,
            signals.validation_accuracy,
            signals.kappa,
            signals.change_rate,
            signals.confidence,
            jnp.asarray(uncertainty, jnp.float32),
        )

    def one_round(carry, round_index):
        state, params, policy_state, router_state, exhausted, previous = carry
        proposal = before_buy(spec, pool, state, params, policy_state, round_index, query_key(keys, round_index))
        if selection is not None:
            use = selection.use[round_index - 1]
            chosen = with_index(proposal, selection.query[round_index - 1])
            proposal = proposal._replace(index=jnp.where(use, chosen.index, proposal.index),
                                         uncertainty=jnp.where(use, chosen.uncertainty, proposal.uncertainty))
        after, router_state, labels, accepted, exhausted, arm = purchase(
            state, router_state, proposal.index, exhausted, round_index
        )
        params, policy_state, signals = after_buy(spec, pool, evaluation, state, after, params, proposal, labels,
                                                  accepted, round_index, previous)
        values = measure(after, signals, exhausted, proposal.uncertainty)
        carry = (after, params, policy_state, router_state, exhausted, signals.prediction)
        return carry, (values, proposal.index, accepted, labels, arm)

    first = measure(state, signals, exhausted, jnp.nan)
    rounds = jnp.arange(1, config.n_rounds + 1, dtype=jnp.int32)
    (state, params, *_), (per_round, q_index, q_accepted, q_label, q_arm) = jax.lax.scan(
        one_round, (state, params, policy_state, router_state, exhausted, signals.prediction), rounds
    )
    (n_lab, n_q, spent, acc, exh, val, kappa, change, confidence, uncertainty) = (
        jnp.concatenate([jnp.asarray(a)[None], b]) for a, b in zip(first, per_round)
    )
    return EpisodeTrace(
        n_labeled=n_lab,
        n_queried=n_q,
        spent_usd=spent,
        test_accuracy=acc,
        exhausted=exh,
        initial_index=initial,
        initial_accepted=initial_accepted,
        query_index=q_index,
        query_accepted=q_accepted,
        query_label=q_label,
        final_params=params,
        validation_accuracy=val,
        stop_kappa=kappa,
        stop_change_rate=change,
        stop_confidence=confidence,
        batch_uncertainty=uncertainty,
        initial_arm=initial_arm,
        query_arm=q_arm,
    )


def episode_history(trace: EpisodeTrace) -> StopHistory:
    """The stopping rules' view of a trace (works with leading seed/setting axes too)."""
    return StopHistory(
        n_labeled=trace.n_labeled,
        n_queried=trace.n_queried,
        spent_usd=trace.spent_usd,
        exhausted=trace.exhausted,
        validation_accuracy=trace.validation_accuracy,
        kappa=trace.stop_kappa,
        change_rate=trace.stop_change_rate,
        mean_confidence=trace.stop_confidence,
        batch_uncertainty=trace.batch_uncertainty,
    )


def simulate_seeds(
    config: EpisodeConfig,
    data: EpisodeData,
    annotator: SimulatedAnnotator,
    budget_usd: Array | float,
    seeds: Array,
) -> EpisodeTrace:
    """:func:`simulate` vmapped over integer ``seeds`` (one episode each); leading axis = seed."""
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    return jax.vmap(simulate, in_axes=(None, None, None, None, 0))(config, data, annotator, budget_usd, keys)


simulate_seeds = jax.jit(simulate_seeds, static_argnums=0)


@partial(jax.jit, static_argnums=(0, 5))
def simulate_many(
    config: EpisodeConfig,
    data: EpisodeData,
    annotator: SimulatedAnnotator,
    budget_usd: Array | float,
    seeds: Array,
    vmap_width: int = 1,
    selection: SelectedIndices | None = None,
) -> EpisodeTrace:
    """:func:`simulate` for every integer seed in one compiled call; leading axis = seed.

    ``selection`` (optional): one :class:`SelectedIndices` per seed stacked on
    a leading axis (``seeds`` order): recorded selections replayed seed by seed
    (:func:`alband.selection.replay.stacked_selected_indices`).

    Seeds are mapped with ``lax.map`` in vmapped groups of ``vmap_width``
    (module docstring: 1 is fastest on CPU and gives :func:`simulate`'s
    numbers seed by seed; wider groups batch the matrix products, and the
    differently compiled fits agree only to the learner's ``tol``, which can
    exchange items whose scores lie that close at the batch's cut:
    :func:`alband.policies.base.top_unqueried`). Memory holds one group's
    working set plus the traces.
    """
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    batch_size = None if vmap_width <= 1 else int(vmap_width)
    if selection is None:
        return jax.lax.map(lambda k: simulate(config, data, annotator, budget_usd, k), keys, batch_size=batch_size)
    return jax.lax.map(lambda ks: simulate(config, data, annotator, budget_usd, ks[0], ks[1]), (keys, selection),
                       batch_size=batch_size)


@partial(jax.jit, static_argnums=(0, 5))
def simulate_grid(
    config: EpisodeConfig,
    data: EpisodeData,
    annotators: SimulatedAnnotator,
    budgets_usd: Array,
    seeds: Array,
    vmap_width: int = 1,
) -> EpisodeTrace:
    """Every (annotator setting, seed) pair: leading axes ``(A, S)``.

    ``annotators`` holds ``A`` settings stacked on a leading axis (prices,
    noise: :func:`stack_annotators` of settings with equal shapes; with a
    router, each setting is itself a stack of ``K`` arms, so leaves are
    ``(A, K, ...)``); ``budgets_usd`` is ``(A,)``. One ``lax.map`` over all
    ``A * S`` pairs in vmapped groups of ``vmap_width``.
    """
    budgets_usd = jnp.asarray(budgets_usd, jnp.float32)
    n_settings = budgets_usd.shape[0]
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
    n_seeds = keys.shape[0]
    setting = jnp.repeat(jnp.arange(n_settings), n_seeds)
    pair_keys = jnp.tile(keys, (n_settings, 1))

    def one(args):
        a, k = args
        ann = jax.tree_util.tree_map(lambda leaf: leaf[a], annotators)
        return simulate(config, data, ann, budgets_usd[a], k)

    flat = jax.lax.map(one, (setting, pair_keys), batch_size=None if vmap_width <= 1 else int(vmap_width))
    return jax.tree_util.tree_map(lambda leaf: leaf.reshape((n_settings, n_seeds) + leaf.shape[1:]), flat)


def repriced_spend(trace: EpisodeTrace, data: EpisodeData, annotator: SimulatedAnnotator, routed: bool) -> Array:
    """``spent_usd`` per round had every bought item been paid at ``annotator``'s prices.

    Valid when the purchases do not depend on prices (a budget that never
    binds and a router that ignores prices), so that one simulation serves a
    whole grid of price settings. Works on one trace (no leading axes).
    """
    cost, _ = arm_costs(annotator, data, routed)
    cost = cost if routed else cost[None, :]

    def paid(index, arm):
        return jnp.sum(jnp.where(arm >= 0, cost[jnp.clip(arm, 0), index], 0.0), axis=-1)

    first = paid(trace.initial_index, trace.initial_arm)
    per_round = jax.vmap(paid)(trace.query_index, trace.query_arm)
    return jnp.cumsum(jnp.concatenate([first[None], per_round]))
