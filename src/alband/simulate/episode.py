"""A whole active-learning episode with a simulated annotator, as one ``lax.scan``.

``simulate(config, data, annotator, budget_usd, key)`` runs the survey's
Algorithm 1 with the steps of :mod:`alband.rounds`:

0. buy labels for a random seed set of ``n_initial`` items, fit the learner;
1. for rounds ``r = 1..n_rounds``: propose a batch with the policy, buy the
   fresh items the budget covers (stopping at the first that does not fit),
   record them, update the policy, refit (warm start), evaluate on the test set.

Once the budget is exhausted, or the pool is used up, later rounds buy nothing
and repeat the last state, so every episode has the same shapes and
``jax.vmap`` runs many seeds (or annotator settings) in one call:
:func:`simulate_seeds`. The live loop (:mod:`alband.loop`) calls the same step
functions with the same keys, so for one seed it buys the same items.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.models.softmax_regression import SoftmaxParams, SoftmaxRegression, accuracy, init_params
from alband.policies.base import QueryPolicy
from alband.pool import LabelState, empty_label_state, n_labeled, record_annotations
from alband.rounds import (
    affordable,
    initial_indices,
    query_key,
    round_context,
    run_keys,
    train,
)
from alband.simulate.annotator_model import (
    SimulatedAnnotator,
    annotation_cost_usd,
    noisy_labels,
    reserve_usd,
)

Array = jax.Array


class EpisodeConfig(NamedTuple):
    """Static settings of an episode (hashable: a jit static argument)."""

    learner: SoftmaxRegression
    policy: QueryPolicy
    n_initial: int
    batch_size: int
    n_rounds: int

    @property
    def capacity(self) -> int:
        """The most annotations an episode can buy."""
        return self.n_initial + self.batch_size * self.n_rounds


class EpisodeData(NamedTuple):
    """Arrays of a task: pool (with gold labels and text lengths) and test set."""

    x: Array  # (N, d) float32
    y: Array  # (N,) int32 gold
    text_chars: Array  # (N,) int32
    text_bytes: Array  # (N,) int32
    x_test: Array  # (T, d)
    y_test: Array  # (T,)


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
    final_params: SoftmaxParams


@partial(jax.jit, static_argnums=0)
def simulate(
    config: EpisodeConfig,
    data: EpisodeData,
    annotator: SimulatedAnnotator,
    budget_usd: Array | float,
    key: Array,
) -> EpisodeTrace:
    """One seeded episode (module docstring). Jitted; vmap over ``key`` or ``annotator``."""
    n_items, n_features = data.x.shape
    keys = run_keys(key)
    cost = annotation_cost_usd(annotator, data.text_chars)
    reserve = reserve_usd(annotator, data.text_bytes)
    budget_usd = jnp.asarray(budget_usd, jnp.float32)

    def buy(state: LabelState, index: Array, stopped: Array):
        accepted, exhausted = affordable(state, index, reserve, cost, budget_usd, stopped)
        labels = noisy_labels(annotator, keys.annotate, index, data.y[index])
        state = record_annotations(state, index, labels, accepted, cost[index], annotator.label_weight)
        return state, labels, accepted, exhausted

    state = empty_label_state(n_items, config.capacity)
    initial = initial_indices(keys.init, n_items, config.n_initial)
    state, _, initial_accepted, exhausted = buy(state, initial, jnp.bool_(False))
    params = train(config.learner, init_params(config.learner, n_features), data.x, state)
    policy_state = config.policy.init(round_context(data.x, state, params, cost, 0))

    def measure(state: LabelState, params: SoftmaxParams, exhausted: Array):
        return (
            n_labeled(state),
            state.n_train,
            state.spent_usd,
            accuracy(params, data.x_test, data.y_test),
            exhausted,
        )

    def one_round(carry, round_index):
        state, params, policy_state, exhausted = carry
        ctx = round_context(data.x, state, params, cost, round_index)
        index, policy_state = config.policy.select(
            policy_state, ctx, query_key(keys, round_index), config.batch_size
        )
        state, labels, accepted, exhausted = buy(state, index, exhausted)
        policy_state = config.policy.update(policy_state, ctx, index, labels, accepted)
        params = train(config.learner, params, data.x, state)
        return (state, params, policy_state, exhausted), (measure(state, params, exhausted), index, accepted, labels)

    first = measure(state, params, exhausted)
    rounds = jnp.arange(1, config.n_rounds + 1, dtype=jnp.int32)
    (state, params, _, _), (per_round, q_index, q_accepted, q_label) = jax.lax.scan(
        one_round, (state, params, policy_state, exhausted), rounds
    )
    n_lab, n_q, spent, acc, exh = (
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
