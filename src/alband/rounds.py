"""The pure steps of one active-learning round, shared by the simulator and the live loop.

The survey's Algorithm 1 (initialize, then query -> annotate -> train until a
stopping rule fires) is split into jitted steps so that
:func:`alband.simulate.simulate` (a ``lax.scan``) and the live loop
(:mod:`alband.loop`, with real annotators and a ledger) call the *same*
functions with the same keys:

* keys: ``PRNGKey(seed)`` splits into ``init``, ``query`` and ``annotate`` keys;
  round ``r`` queries with ``fold_in(query, r)``;
* :func:`initial_indices`: a uniformly random seed set;
* :func:`propose`: predictive probabilities of the current learner, then the
  policy's ``select``;
* :func:`affordable`: which proposed items are bought: fresh (never queried)
  and within the budget, in batch order, stopping at the first item whose
  reservation does not fit (:func:`alband.costs.affordable_prefix`);
* :func:`train`: warm-started refit on the filled part of the training buffer.

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
prefix), and the live loop, passing the same bound, fits the same rows.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.costs.budget import affordable_prefix
from alband.models.softmax_regression import SoftmaxParams, SoftmaxRegression, fit, predict_proba
from alband.policies.base import PolicyState, QueryPolicy, RoundContext
from alband.pool import LabelState

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


@partial(jax.jit, static_argnums=(1, 2))
def initial_indices(key: Array, n_items: int, n_initial: int) -> Array:
    """``n_initial`` distinct pool indices drawn uniformly at random."""
    return jax.lax.top_k(jax.random.uniform(key, (n_items,)), n_initial)[1].astype(jnp.int32)


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


@partial(jax.jit, static_argnums=0)
def train(
    model: SoftmaxRegression, params: SoftmaxParams, x: Array, state: LabelState, bound: int | Array
) -> SoftmaxParams:
    """Refit the learner on the labels bought so far, warm-started from ``params``.

    Fits on the shortest prefix of the buffer that holds ``bound`` slots, which
    must be at least ``state.n_train`` (:func:`filled_bound`, module
    docstring); the result is the fit on the whole buffer.
    """
    sizes = train_prefix_sizes(state.train_index.shape[0])

    def fit_prefix(rows: int):
        def run(params: SoftmaxParams) -> SoftmaxParams:
            index = state.train_index[:rows]
            return fit(model, params, x[index], state.train_label[:rows], state.train_weight[:rows])

        return run

    if len(sizes) == 1:
        return fit_prefix(sizes[0])(params)
    # ``bound`` must not depend on the batched state (not even through max(bound, n_train)):
    # that would turn the switch into a select under vmap.
    branch = jnp.searchsorted(jnp.asarray(sizes[:-1], jnp.int32), jnp.asarray(bound, jnp.int32), side="left")
    return jax.lax.switch(branch, [fit_prefix(rows) for rows in sizes], params)


def round_context(
    x: Array, state: LabelState, params: SoftmaxParams, cost_usd: Array, round_index: Array
) -> RoundContext:
    return RoundContext(
        x=x,
        queried=state.queried,
        probs=predict_proba(params, x),
        params=params,
        cost_usd=cost_usd,
        round=jnp.asarray(round_index, jnp.int32),
    )


@partial(jax.jit, static_argnames=("policy", "batch_size"))
def propose(
    policy: QueryPolicy,
    policy_state: PolicyState,
    x: Array,
    state: LabelState,
    params: SoftmaxParams,
    cost_usd: Array,
    round_index: Array,
    key: Array,
    batch_size: int,
) -> tuple[Array, PolicyState]:
    """The policy's batch for this round (``batch_size`` distinct pool indices)."""
    ctx = round_context(x, state, params, cost_usd, round_index)
    return policy.select(policy_state, ctx, key, batch_size)


@partial(jax.jit, static_argnames=("policy",))
def update_policy(
    policy: QueryPolicy,
    policy_state: PolicyState,
    x: Array,
    state: LabelState,
    params: SoftmaxParams,
    cost_usd: Array,
    round_index: Array,
    index: Array,
    label: Array,
    accepted: Array,
) -> PolicyState:
    ctx = round_context(x, state, params, cost_usd, round_index)
    return policy.update(policy_state, ctx, index, label, accepted)


def affordable(
    state: LabelState,
    index: Array,
    reserve_usd: Array,
    cost_usd: Array,
    limit_usd: Array | float,
    stopped: Array | bool,
) -> tuple[Array, Array]:
    """Which of the proposed items are bought, and whether the budget ran out.

    ``reserve_usd`` and ``cost_usd`` are per pool item. Items already queried
    are skipped at no cost; the first fresh item whose reservation does not
    fit ends the run (``exhausted``), and nothing after it is bought.
    """
    fresh = ~state.queried[index]
    reserve = jnp.where(fresh, reserve_usd[index], 0.0)
    cost = jnp.where(fresh, cost_usd[index], 0.0)
    fits = affordable_prefix(state.spent_usd, limit_usd, reserve, cost, xp=jnp)
    exhausted = jnp.asarray(stopped) | ~jnp.all(fits)
    accepted = fits & fresh & ~jnp.asarray(stopped)
    return accepted, exhausted
