"""Design-based and cost-aware policies: distinct batches, allowances never exceeded, NumPy cross-checks."""

from __future__ import annotations

import itertools
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.design import d_optimal_design, greedy_batch_design, round_design
from alband.errors import AlbandError
from alband.models import SoftmaxRegression
from alband.models.softmax_regression import SoftmaxParams
from alband.policies import RoundContext, make_policy
from alband.policies.cost_aware import budgeted_batch, per_dollar_scores
from alband.policies.design_based import (
    g_design_select,
    go_policy_select,
    go_targets,
    principal_projection,
    resolve_g_design_solver,
)
from alband.simulate import EpisodeConfig, simulate

from helpers import episode_data, llm_annotator

N, D, C = 24, 3, 4


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _context(x, queried, probs=None, cost=None, seed=0) -> RoundContext:
    n, d = x.shape
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(size=(n, C)) * 2) if probs is None else probs
    c = probs.shape[1]
    return RoundContext(
        x=jnp.asarray(x, jnp.float32),
        queried=jnp.asarray(queried, bool),
        probs=jnp.asarray(probs, jnp.float32),
        params=SoftmaxParams(jnp.zeros((d, c), jnp.float32), jnp.zeros(c, jnp.float32)),
        cost_usd=jnp.ones(n, jnp.float32) if cost is None else jnp.asarray(cost, jnp.float32),
        round=jnp.int32(1),
    )


SPECS = {
    "g_design": {},
    "go": {"n_targets": 8},
    "entropy_per_dollar": {},
    "budgeted": {"round_budget_usd": 0.02},
    "budgeted_design": {"round_budget_usd": 0.02},
}
FRESH_FIRST = ["g_design", "go", "entropy_per_dollar"]


@lru_cache(maxsize=None)
def _jitted_select(name: str, batch: int):
    policy = make_policy(name, **SPECS[name])

    @jax.jit
    def run(ctx, key):
        return policy.select(policy.init(ctx), ctx, key, batch)[0]

    return run


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(SPECS)),
    batch=st.sampled_from([3, N]),
    kind=st.sampled_from(["random", "duplicates", "zeros"]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_batches_are_distinct(name, batch, kind, seed, data):
    rng = np.random.default_rng(seed)
    queried = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    x = rng.normal(size=(N, D))
    if kind == "duplicates":
        x = np.repeat(x[:1], N, axis=0)
    elif kind == "zeros":
        x[::2] = 0.0
    cost = rng.uniform(0.0, 0.01, N)
    index = np.asarray(_jitted_select(name, batch)(_context(x, queried, cost=cost, seed=seed), jax.random.PRNGKey(seed)))
    assert index.shape == (batch,)
    assert len(set(index.tolist())) == batch
    assert ((index >= 0) & (index < N)).all()
    fresh = index[~queried[index]]
    if name in FRESH_FIRST:
        assert len(fresh) == min(batch, (~queried).sum())
    else:  # budgeted: fresh items fit the allowance whenever enough queried items can pad the batch
        if queried.sum() >= batch:
            assert cost[fresh].sum() <= SPECS[name]["round_budget_usd"] * (1 + 1e-6)


# --- G-/D-optimal design -------------------------------------------------------------------------


def _cross_pool(rng, n_inner=40):
    extremes = 3.0 * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)
    inner = rng.uniform(-0.5, 0.5, size=(n_inner, 2))
    return np.concatenate([inner, extremes])


def test_g_design_takes_the_extreme_points():
    x = _cross_pool(np.random.default_rng(0))
    n = len(x)
    queried = np.zeros(n, bool)
    picks = np.asarray(g_design_select(jnp.asarray(x, jnp.float32), jnp.asarray(queried), 4, eps=1e-3))
    assert set(picks.tolist()) == set(range(n - 4, n))
    queried[n - 4] = True  # +3 e1 is labelled: the design is over the other items
    picks = np.asarray(g_design_select(jnp.asarray(x, jnp.float32), jnp.asarray(queried), 3, eps=1e-3))
    assert set(picks.tolist()) == {n - 3, n - 2, n - 1}


@pytest.mark.parametrize("seed", range(3))
def test_g_design_equals_design_then_rounding_over_the_unqueried_rows(seed):
    rng = np.random.default_rng(seed)
    n, d = 60, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:6] *= 2.5
    queried = np.zeros(n, bool)
    queried[rng.choice(n, 15, replace=False)] = True  # same subset size for every seed: one compilation
    fresh = np.flatnonzero(~queried)
    design = d_optimal_design(x[fresh], eps=1e-4)
    weights = np.zeros(n, np.float32)
    weights[fresh] = np.asarray(design.weights)
    reference = np.asarray(round_design(x, weights, 8, exclude_mask=queried))
    got = np.asarray(g_design_select(jnp.asarray(x), jnp.asarray(queried), 8, eps=1e-4))
    assert got.tolist() == reference.tolist()


def test_principal_projection_keeps_the_top_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([5.0, 0.1, 3.0, 0.1, 0.1])
    y = np.asarray(principal_projection(jnp.asarray(x, jnp.float32), jnp.ones(200), 2))
    # Same Gram matrix as the projection onto the two large axes, up to rotation.
    np.testing.assert_allclose(y @ y.T, x[:, [0, 2]] @ x[:, [0, 2]].T, rtol=0, atol=0.05 * np.abs(x[:, [0, 2]]).max() ** 2)


def test_g_design_auto_solver_switches_at_the_working_dimension():
    assert resolve_g_design_solver("auto", 100, 384, None) == "greedy"  # B < d: no batch realises the design
    assert resolve_g_design_solver("auto", 100, 384, 64) == "frank-wolfe"  # B >= k after the projection
    assert resolve_g_design_solver("auto", 8, 8, None) == "frank-wolfe"
    assert resolve_g_design_solver("frank-wolfe", 2, 384, None) == "frank-wolfe"
    assert resolve_g_design_solver("greedy", 500, 4, None) == "greedy"


@pytest.mark.parametrize("seed", range(3))
def test_g_design_below_the_dimension_is_the_regularised_batch_conditioned_on_the_labels(seed):
    rng = np.random.default_rng(seed)
    n, d, batch = 60, 8, 5
    x = rng.normal(size=(n, d)).astype(np.float32)
    queried = np.zeros(n, bool)
    queried[rng.choice(n, 10, replace=False)] = True
    reference = np.asarray(greedy_batch_design(x, batch, exclude_mask=queried, condition_mask=queried))
    got = np.asarray(g_design_select(jnp.asarray(x), jnp.asarray(queried), batch))
    assert got.tolist() == reference.tolist()
    forced = np.asarray(g_design_select(jnp.asarray(x), jnp.asarray(queried), batch, solver="frank-wolfe", eps=1e-3))
    assert len(set(forced.tolist())) == batch and not queried[forced].any()


@lru_cache(maxsize=None)
def _greedy_g_design(batch: int):
    policy = make_policy("g_design", solver="greedy")
    return jax.jit(lambda ctx, key: policy.select(policy.init(ctx), ctx, key, batch)[0])


@settings(max_examples=20, deadline=None)
@given(batch=st.sampled_from([2, N]), kind=st.sampled_from(["random", "duplicates", "zeros"]),
       seed=st.integers(0, 2**16), data=st.data())
def test_greedy_g_design_batches_are_distinct_and_fresh_first(batch, kind, seed, data):
    rng = np.random.default_rng(seed)
    queried = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    x = rng.normal(size=(N, D))
    if kind == "duplicates":
        x = np.repeat(x[:1], N, axis=0)
    elif kind == "zeros":
        x[::2] = 0.0
    index = np.asarray(_greedy_g_design(batch)(_context(x, queried, seed=seed), jax.random.PRNGKey(seed)))
    assert len(set(index.tolist())) == batch and ((index >= 0) & (index < N)).all()
    assert (~queried[index]).sum() == min(batch, (~queried).sum())


def test_greedy_g_design_vmaps_over_pools():
    rng = np.random.default_rng(12)
    contexts = [_context(rng.normal(size=(N, D)), rng.random(N) < 0.5, seed=k) for k in range(2)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *contexts)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    select = _greedy_g_design(2)
    batched = np.asarray(jax.vmap(select)(stacked, keys))
    for k in range(2):
        np.testing.assert_array_equal(batched[k], np.asarray(select(contexts[k], keys[k])))


# --- GO ------------------------------------------------------------------------------------------


def _numpy_go(x, z, queried, batch, lam=1.0, sigma=1.0):
    x = np.asarray(x, np.float64)
    z = np.asarray(z, np.float64)
    d = x.shape[1]
    chosen = list(np.flatnonzero(queried))
    picks = []
    for _ in range(batch):
        best, best_value = None, np.inf
        for i in range(len(x)):
            if queried[i] or i in picks:
                continue
            rows = x[chosen + picks + [i]]
            sigma_post = np.linalg.inv(lam * np.eye(d) + rows.T @ rows / sigma**2)
            value = np.max(np.einsum("kd,de,ke->k", z, sigma_post, z))
            if value < best_value - 1e-9:
                best, best_value = i, value
        picks.append(best)
    return picks


@pytest.mark.parametrize("n_targets", [None, 10])
def test_go_equals_brute_force_greedy(n_targets):
    rng = np.random.default_rng(4)
    n, d = 30, 3
    x = rng.normal(size=(n, d))
    queried = rng.random(n) < 0.2
    key = jax.random.PRNGKey(3)
    targets = go_targets(key, n, n_targets)
    z = x if targets is None else x[np.asarray(targets)]
    got = go_policy_select(jnp.asarray(x, jnp.float32), jnp.asarray(queried), key, 5, n_targets=n_targets,
                           lam=0.5, sigma=0.7)
    assert np.asarray(got).tolist() == _numpy_go(x, z, queried, 5, lam=0.5, sigma=0.7)


# --- cost-aware ----------------------------------------------------------------------------------


def test_per_dollar_ranks_by_utility_over_cost():
    rng = np.random.default_rng(0)
    n = 50
    probs = _softmax(rng.normal(size=(n, 3)) * 2)
    cost = rng.uniform(0.001, 0.02, n)
    cost[7] = 0.0  # a free item comes first
    ctx = _context(rng.normal(size=(n, 2)), np.zeros(n, bool), probs=probs, cost=cost)
    index, _ = make_policy("per_dollar", base="entropy").select((), ctx, jax.random.PRNGKey(0), 6)
    entropy = -(probs * np.log(probs)).sum(1)
    reference = np.argsort(-(entropy / np.maximum(cost, 1e-9)))[:6]
    assert np.asarray(index).tolist() == reference.tolist()
    assert int(index[0]) == 7
    alias, _ = make_policy("entropy_per_dollar").select((), ctx, jax.random.PRNGKey(0), 6)
    assert np.asarray(alias).tolist() == reference.tolist()


def test_ratio_alone_loses_where_the_budgeted_batch_does_not():
    utility = jnp.array([0.01, 1.0, 0.0])
    cost = jnp.array([0.0001, 0.05, 0.2])
    ratio_pick = int(jnp.argmax(per_dollar_scores(utility, cost)))
    assert ratio_pick == 0  # the cheap, useless item wins on utility per dollar
    for batch in (1, 2):
        chosen = budgeted_batch(utility, cost, jnp.zeros(3, bool), 0.05005, batch)  # not both
        assert np.asarray(chosen.indices)[np.asarray(chosen.valid)].tolist() == [1]
        assert float(chosen.utility) == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.sampled_from([6, 12]),
    batch=st.sampled_from([1, 3, 6]),
    allowance=st.floats(0.0001, 3.0),
    seed=st.integers(0, 2**16),
)
def test_budgeted_batch_never_exceeds_the_allowance(n, batch, allowance, seed):
    rng = np.random.default_rng(seed)
    utility = rng.uniform(0, 1, n).astype(np.float32)
    cost = rng.choice([0.0, 0.001, 0.3, 0.7, 1.3], n).astype(np.float32) * rng.uniform(0.5, 1.5, n).astype(np.float32)
    queried = rng.random(n) < 0.3
    chosen = budgeted_batch(jnp.asarray(utility), jnp.asarray(cost), jnp.asarray(queried), allowance, batch)
    valid = np.asarray(chosen.valid)
    index = np.asarray(chosen.indices)[valid]
    assert (np.asarray(chosen.indices)[~valid] == -1).all()
    assert valid.tolist() == sorted(valid.tolist(), reverse=True)  # valid entries first
    assert len(set(index.tolist())) == len(index) <= batch
    assert not queried[index].any()
    assert cost[index].astype(np.float64).sum() <= allowance
    np.testing.assert_allclose(float(chosen.spent_usd), cost[index].astype(np.float64).sum(), rtol=1e-5, atol=1e-7)
    # At least as good as the best single affordable item, and as the optimum of a one-item batch.
    affordable = (~queried) & (cost <= allowance * (1 - 1e-6))
    if affordable.any():
        assert utility[index].sum() >= utility[affordable].max() - 1e-6
    # Against brute force on the small instances: never above the optimum, and within half of it.
    best = 0.0
    free = np.flatnonzero(~queried)
    for k in range(1, min(batch, len(free)) + 1):
        for subset in itertools.combinations(free, k):
            if cost[list(subset)].astype(np.float64).sum() <= allowance * (1 - 1e-6):
                best = max(best, float(utility[list(subset)].sum()))
    assert utility[index].sum() <= best + 1e-5
    assert utility[index].sum() >= 0.5 * best - 1e-5


def test_budgeted_policy_pads_with_queried_items():
    rng = np.random.default_rng(0)
    n = 40
    queried = np.zeros(n, bool)
    queried[:10] = True
    cost = np.full(n, 0.01)
    ctx = _context(rng.normal(size=(n, 2)), queried, cost=cost)
    index, _ = make_policy("budgeted", base="margin", round_budget_usd=0.035).select((), ctx, jax.random.PRNGKey(0), 8)
    index = np.asarray(index)
    assert len(set(index.tolist())) == 8
    assert (~queried[index]).sum() == 3  # three items of $0.01 fit $0.035
    assert (~queried[index[:3]]).all()


def test_budgeted_design_fits_the_allowance():
    rng = np.random.default_rng(1)
    n = 40
    queried = np.zeros(n, bool)
    queried[:10] = True
    cost = rng.uniform(0.001, 0.02, n)
    ctx = _context(rng.normal(size=(n, 3)), queried, cost=cost)
    index, _ = make_policy("budgeted_design", round_budget_usd=0.03).select((), ctx, jax.random.PRNGKey(0), 8)
    index = np.asarray(index)
    fresh = index[~queried[index]]
    assert len(set(index.tolist())) == 8 and len(fresh) >= 1
    assert cost[fresh].sum() <= 0.03


def test_bad_hyperparameters_are_named():
    with pytest.raises(AlbandError, match="round_budget_usd"):
        make_policy("budgeted")
    with pytest.raises(AlbandError, match="round_budget_usd must be a finite number"):
        make_policy("budgeted", round_budget_usd=-1.0)
    with pytest.raises(AlbandError, match="unknown utility 'nope'"):
        make_policy("per_dollar", base="nope")
    with pytest.raises(AlbandError, match="no option"):
        make_policy("per_dollar", base="bald", beta=2.0)
    with pytest.raises(AlbandError, match="n_targets"):
        make_policy("go", n_targets=0)
    with pytest.raises(AlbandError, match="eps"):
        make_policy("g_design", eps=0.0)
    with pytest.raises(AlbandError, match="solver must be one of auto, greedy, frank-wolfe, got 'cvxpy'"):
        make_policy("g_design", solver="cvxpy")


# --- inside the simulator ------------------------------------------------------------------------


def _simulate(policy, budget=100.0):
    config = EpisodeConfig(SoftmaxRegression(3, max_iter=20), policy, 4, 5, 3)
    trace = simulate(config, episode_data(n=60), llm_annotator(), budget, jax.random.PRNGKey(2))
    bought = np.concatenate([np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)],
                             np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]])
    assert len(set(bought.tolist())) == len(bought)
    assert (np.asarray(trace.spent_usd) <= budget * (1 + 1e-6)).all()
    return trace


def test_g_design_runs_inside_simulate():
    trace = _simulate(make_policy("g_design"))
    assert np.asarray(trace.query_accepted).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["go", "entropy_per_dollar", "budgeted", "budgeted_design"])
def test_policy_runs_inside_simulate(name):
    _simulate(make_policy(name, **SPECS[name]))


@pytest.mark.parametrize("name", ["g_design", "go", "budgeted"])
def test_vmap_over_pools_equals_each_pool_alone(name):
    rng = np.random.default_rng(11)
    contexts = [_context(rng.normal(size=(N, D)), rng.random(N) < 0.5, cost=rng.uniform(0, 0.01, N), seed=k)
                for k in range(2)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *contexts)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    select = _jitted_select(name, 3)
    batched = np.asarray(jax.vmap(select)(stacked, keys))
    for k in range(2):
        np.testing.assert_array_equal(batched[k], np.asarray(select(contexts[k], keys[k])))
