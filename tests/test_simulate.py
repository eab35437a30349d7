"""The jitted simulator: budget never exceeded, nothing bought twice, vmap == per seed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.costs.budget import affordable_prefix
from alband.costs.prices import Price
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.pool import empty_label_state, record_annotations
from alband.purchase.rule import affordable
from alband.simulate import (
    EpisodeConfig,
    annotation_cost_usd,
    make_simulated_annotator,
    noisy_labels,
    reserve_usd,
    simulate,
    simulate_seeds,
)

from helpers import episode_data, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)


def _bought(trace) -> np.ndarray:
    initial = np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)]
    queried = np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]
    return np.concatenate([initial, queried])


@settings(max_examples=60, deadline=None)
@given(
    spent=st.floats(0, 5),
    limit=st.floats(0.01, 10),
    costs=st.lists(st.tuples(st.floats(0, 2), st.floats(0, 1)), min_size=1, max_size=12),
)
def test_affordable_prefix_never_exceeds_the_limit(spent, limit, costs):
    reserve = np.array([max(r, a) for r, a in costs])
    actual = np.array([a for _, a in costs])
    fits = affordable_prefix(spent, limit, reserve, actual)
    # A prefix, and every accepted item's reservation fitted when it was made.
    assert (np.diff(fits.astype(int)) <= 0).all()
    running = spent
    for k in np.flatnonzero(fits):
        assert running + reserve[k] <= limit
        running += actual[k]


@settings(max_examples=12, deadline=None)
@given(
    budget=st.floats(0.001, 0.2),
    p_in=st.floats(0.0, 40.0),
    p_out=st.floats(0.0, 80.0),
    per_label=st.sampled_from([0.0, 0.001, 0.01]),
    flip=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_simulated_budget_never_exceeded_and_nothing_bought_twice(budget, p_in, p_out, per_label, flip, seed):
    data = episode_data()
    annotator = make_simulated_annotator(3, Price(p_in, p_out, per_label), flip_rate=flip,
                                         prompt_tokens=40, output_tokens=3, max_output_tokens=12)
    config = EpisodeConfig(LEARNER, make_policy("entropy"), 5, 7, 6)
    trace = simulate(config, data, annotator, budget, jax.random.PRNGKey(seed))
    spent = np.asarray(trace.spent_usd, np.float64)
    assert (spent <= budget * (1 + 1e-6)).all()
    assert (np.diff(spent) >= 0).all()
    bought = _bought(trace)
    assert len(set(bought.tolist())) == len(bought)
    # What was spent is exactly the price of what was bought.
    cost = np.asarray(annotation_cost_usd(annotator, data.text_chars), np.float64)
    np.testing.assert_allclose(spent[-1], cost[bought].sum(), rtol=1e-5, atol=1e-9)
    # Once exhausted, nothing more is bought.
    exhausted = np.asarray(trace.exhausted)
    if exhausted.any():
        first = int(np.argmax(exhausted))
        assert (np.asarray(trace.n_queried)[first:] == np.asarray(trace.n_queried)[first]).all()


def test_batches_in_an_episode_are_distinct_and_fresh():
    data = episode_data()
    config = EpisodeConfig(LEARNER, make_policy("margin"), 6, 9, 10)
    trace = simulate(config, data, llm_annotator(), 100.0, jax.random.PRNGKey(3))
    bought = _bought(trace)
    assert len(bought) == 6 + 9 * 10
    assert len(set(bought.tolist())) == len(bought)


def test_vmap_over_seeds_equals_each_seed_alone():
    data = episode_data()
    config = EpisodeConfig(LEARNER, make_policy("entropy"), 5, 5, 8)
    annotator = llm_annotator()
    batched = simulate_seeds(config, data, annotator, 1.0, jnp.arange(3))
    for s in range(3):
        alone = simulate(config, data, annotator, 1.0, jax.random.PRNGKey(s))
        np.testing.assert_array_equal(batched.query_index[s], alone.query_index)
        np.testing.assert_array_equal(batched.query_accepted[s], alone.query_accepted)
        np.testing.assert_allclose(batched.test_accuracy[s], alone.test_accuracy, atol=1e-6)
        np.testing.assert_allclose(batched.spent_usd[s], alone.spent_usd, rtol=1e-6)


def test_noise_model_matches_its_confusion_matrix():
    annotator = make_simulated_annotator(3, Price(), flip_rate=0.3)
    gold = jnp.zeros(20000, jnp.int32)
    answers = np.asarray(noisy_labels(annotator, jax.random.PRNGKey(0), jnp.arange(20000), gold))
    shares = np.bincount(answers, minlength=3) / answers.size
    np.testing.assert_allclose(shares, [0.7, 0.15, 0.15], atol=0.015)
    # An item's answer does not depend on the batch it is asked in.
    alone = noisy_labels(annotator, jax.random.PRNGKey(0), jnp.array([17]), gold[:1])
    assert int(alone[0]) == answers[17]


def test_reservation_bounds_the_actual_cost():
    annotator = llm_annotator(p_in=3.0, p_out=15.0)
    chars = jnp.arange(0, 5000, 7)
    assert (reserve_usd(annotator, chars) >= annotation_cost_usd(annotator, chars)).all()


def test_affordable_skips_queried_items_without_charging():
    state = empty_label_state(10, 10)
    state = record_annotations(state, jnp.array([2]), jnp.array([1]), jnp.array([True]), jnp.array([0.5]))
    cost = jnp.full(10, 0.4)
    accepted, exhausted = affordable(state, jnp.array([2, 3, 4]), cost, cost, 1.0, False)
    assert np.asarray(accepted).tolist() == [False, True, False]
    assert bool(exhausted)
