"""Meta-bandits over strategies: EXP4.P against numpy, IW-ACC, per-dollar Thompson sampling, simulate, live loop."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.errors import AlbandError
from alband.loop import LoopSettings, live_rounds
from alband.models import SoftmaxRegression, init_params
from alband.policies import RoundContext, available_policies, make_policy, score_policy
from alband.policies.meta_bandit import importance_weighted_accuracy
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, simulate, simulate_seeds
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, episode_data, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)


def _half(name: str, low: bool, n_half: int):
    """A strategy taking the lowest unqueried indices of one half of the pool."""

    def score(ctx, key):
        i = jnp.arange(ctx.queried.shape[0])
        inside = (i < n_half) if low else (i >= n_half)
        return jnp.where(inside, -i.astype(jnp.float32), -1e9)

    return score_policy(name, score)


def _context(probs, queried, cost=None):
    n, c = probs.shape
    return RoundContext(
        x=jnp.zeros((n, 2)),
        queried=jnp.asarray(queried),
        probs=jnp.asarray(probs, jnp.float32),
        params=init_params(SoftmaxRegression(c), 2),
        cost_usd=jnp.ones(n) if cost is None else jnp.asarray(cost, jnp.float32),
        round=jnp.int32(1),
    )


def _one_hot_probs(predicted, n_classes=2):
    probs = np.full((len(predicted), n_classes), 0.1 / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = 0.9
    return probs


# ---------------------------------------------------------------------------
# registry and hyper-parameters


def test_meta_policies_are_registered_and_hashable():
    assert {"albl", "meta_ts"} <= set(available_policies())
    a = make_policy("albl", strategies=("entropy", "random", ("linucb", (("alpha", 2.0),))))
    assert a is make_policy("albl", strategies=("entropy", "random", ("linucb", (("alpha", 2.0),))))
    make_policy("meta_ts", strategies=("margin", "lints"), discount=1.0)


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("albl", {"strategies": "entropy"}, "strategies must be a tuple of policy names"),
        ("albl", {"strategies": ("entropy",)}, "needs at least 2 strategies"),
        ("albl", {"strategies": ("entropy", "nope")}, "unknown query policy 'nope'"),
        ("albl", {"strategies": ("entropy", 3)}, "neither a policy name"),
        ("albl", {"strategies": ("entropy", ("linucb", 5))}, r"hyper-parameters must be \(\(key, value\), \.\.\.\)"),
        ("albl", {"strategies": ("entropy", ("linucb", (("alpha", -1.0),)))}, "alpha must be a non-negative"),
        ("albl", {"p_min": 0.6}, "p_min=0.6 must be below 1/K"),
        ("albl", {"horizon": 0}, "horizon must be an integer >= 1"),
        ("meta_ts", {"discount": 0.0}, r"discount must be in \(0, 1\]"),
        ("meta_ts", {"min_round_usd": -1.0}, "min_round_usd must be a positive number"),
    ],
)
def test_bad_hyperparameters_are_named(name, kwargs, message):
    with pytest.raises(AlbandError, match=message):
        make_policy(name, **kwargs)


def test_importance_weighted_accuracy_matches_numpy():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 50)
    importance = np.where(rng.random(50) < 0.4, rng.uniform(1, 5, 50), 0.0)
    label = np.where(importance > 0, rng.integers(0, 3, 50), -1)
    correct = probs.argmax(1) == label
    expected = (importance * correct).sum() / importance.sum()
    got = importance_weighted_accuracy(jnp.asarray(probs), jnp.asarray(importance, jnp.float32), jnp.asarray(label))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(importance_weighted_accuracy(jnp.asarray(probs), jnp.zeros(50), jnp.full(50, -1))) == 0.0


# ---------------------------------------------------------------------------
# ALBL: EXP4.P step by step


class _NumpyEXP4P:
    """EXP4.P (Beygelzimer et al. 2011) with a general advice matrix, in float64."""

    def __init__(self, advice, p_min, delta, horizon):
        self.advice = np.asarray(advice, float)  # (experts, actions)
        self.w = np.ones(len(advice))
        self.p_min, self.delta, self.horizon = p_min, delta, horizon

    def probabilities(self):
        n_actions = self.advice.shape[1]
        return (1 - n_actions * self.p_min) * (self.w @ self.advice) / self.w.sum() + self.p_min

    def update(self, action, reward):
        p = self.probabilities()
        n_experts, n_actions = self.advice.shape
        r_hat = np.zeros(n_actions)
        r_hat[action] = reward / p[action]
        y_hat = self.advice @ r_hat
        v_hat = (self.advice / p).sum(1)
        bonus = math.sqrt(math.log(n_experts / self.delta) / (n_actions * self.horizon))
        self.w = self.w * np.exp(self.p_min / 2 * (y_hat + v_hat * bonus))


def test_albl_follows_exp4p_and_iw_accuracy_round_by_round():
    n, half, batch = 40, 20, 3
    strategies = (_half("low", True, half), _half("high", False, half))
    policy = make_policy("albl", strategies=strategies, horizon=20, p_min=0.1, delta=0.5)
    reference = _NumpyEXP4P(np.eye(2), 0.1, 0.5, 20)
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, n)
    queried = np.zeros(n, bool)
    importance = np.zeros(n)
    select, update = jax.jit(policy.select, static_argnums=3), jax.jit(policy.update)
    state = policy.init(_context(_one_hot_probs(gold), queried))
    last_arm = None
    for t in range(8):
        # The refitted learner is right on the low half, wrong on the high half.
        predicted = np.where(np.arange(n) < half, gold, 1 - gold)
        ctx = _context(_one_hot_probs(predicted), queried)
        if last_arm is not None:
            labelled = importance > 0
            iw_acc = (importance * (predicted == gold))[labelled].sum() / importance[labelled].sum()
            reference.update(last_arm, iw_acc)
        index, state = select(state, ctx, jax.random.PRNGKey(t), batch)
        index = np.asarray(index)
        arm = 0 if index[0] < half else 1
        assert int(state.arm) == arm
        expected = np.flatnonzero(~queried & ((np.arange(n) < half) == (arm == 0)))[:batch]
        np.testing.assert_array_equal(index, expected)
        p = reference.probabilities()
        assert float(state.arm_prob) == pytest.approx(p[arm], rel=1e-5)
        labels = gold[index]
        state = update(state, ctx, jnp.asarray(index), jnp.asarray(labels), jnp.ones(batch, bool))
        importance[index] = 1.0 / p[arm]
        np.testing.assert_allclose(state.importance, importance, rtol=1e-5)
        queried[index] = True
        last_arm = arm
    # The strategy whose labels the learner gets right earns the higher weight.
    assert reference.probabilities()[0] > reference.probabilities()[1]
    np.testing.assert_allclose(
        np.asarray(jax.nn.softmax(state.log_weights)), reference.w / reference.w.sum(), rtol=1e-4
    )


def test_albl_runs_the_drawn_strategy_and_updates_every_strategy():
    rng = np.random.default_rng(2)
    n, d = 30, 3
    ctx = RoundContext(
        x=jnp.asarray(rng.normal(size=(n, d)), jnp.float32),
        queried=jnp.zeros(n, bool),
        probs=jnp.asarray(rng.dirichlet(np.ones(3), n), jnp.float32),
        params=init_params(SoftmaxRegression(3), d),
        cost_usd=jnp.ones(n),
        round=jnp.int32(1),
    )
    policy = make_policy("albl", strategies=("entropy", "linucb"))
    entropy, linucb = make_policy("entropy"), make_policy("linucb")
    state = policy.init(ctx)
    select = jax.jit(policy.select, static_argnums=3)
    arms = set()
    for seed in range(12):
        index, new_state = select(state, ctx, jax.random.PRNGKey(seed), 4)
        arm = int(new_state.arm)
        arms.add(arm)
        expected, _ = (entropy.select((), ctx, None, 4) if arm == 0
                       else linucb.select(state.strategies[1], ctx, None, 4))
        np.testing.assert_array_equal(index, expected)
    assert arms == {0, 1}
    # Whatever chose the batch, linucb learns from its answers.
    after = policy.update(new_state, ctx, index, jnp.asarray([0, 1, 2, 0]), jnp.ones(4, bool))
    assert float(jnp.abs(after.strategies[1].model.b).sum()) > 0
    assert bool(after.pending)


# ---------------------------------------------------------------------------
# meta_ts: accuracy gain per dollar


def test_meta_ts_reward_is_iw_accuracy_gain_per_dollar():
    n, half, batch = 20, 10, 2
    strategies = (_half("low", True, half), _half("high", False, half))
    policy = make_policy("meta_ts", strategies=strategies, discount=1.0)
    cost = np.where(np.arange(n) < half, 0.5, 0.05)
    gold = np.zeros(n, int)
    queried = np.zeros(n, bool)
    select, update = jax.jit(policy.select, static_argnums=3), jax.jit(policy.update)
    state = policy.init(_context(_one_hot_probs(gold), queried, cost))
    accuracies, arms, usd, importance = [], [], [], np.zeros(n)
    for t in range(4):
        predicted = np.where(np.arange(n) < 2 * t + 1, gold, 1 - gold)  # the learner gets better
        ctx = _context(_one_hot_probs(predicted), queried, cost)
        labelled = importance > 0
        accuracies.append((importance * (predicted == gold))[labelled].sum() / max(importance.sum(), 1e-30))
        index, state = select(state, ctx, jax.random.PRNGKey(t), batch)
        index = np.asarray(index)
        arms.append(int(state.arm))
        state = update(state, ctx, jnp.asarray(index), jnp.asarray(gold[index]), jnp.ones(batch, bool))
        importance[index] = 1.0 / float(state.arm_prob)
        usd.append(cost[index].sum())
        queried[index] = True
    # Rounds 2 and 3 were credited (round 1 had no earlier estimate), at the next select.
    rewards = {1: (accuracies[2] - accuracies[1]) / usd[1], 2: (accuracies[3] - accuracies[2]) / usd[2]}
    per_arm = {k: [r for t, r in rewards.items() if arms[t] == k] for k in (0, 1)}
    np.testing.assert_allclose(state.count, [len(per_arm[0]), len(per_arm[1])])
    np.testing.assert_allclose(state.mean, [np.mean(per_arm[k]) if per_arm[k] else 0.0 for k in (0, 1)], rtol=1e-5)
    np.testing.assert_allclose(
        state.spread, [np.sum((np.array(per_arm[k]) - np.mean(per_arm[k])) ** 2) if per_arm[k] else 0.0 for k in (0, 1)],
        rtol=1e-4, atol=1e-9,
    )


def test_meta_ts_prefers_the_strategy_with_more_accuracy_per_dollar():
    """Both halves teach the learner equally; one costs ten times less per label."""
    n, half, batch, rounds = 800, 400, 8, 30
    strategies = (_half("dear", True, half), _half("cheap", False, half))
    policy = make_policy("meta_ts", strategies=strategies, discount=1.0)
    cost = np.where(np.arange(n) < half, 1.0, 0.1)
    # Evenly spread hardness: any run of items is about as hard as any other.
    hardness = (np.arange(n) * 0.6180339887) % 1.0
    gold = np.zeros(n, int)
    queried = np.zeros(n, bool)
    select, update = jax.jit(policy.select, static_argnums=3), jax.jit(policy.update)
    state = policy.init(_context(_one_hot_probs(gold), queried, cost))
    arms = []
    for t in range(rounds):
        skill = 0.03 * (t + 1)  # the learner improves every round, whoever chose
        ctx = _context(_one_hot_probs(np.where(hardness < skill, gold, 1 - gold)), queried, cost)
        index, state = select(state, ctx, jax.random.PRNGKey(t), batch)
        arms.append(int(state.arm))
        state = update(state, ctx, index, jnp.asarray(gold[np.asarray(index)]), jnp.ones(batch, bool))
        queried[np.asarray(index)] = True
    assert np.mean(np.array(arms[-10:]) == 1) >= 0.8
    # A gain of about 0.03 per round: 0.03 / $8 against 0.03 / $0.8.
    dear, cheap = np.asarray(state.mean)
    assert 0.02 < cheap < 0.06 and 0.001 < dear < 0.008


def test_discounted_statistics_equal_weighted_moments():
    from alband.policies.meta_bandit import add_reward

    rng = np.random.default_rng(5)
    gamma, rounds = 0.8, 25
    arms = rng.integers(0, 3, rounds)
    rewards = rng.normal(2.0, 0.5, rounds)
    count, mean, spread = jnp.zeros(3), jnp.zeros(3), jnp.zeros(3)
    for a, r in zip(arms, rewards):
        count, mean, spread = add_reward(count, mean, spread, jnp.arange(3) == a, jnp.float32(r), gamma)
    for k in range(3):
        age = np.flatnonzero(arms == k)
        w = gamma ** (rounds - 1 - age)
        m = np.sum(w * rewards[age]) / w.sum()
        assert float(count[k]) == pytest.approx(w.sum(), rel=1e-5)
        assert float(mean[k]) == pytest.approx(m, rel=1e-5)
        assert float(spread[k]) == pytest.approx(np.sum(w * (rewards[age] - m) ** 2), rel=1e-3)


# ---------------------------------------------------------------------------
# inside the simulator and the live loop


def _bought(trace) -> np.ndarray:
    initial = np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)]
    return np.concatenate([initial, np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["albl", "meta_ts"])
def test_meta_policies_run_in_vmapped_simulate(name):
    policy = make_policy(name, strategies=("entropy", "random", "linucb"))
    traces = simulate_seeds(EpisodeConfig(LEARNER, policy, 4, 5, 6), episode_data(n=60), llm_annotator(), 10.0,
                            jnp.arange(2))
    for s in range(2):
        trace = jax.tree_util.tree_map(lambda a: a[s], traces)
        for row in np.asarray(trace.query_index):
            assert len(set(row.tolist())) == len(row)
        bought = _bought(trace)
        assert len(bought) == len(set(bought.tolist())) == 4 + 5 * 6


@pytest.mark.slow
def test_live_loop_buys_what_simulate_predicts_for_albl(tmp_path):
    x, y, xt, yt, chars = blobs()
    task = Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), ["w" * int(c) for c in chars],
                x, y, xt, yt, ("a", "b", "c"))
    policy = make_policy("albl", strategies=("margin", "random", "lints"))
    settings_ = LoopSettings(LEARNER, policy, 5, 6, 5, seed=4, budget_usd=10.0)
    model = llm_annotator()
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(4).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings_, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd()))
        live_items = [r.pool_index for r in ledger.rows()]
    trace = simulate(EpisodeConfig(LEARNER, policy, 5, 6, 5), task.episode_data(), model, 10.0, jax.random.PRNGKey(4))
    assert live_items == _bought(trace).tolist()
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy), atol=1e-6)
