"""The simulator at scale: many seeds and annotator settings in one call equal the per-seed runs;
annotator mixes under a router keep the budget; re-pricing; the recorded stopping signals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.costs.prices import Price
from alband.errors import AlbandError
from alband.models import SoftmaxRegression
from alband.models.softmax_regression import accuracy, predict_proba
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.simulate import (
    EpisodeConfig,
    annotation_cost_usd,
    episode_history,
    make_simulated_annotator,
    repriced_spend,
    share_router,
    simulate,
    simulate_grid,
    simulate_many,
        stack_annotators,
)
from alband.stopping import default_rules, evaluate_rules, CostModel, stop_set_indices, stop_set_key

from helpers import episode_data, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)
CONFIG = EpisodeConfig(LEARNER, make_policy("entropy"), 5, 5, 8, stop_set_size=40)
# Built once: a router is part of the static config, so a new one would recompile.
ROUTED = CONFIG._replace(router=share_router([0.5, 0.3, 0.2]))


def _same_trace(a, b):
    np.testing.assert_array_equal(a.query_index, b.query_index)
    np.testing.assert_array_equal(a.query_accepted, b.query_accepted)
    np.testing.assert_array_equal(a.query_arm, b.query_arm)
    np.testing.assert_array_equal(a.n_queried, b.n_queried)
    for name in ("test_accuracy", "spent_usd", "stop_kappa", "stop_change_rate"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6, err_msg=name)
    # Probabilities differ in the last digits the learner's tolerance leaves free (batched vs single
    # matrix products converge to the same optimum within tol), never in the decisions above.
    for name in ("stop_confidence", "batch_uncertainty"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-3, atol=1e-4, err_msg=name)


def test_many_seeds_in_one_call_equal_each_seed_alone():
    data = episode_data()
    annotator = llm_annotator()
    seeds = jnp.arange(4)
    mapped = simulate_many(CONFIG, data, annotator, 1.0, seeds)
    for s in range(4):
        alone = simulate(CONFIG, data, annotator, 1.0, jax.random.PRNGKey(s))
        _same_trace(jax.tree_util.tree_map(lambda leaf: leaf[s], mapped), alone)


def test_a_grid_of_annotator_settings_equals_each_setting_alone():
    data = episode_data()
    settings_ = [llm_annotator(flip_rate=0.0, p_in=1.0), llm_annotator(flip_rate=0.3, p_in=20.0)]
    budgets = jnp.array([1.0, 0.01])
    grid = simulate_grid(CONFIG, data, stack_annotators(settings_), budgets, jnp.arange(2))
    assert grid.spent_usd.shape == (2, 2, CONFIG.n_rounds + 1)
    for a in range(2):
        for s in range(2):
            alone = simulate(CONFIG, data, settings_[a], float(budgets[a]), jax.random.PRNGKey(s))
            _same_trace(jax.tree_util.tree_map(lambda leaf: leaf[a, s], grid), alone)
    assert bool(grid.exhausted[1, 0, -1])  # the tight budget binds


def _mix(human_usd: float = 0.05):
    return stack_annotators([
        llm_annotator(flip_rate=0.3, p_in=0.1, p_out=0.4),
        llm_annotator(flip_rate=0.05, p_in=3.0, p_out=15.0),
        make_simulated_annotator(3, Price(usd_per_label=human_usd)),
    ])


@settings(max_examples=8, deadline=None)
@given(budget=st.floats(0.005, 0.5), seed=st.integers(0, 2**16), human=st.floats(0.001, 0.2))
def test_a_routed_mix_never_exceeds_the_budget_nor_buys_twice(budget, seed, human):
    data = episode_data()
    annotators = _mix(human)
    trace = simulate(ROUTED, data, annotators, budget, jax.random.PRNGKey(seed))
    spent = np.asarray(trace.spent_usd, np.float64)
    assert (spent <= budget * (1 + 1e-6)).all() and (np.diff(spent) >= 0).all()
    index = np.r_[np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)],
                  np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]]
    arm = np.r_[np.asarray(trace.initial_arm)[np.asarray(trace.initial_accepted)],
                np.asarray(trace.query_arm)[np.asarray(trace.query_accepted)]]
    assert len(set(index.tolist())) == len(index)
    assert ((arm >= 0) & (arm < 3)).all()
    assert (np.asarray(trace.query_arm)[~np.asarray(trace.query_accepted)] == -1).all()
    cost = np.stack([np.asarray(annotation_cost_usd(jax.tree_util.tree_map(lambda l: l[k], annotators),
                                                    data.text_chars), np.float64) for k in range(3)])
    np.testing.assert_allclose(spent[-1], cost[arm, index].sum(), rtol=1e-5, atol=1e-9)


def test_the_human_arm_gives_gold_labels_and_each_arm_gets_its_share():
    data = episode_data()
    trace = simulate(ROUTED, data, _mix(), 100.0, jax.random.PRNGKey(0))
    accepted = np.asarray(trace.query_accepted)
    arm = np.asarray(trace.query_arm)[accepted]
    label = np.asarray(trace.query_label)[accepted]
    gold = np.asarray(data.y)[np.asarray(trace.query_index)][accepted]
    np.testing.assert_array_equal(label[arm == 2], gold[arm == 2])
    shares = np.bincount(arm, minlength=3) / arm.size
    np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.25)  # 45 draws


def test_repricing_a_price_blind_mix_equals_simulating_at_those_prices():
    data = episode_data()
    cheap_human, dear_human = _mix(0.01), _mix(1.0)
    base = simulate(ROUTED, data, cheap_human, 1e6, jax.random.PRNGKey(3))
    dear = simulate(ROUTED, data, dear_human, 1e6, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(base.query_index, dear.query_index)  # purchases ignore prices
    np.testing.assert_allclose(repriced_spend(base, data, dear_human, True), dear.spent_usd, rtol=1e-5)
    single = simulate(CONFIG, data, llm_annotator(p_in=1.0), 1e6, jax.random.PRNGKey(3))
    np.testing.assert_allclose(repriced_spend(single, data, llm_annotator(p_in=1.0), False), single.spent_usd,
                               rtol=1e-5)


def test_share_router_rejects_bad_shares():
    with pytest.raises(AlbandError, match="shares"):
        share_router([0.5, -0.1])
    with pytest.raises(AlbandError, match="shares"):
        share_router([0.0, 0.0])


def test_recorded_signals_match_an_independent_recomputation():
    data = episode_data()
    held = np.arange(0, 60, 3)
    data = data._replace(x_val=data.x_test[held], y_val=data.y_test[held])
    key = jax.random.PRNGKey(11)
    trace = simulate(CONFIG, data, llm_annotator(), 10.0, key)
    index = np.asarray(stop_set_indices(stop_set_key(run_keys(key).init), data.x.shape[0], CONFIG.stop_set_size))
    assert len(set(index.tolist())) == CONFIG.stop_set_size
    probs = np.asarray(predict_proba(trace.final_params, data.x[index]))
    assert float(trace.stop_confidence[-1]) == pytest.approx(probs.max(axis=1).mean(), abs=1e-5)
    assert float(trace.validation_accuracy[-1]) == pytest.approx(
        float(accuracy(trace.final_params, data.x_val, data.y_val)))
    assert np.isnan(trace.stop_kappa[0]) and np.isnan(trace.batch_uncertainty[0])
    kappa = np.asarray(trace.stop_kappa[1:])
    change = np.asarray(trace.stop_change_rate[1:])
    assert ((kappa <= 1 + 1e-6) & (change >= 0) & (change <= 1)).all()
    assert np.all((change == 0) <= (np.abs(kappa - 1) < 1e-6))  # no change means kappa 1
    # Without a validation set the series is NaN and the plateau rule never fires.
    plain = simulate(CONFIG, episode_data(), llm_annotator(), 10.0, key)
    assert np.isnan(np.asarray(plain.validation_accuracy)).all()
    outcome = evaluate_rules(default_rules(), episode_history(plain), plain.test_accuracy, CostModel(0.1, 1000.0))
    assert not bool(outcome["validation_plateau"].fired)
