"""Simulated preference judges: the simulator's annotator where a confusion matrix suffices, BT noise, bias, ties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.costs.prices import Price
from alband.errors import AlbandError
from alband.simulate.annotator_model import noisy_labels
from alband.simulate.judge_model import answer_probabilities, judge_answers, judge_confusion, make_pair_judge

N = 20_000


def _gold(seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, size=N), jnp.int32)


def test_margin_free_judge_is_the_simulators_two_class_annotator():
    judge = make_pair_judge(Price(usd_per_label=0.01), flip_rate=0.1, position_bias=0.2)
    gold = _gold()
    idx = jnp.arange(N, dtype=jnp.int32)
    key = jax.random.key(4)
    np.testing.assert_array_equal(np.asarray(judge_answers(judge, key, idx, gold)),
                                  np.asarray(noisy_labels(judge.annotator, key, idx, gold)))
    # The same answers through the per-pair path (beta = inf ignores the margin).
    np.testing.assert_array_equal(np.asarray(judge_answers(judge, key, idx, gold, jnp.ones(N))),
                                  np.asarray(noisy_labels(judge.annotator, key, idx, gold)))


def test_position_bias_is_an_asymmetric_confusion_matrix():
    K = judge_confusion(0.1, 0.3)
    np.testing.assert_allclose(K, [[0.7 * 0.9 + 0.3, 0.7 * 0.1], [0.7 * 0.1 + 0.3, 0.7 * 0.9]], rtol=1e-6)
    np.testing.assert_allclose(K.sum(axis=1), 1.0, rtol=1e-6)
    judge = make_pair_judge(Price(), position_bias=0.3)
    answers = np.asarray(judge_answers(judge, jax.random.key(1), jnp.arange(N), _gold()))
    assert abs(np.mean(answers == 0) - (0.5 + 0.5 * 0.3)) < 0.015  # prefers the first shown


def test_bradley_terry_judge_samples_the_bt_model():
    rng = np.random.default_rng(2)
    margin = rng.normal(0, 2.0, size=N).astype(np.float32)
    gold = jnp.asarray(np.where(margin > 0, 0, 1), jnp.int32)
    judge = make_pair_judge(Price(), beta=1.0)
    answers = np.asarray(judge_answers(judge, jax.random.key(3), jnp.arange(N), gold, jnp.asarray(margin)))
    p_first = 1 / (1 + np.exp(-margin))
    assert abs(np.mean(answers == 0) - p_first.mean()) < 0.01
    # Calibrated in bins of the margin: answer "first" with probability sigmoid(m).
    for lo, hi in [(-4, -1), (-1, 0), (0, 1), (1, 4)]:
        sel = (margin >= lo) & (margin < hi)
        assert abs(np.mean(answers[sel] == 0) - p_first[sel].mean()) < 0.03
    np.testing.assert_allclose(np.asarray(answer_probabilities(judge, gold, jnp.asarray(margin))), p_first, rtol=1e-5, atol=1e-6)


def test_ties_are_invalid_answers_at_their_rate_and_draws_are_order_independent():
    judge = make_pair_judge(Price(), flip_rate=0.2, tie_rate=0.1)
    gold = _gold(5)
    key = jax.random.key(6)
    idx = jnp.arange(N, dtype=jnp.int32)
    answers = np.asarray(judge_answers(judge, key, idx, gold))
    assert abs(np.mean(answers == -1) - 0.1) < 0.01
    valid = answers >= 0
    assert abs(np.mean(answers[valid] == np.asarray(gold)[valid]) - 0.8) < 0.015
    perm = np.random.default_rng(7).permutation(N)[:500]
    again = np.asarray(judge_answers(judge, key, jnp.asarray(perm), gold[perm]))
    np.testing.assert_array_equal(again, answers[perm])


def test_bad_judge_settings():
    with pytest.raises(AlbandError, match="position_bias"):
        make_pair_judge(Price(), position_bias=1.5)
    with pytest.raises(AlbandError, match="tie_rate"):
        make_pair_judge(Price(), tie_rate=1.0)
    with pytest.raises(AlbandError, match="beta"):
        make_pair_judge(Price(), beta=0.0)


def test_the_live_simulated_judge_answers_as_the_simulator_and_ties_are_paid_invalid():
    from alband.annotation import Item
    from alband.annotators.simulated_judge import SimulatedLivePairJudge
    from alband.costs.prices import Price
    from alband.simulate.judge_model import judge_answers, make_pair_judge

    rng = np.random.default_rng(0)
    n = 200
    gold = rng.integers(0, 2, n).astype(np.int32)
    margin = rng.normal(size=n).astype(np.float32) * 2
    judge = make_pair_judge(Price(1.0, 5.0, 0.001), flip_rate=0.1, position_bias=0.2, beta=1.0, tie_rate=0.1,
                            prompt_tokens=50, output_tokens=5)
    key = jax.random.PRNGKey(3)
    chars = rng.integers(10, 500, n).astype(np.int32)
    live = SimulatedLivePairJudge("sim", judge, key, gold, chars, chars, margin)
    expected = np.asarray(judge_answers(judge, key, jnp.arange(n), jnp.asarray(gold), jnp.asarray(margin)))
    got = [live.annotate(Item(i, f"p{i}")) for i in range(n)]
    assert [(-1 if a.label is None else a.label) for a in got] == expected.tolist()
    ties = [a for a in got if a.label is None]
    assert ties and all(a.extra["invalid_reason"] == "tie" and a.cost_usd > 0 for a in ties)
    assert all(a.cost_usd <= live.max_cost_usd(Item(a.pool_index, a.item_id)) for a in got)
