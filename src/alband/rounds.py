"""One active-learning round as two pure steps around a purchase, shared by both drivers.

The survey's Algorithm 1 (initialize, then query -> annotate -> train until a
stopping rule fires) is written once, here, as pure jittable steps; the two
drivers differ only in how they *buy*:

* :func:`alband.simulate.simulate` (a ``lax.scan``) buys from simulated
  annotators inside the scan;
* the live loop (:func:`alband.loop.live_rounds`) buys from real
  annotators through the ledger protocol.

A round ``r >= 1`` is::

    proposal            = before_buy(spec, pool, state, params, policy_state, r, key)
    state', labels, ... = <the driver's purchase of proposal.index>
    params', policy_state', signals = after_buy(spec, pool, evaluation, state, state', params,
                                                proposal, labels, accepted, r, previous)

* :func:`before_buy`: the round context (the learner's probabilities on the
  pool -- the one full-pool pass of the round -- its posterior and linear
  head, lazily: a policy that does not read them does not pay) and the
  policy's ``select``; it also returns the batch's largest least-confidence
  (a stopping signal) and the probabilities themselves.
* the purchase (the drivers'): buy the fresh proposed items the budget
  covers, in batch order (:mod:`alband.purchase`, one rule for both drivers).
* :func:`after_buy`: the policy's ``update`` with the *same* context as the
  proposal (the probabilities are carried, not recomputed), the warm-started
  refit on the training buffer (plus the policy's free pseudo-labels, for a
  policy that has the ``pseudo_labels`` hook: :func:`train_with_pseudo_labels`), and the round's signals (test and validation
  accuracy, stop-set predictions, Cohen's kappa, change rate and confidence:
  :mod:`alband.stopping.signals`).

Round 0 buys a seed set (:func:`initial_indices`: uniformly random, or one item per k-means cluster) and calls
:func:`first_fit` (fit from ``learner.init``, the policy's ``init``, signals).

The seam between ``before_buy`` and the purchase is where a selector outside
the core plugs in: the live driver may show ``proposal`` (a shortlist, with
``probs``) to a shell-side chooser and buy what it picks; ``after_buy`` reads
only the indices, labels and acceptance of what was bought. Whatever chose the
indices, :func:`with_index` puts them in the proposal (and recomputes the
batch's uncertainty signal), so both drivers continue from the same
proposal: the live loop with what its selector (:mod:`alband.selection`)
returned, the simulator with the same indices given as data
(:class:`SelectedIndices`, a recorded selection), never computed in the core.

Keys: ``PRNGKey(seed)`` splits into ``init``, ``query`` and ``annotate`` keys;
round ``r`` queries with ``fold_in(query, r)`` (:func:`query_key`).

Training on the filled part. The buffer has a static capacity ``M`` (the most
labels a run can buy), but after ``r`` rounds only ``n_train`` slots hold
labels. :func:`train` fits on the shortest prefix of the buffer among
``256, 512, 1024, ..., M`` that holds every filled slot, chosen by
``lax.switch``: the empty slots weigh 0, so the minimiser is the same, and a
200-round run with batches of 10 fits on about 1,350 rows per round on average
instead of 2,010. The prefix is chosen from ``filled_bound``, the most slots
the round can have filled (``n_initial + batch_size * round``), which is the
same for every seed and annotator setting: under ``jax.vmap`` the switch stays
a switch (a batched index would turn it into a select evaluating every
prefix), and the live loop, passing the same bound, fits the same rows. The
posterior of the context is computed on the same prefix.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from alband.cold_start import seed_set
from alband.models.base import Learner, accuracy, linear_head
from alband.policies.base import PolicyState, QueryPolicy, RoundContext
from alband.pool import LabelState
from alband.stopping.signals import batch_uncertainty, prediction_signals

Array = jax.Array


class RunKeys(NamedTuple):
    """The three independent key streams of a run."""

    init: Array
    query: Array
    annotate: Array


def run_keys(seed: int | Array) -> RunKeys:
    """Split a seed (an int or a PRNG key) into the run's key streams."""
    key = jax.random.PRNGKey(seed) if isinstance(seed, int) else seed
    init, query, annotate = jax.random.split(key, 3)
    return RunKeys(init, query, annotate)


def query_key(keys: RunKeys, round_index: int | Array) -> Array:
    return jax.random.fold_in(keys.query, round_index)


@partial(jax.jit, static_argnums=(2, 3))
def initial_indices(key: Array, x: Array, n_initial: int, method: str = "random") -> Array:
    """Round 0's ``n_initial`` distinct pool indices: uniformly random, or one per k-means cluster
    (:func:`alband.cold_start.seed_set`)."""
    return seed_set(key, x, n_initial, method)


class RoundSpec(NamedTuple):
    """The static part of a round (hashable: a jit static argument)."""

    learner: Learner
    policy: QueryPolicy
    n_initial: int
    batch_size: int


class Pool(NamedTuple):
    """The arrays a run's rounds read and never change."""

    x: Array  # (N, d) float32 pool rows (item embeddings, or pair features for a pair pool)
    cost_usd: Array  # (N,) dollars each item is expected to cost (what cost-aware policies see)
    aux: Any = ()  # task side information for policies (RoundContext.aux)


class Evaluation(NamedTuple):
    """What the round's signals are measured on."""

    x_test: Array  # (T, d)
    y_test: Array  # (T,)
    x_stop: Array  # (S, d) the run's stop set (alband.stopping.signals.stop_set_indices)
    x_val: Array | None = None  # (V, d) labelled validation set, or None
    y_val: Array | None = None


class Proposal(NamedTuple):
    """What :func:`before_buy` hands to the purchase (and, unchanged, to :func:`after_buy`)."""

    index: Array  # (B,) int32 distinct pool indices, in purchase order
    policy_state: PolicyState  # the policy's state after select
    probs: Array  # (N, C) the learner's probabilities the policy saw
    uncertainty: Array  # () largest least-confidence of the batch under the proposing model


class SelectedIndices(NamedTuple):
    """Indices chosen outside the core (a recorded selection), given to the simulator as data.

    ``initial`` replaces round 0's random seed set when ``use_initial``;
    ``query[r - 1]`` replaces round ``r``'s proposal where ``use[r - 1]``.
    """

    initial: Array  # (n_initial,) int32
    use_initial: Array  # () bool
    query: Array  # (R, B) int32
    use: Array  # (R,) bool


@jax.jit
def with_index(proposal: "Proposal", index: Array) -> "Proposal":
    """``proposal`` buying ``index`` instead, its uncertainty signal taken on ``index`` (from ``proposal.probs``)."""
    index = jnp.asarray(index, jnp.int32)
    return proposal._replace(index=index, uncertainty=batch_uncertainty(proposal.probs[index]))


class RoundSignals(NamedTuple):
    """What a round reveals (stopping rules read these; :mod:`alband.stopping.signals`)."""

    test_accuracy: Array
    validation_accuracy: Array  # NaN without a validation set
    prediction: Array  # (S,) int32 predictions on the stop set
    kappa: Array  # Cohen's kappa against the previous round's predictions; NaN at round 0
    change_rate: Array  # NaN at round 0
    confidence: Array  # mean max-probability on the stop set


# Shortest buffer prefix :func:`train` fits on (then doubling up to the capacity).
MIN_TRAIN_ROWS = 256


def train_prefix_sizes(capacity: int) -> tuple[int, ...]:
    """The buffer prefixes :func:`train` chooses from: ``256, 512, ...`` below ``capacity``, then ``capacity``."""
    sizes = []
    size = MIN_TRAIN_ROWS
    while size < capacity:
        sizes.append(size)
        size *= 2
    return (*sizes, capacity)


def filled_bound(n_initial: int, batch_size: int, round_index: int | Array) -> int | Array:
    """The most buffer slots filled after round ``round_index`` (round 0: the seed set)."""
    return n_initial + batch_size * round_index


def on_buffer(fn: Callable, x: Array, state: LabelState, bound: int | Array, operand=None):
    """``fn(operand, x_rows, labels, weights)`` on the shortest buffer prefix holding ``bound`` slots (module docstring)."""
    sizes = train_prefix_sizes(state.train_index.shape[0])

    def prefix(rows: int):
        def run(operand):
            index = state.train_index[:rows]
            return fn(operand, x[index], state.train_label[:rows], state.train_weight[:rows])

        return run

    if len(sizes) == 1:
        return prefix(sizes[0])(operand)
    # ``bound`` must not depend on the batched state (not even through max(bound, n_train)):
    # that would turn the switch into a select under vmap.
    branch = jnp.searchsorted(jnp.asarray(sizes[:-1], jnp.int32), jnp.asarray(bound, jnp.int32), side="left")
    return jax.lax.switch(branch, [prefix(rows) for rows in sizes], operand)


@partial(jax.jit, static_argnums=0)
def train(learner: Learner, params, x: Array, state: LabelState, bound: int | Array):
    """Refit the learner on the labels bought so far, warm-started from ``params``.

    Fits on the shortest prefix of the buffer that holds ``bound`` slots, which
    must be at least ``state.n_train`` (:func:`filled_bound`, module
    docstring); the result is the fit on the whole buffer.
    """
    return on_buffer(lambda p, xs, ys, ws: learner.fit(p, xs, ys, ws), x, state, bound, params)


@partial(jax.jit, static_argnums=0)
def train_with_pseudo_labels(learner: Learner, params, x: Array, state: LabelState, bound: int | Array,
                             pseudo_label: Array, pseudo_weight: Array):
    """:func:`train` on the buffer plus every unqueried pool row the policy pseudo-labelled.

    The rows are the buffer prefix (as :func:`train`) followed by all ``N``
    pool rows with label ``pseudo_label`` and weight ``pseudo_weight``, zeroed
    where the row was queried (a bought label wins) or has no pseudo-label.
    """
    weight = jnp.where(state.queried | (pseudo_label < 0), 0.0, pseudo_weight.astype(jnp.float32))

    def fit(p, xs, ys, ws):
        return learner.fit(p, jnp.concatenate([xs, x]), jnp.concatenate([ys, pseudo_label.astype(ys.dtype)]),
                           jnp.concatenate([ws, weight]))

    return on_buffer(fit, x, state, bound, params)


@partial(jax.jit, static_argnums=0)
def train_with_rows(learner: Learner, params, x: Array, state: LabelState, bound: int | Array, x_extra: Array,
                    y_extra: Array, w_extra: Array):
    """:func:`train` on the buffer plus the rows ``x_extra`` labelled ``y_extra`` with weights ``w_extra``.

    The extra rows are not pool rows (generated items, :mod:`alband.generation`):
    a fixed number of them, the empty ones weighing 0, so the minimiser is that
    of the buffer and the filled extra rows.
    """
    def fit(p, xs, ys, ws):
        return learner.fit(p, jnp.concatenate([xs, x_extra]), jnp.concatenate([ys, y_extra.astype(ys.dtype)]),
                           jnp.concatenate([ws, w_extra.astype(ws.dtype)]))

    return on_buffer(fit, x, state, bound, params)


class ExtraRows(NamedTuple):
    """Labelled training rows outside the pool (accepted generated items): ``(G, d)``, ``(G,)``, ``(G,)``."""

    x: Array
    y: Array
    weight: Array  # 0 for an empty slot


def pseudo_label_summary(policy: QueryPolicy, policy_state: PolicyState, state: LabelState, cost_usd: Array):
    """``(count, dollars)`` of the unqueried pairs the policy pseudo-labels: what asking them would have cost."""
    if policy.pseudo_labels is None:
        return jnp.int32(0), jnp.float32(0.0)
    label, weight = policy.pseudo_labels(policy_state)
    used = ~state.queried & (label >= 0) & (weight > 0)
    return jnp.sum(used.astype(jnp.int32)), jnp.sum(jnp.where(used, cost_usd, 0.0)).astype(jnp.float32)


def round_context(learner: Learner, pool: Pool, state: LabelState, params, round_index: int | Array,
                  bound: int | Array, probs: Array | None = None) -> RoundContext:
    """The policy's view of a round: the learner's probabilities (computed unless given), posterior and head.

    The posterior is the learner's on the buffer prefix holding ``bound``
    slots (the filled bound of the state, module docstring); under ``jit`` it
    is dead code unless a policy reads it.
    """
    if probs is None:
        probs = learner.predict_proba(params, pool.x)
    posterior = on_buffer(lambda p, xs, ys, ws: learner.posterior(p, xs, ys, ws), pool.x, state, bound, params)
    return RoundContext(
        x=pool.x,
        queried=state.queried,
        probs=probs,
        params=params,
        cost_usd=pool.cost_usd,
        round=jnp.asarray(round_index, jnp.int32),
        posterior=posterior,
        head=linear_head(learner, params),
        aux=pool.aux,
    )


def _signals(learner: Learner, params, evaluation: Evaluation, previous: Array, has_previous) -> RoundSignals:
    if evaluation.x_val is None:
        validation = jnp.float32(jnp.nan)
    else:
        validation = accuracy(learner, params, evaluation.x_val, evaluation.y_val)
    prediction, kappa, change, confidence = prediction_signals(
        learner.predict_proba(params, evaluation.x_stop), previous, has_previous
    )
    return RoundSignals(accuracy(learner, params, evaluation.x_test, evaluation.y_test), validation,
                        prediction, kappa, change, confidence)


@partial(jax.jit, static_argnums=0)
def first_fit(spec: RoundSpec, pool: Pool, evaluation: Evaluation, state: LabelState):
    """Round 0 after the seed set is bought: fit from ``learner.init``, the policy's ``init``, the signals.

    Returns ``(params, policy_state, signals)``.
    """
    learner = spec.learner
    params = train(learner, learner.init(pool.x.shape[1]), pool.x, state, spec.n_initial)
    policy_state = spec.policy.init(round_context(learner, pool, state, params, 0, spec.n_initial))
    no_previous = jnp.zeros(evaluation.x_stop.shape[:1], jnp.int32)
    return params, policy_state, _signals(learner, params, evaluation, no_previous, jnp.bool_(False))


@partial(jax.jit, static_argnums=0)
def before_buy(spec: RoundSpec, pool: Pool, state: LabelState, params, policy_state: PolicyState,
               round_index: Array, key: Array) -> Proposal:
    """Round ``round_index``'s proposal: context, the policy's ``select`` (module docstring)."""
    bound = filled_bound(spec.n_initial, spec.batch_size, round_index - 1)
    ctx = round_context(spec.learner, pool, state, params, round_index, bound)
    index, policy_state = spec.policy.select(policy_state, ctx, key, spec.batch_size)
    uncertainty = batch_uncertainty(spec.learner.predict_proba(params, pool.x[index]))
    return Proposal(index, policy_state, ctx.probs, uncertainty)


@partial(jax.jit, static_argnums=0)
def after_buy(spec: RoundSpec, pool: Pool, evaluation: Evaluation, before: LabelState, after: LabelState,
              params, proposal: Proposal, labels: Array, accepted: Array, round_index: Array,
              previous: Array, extra: ExtraRows | None = None):
    """The policy's ``update``, the warm-started refit and the signals of round ``round_index``.

    ``before`` / ``after`` are the label states around the purchase; the
    policy's update sees the context of the proposal (``before``, ``params``,
    ``proposal.probs``). ``previous`` are the stop-set predictions of the
    previous round. ``extra`` (optional): labelled rows outside the pool the
    refit also trains on (generated items); the signals are measured on the
    evaluation sets only, never on them. Returns ``(params, policy_state, signals)``.
    """
    bound = filled_bound(spec.n_initial, spec.batch_size, round_index - 1)
    ctx = round_context(spec.learner, pool, before, params, round_index, bound, probs=proposal.probs)
    policy_state = spec.policy.update(proposal.policy_state, ctx, proposal.index, labels, accepted)
    bound = filled_bound(spec.n_initial, spec.batch_size, round_index)
    if spec.policy.pseudo_labels is None and extra is None:
        params = train(spec.learner, params, pool.x, after, bound)
    elif extra is None:  # the policy's free labels join the bought ones (QueryPolicy.pseudo_labels)
        pseudo_label, pseudo_weight = spec.policy.pseudo_labels(policy_state)
        params = train_with_pseudo_labels(spec.learner, params, pool.x, after, bound, pseudo_label, pseudo_weight)
    else:
        x_extra, y_extra, w_extra = extra
        if spec.policy.pseudo_labels is not None:  # both: the pseudo-labelled pool rows, then the extra rows
            pseudo_label, pseudo_weight = spec.policy.pseudo_labels(policy_state)
            pseudo_weight = jnp.where(after.queried | (pseudo_label < 0), 0.0, pseudo_weight.astype(jnp.float32))
            x_extra = jnp.concatenate([pool.x, x_extra])
            y_extra = jnp.concatenate([pseudo_label.astype(y_extra.dtype), y_extra])
            w_extra = jnp.concatenate([pseudo_weight, w_extra.astype(jnp.float32)])
        params = train_with_rows(spec.learner, params, pool.x, after, bound, x_extra, y_extra, w_extra)
    return params, policy_state, _signals(spec.learner, params, evaluation, previous, jnp.bool_(True))
