"""Linear bandit policies: numpy references (same normals), rank-one widths, diverse batches, simulate, live loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.errors import AlbandError
from alband.loop import LoopSettings, live_rounds
from alband.models import SoftmaxRegression, init_params
from alband.policies import RoundContext, available_policies, make_policy
from alband.policies._rank_one import rank_one_widths, sherman_morrison, squared_widths, woodbury, woodbury_widths
from alband.policies.linear_bandits import LaplaceState, laplace_update, surprise_reward, thompson_normals
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, simulate, simulate_seeds
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, episode_data, llm_annotator

LINEAR = ["linucb", "lints", "lints_laplace", "greedy_linear"]
LEARNER = SoftmaxRegression(3, max_iter=50)


def _context(n, d, c, queried=None, seed=0, x=None):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)).astype(np.float32) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    x = rng.normal(size=(n, d)).astype(np.float32) if x is None else x
    return RoundContext(
        x=jnp.asarray(x),
        queried=jnp.asarray(np.zeros(n, bool) if queried is None else queried),
        probs=jnp.asarray(probs),
        params=init_params(SoftmaxRegression(c), d),
        cost_usd=jnp.ones(n),
        round=jnp.int32(1),
    )


def _phi(x, bias=True):
    x = np.asarray(x, np.float64)
    return np.concatenate([x, np.ones((len(x), 1))], 1) if bias else x


def _np_reward(probs, labels, kind):
    probs = np.asarray(probs, np.float64)
    if kind == "soft":
        return 1.0 - probs[np.arange(len(labels)), labels]
    return (probs.argmax(1) != labels).astype(float)


def _rounds(policy, ctx, n_rounds, batch, seed, kind="soft", ridge=1.0):
    """Feed ``n_rounds`` random answered batches to the policy and to a float64 ridge model."""
    rng = np.random.default_rng(seed)
    n, c = ctx.probs.shape
    state = policy.init(ctx)
    update = _jitted_update(policy)
    D = ctx.x.shape[1] + 1
    A, b = ridge * np.eye(D), np.zeros(D)
    phi = _phi(ctx.x)
    for _ in range(n_rounds):
        index = rng.choice(n, batch, replace=False)
        labels = rng.integers(-1, c, batch)  # -1: an invalid answer
        accepted = rng.random(batch) < 0.8
        state = update(state, ctx, jnp.asarray(index, jnp.int32), jnp.asarray(labels, jnp.int32), jnp.asarray(accepted))
        valid = accepted & (labels >= 0)
        r = _np_reward(np.asarray(ctx.probs)[index[valid]], labels[valid], kind)
        A += phi[index[valid]].T @ phi[index[valid]]
        b += phi[index[valid]].T @ r
    return state, A, b


_UPDATES = {}


def _jitted_update(policy):
    if policy not in _UPDATES:
        _UPDATES[policy] = jax.jit(policy.update)
    return _UPDATES[policy]


def _np_best_fresh(scores, queried, picked):
    fresh = ~queried & ~picked
    if fresh.any():
        return int(np.flatnonzero(fresh)[np.argmax(scores[fresh])])
    return int(np.flatnonzero(~picked)[0])


def _np_linucb(x, queried, A, b, alpha, batch):
    """Reference LinUCB batch: full inverse of A after every hallucinated pick, float64."""
    phi = _phi(x)
    theta = np.linalg.solve(A, b)
    mean = phi @ theta
    picked = np.zeros(len(phi), bool)
    out = []
    for _ in range(batch):
        widths = np.einsum("ij,jk,ik->i", phi, np.linalg.inv(A), phi)
        j = _np_best_fresh(mean + alpha * np.sqrt(widths), queried, picked)
        out.append(j)
        picked[j] = True
        A = A + np.outer(phi[j], phi[j])
    return out


def _np_thompson(x, queried, mean_theta, A, z, v, batch, weight_of=lambda phi: 1.0):
    """Reference batch Thompson sampling: theta~ = mean + v chol(A_k^{-1}) z_k, float64."""
    phi = _phi(x)
    picked = np.zeros(len(phi), bool)
    out = []
    for k in range(batch):
        L = np.linalg.cholesky(np.linalg.inv(A))
        theta = mean_theta + v * L @ np.asarray(z[k], np.float64)
        j = _np_best_fresh(phi @ theta, queried, picked)
        out.append(j)
        picked[j] = True
        A = A + weight_of(phi[j]) * np.outer(phi[j], phi[j])
    return out


# ---------------------------------------------------------------------------
# registry and hyper-parameters


def test_linear_policies_are_registered_with_hyperparameters():
    assert set(LINEAR) <= set(available_policies())
    assert make_policy("linucb", alpha=1.0, ridge=1.0) is make_policy("linucb", ridge=1.0, alpha=1.0)
    make_policy("lints", v=1.0, ridge=1.0)
    make_policy("lints_laplace", v=0.5, newton_steps=3)
    make_policy("greedy_linear", bias=False, reward="zero_one")


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("linucb", {"alpha": -1.0}, "alpha must be a non-negative number"),
        ("linucb", {"ridge": 0.0}, "ridge must be a positive number"),
        ("linucb", {"width_refresh": 0.5}, "width_refresh must be > 1 or None"),
        ("lints", {"v": float("nan")}, "v must be a non-negative number"),
        ("lints", {"reward": "accuracy"}, "reward must be one of soft, zero_one"),
        ("lints_laplace", {"newton_steps": 0}, "newton_steps must be an integer >= 1"),
        ("greedy_linear", {"bias": "yes"}, "bias must be True or False"),
        ("greedy_linear", {"gamma": 1.0}, "bad hyper-parameters"),
    ],
)
def test_bad_hyperparameters_are_named(name, kwargs, message):
    with pytest.raises(AlbandError, match=message):
        make_policy(name, **kwargs)


def test_surprise_reward_matches_definition():
    ctx = _context(30, 2, 4)
    labels = np.random.default_rng(1).integers(0, 4, 30)
    for kind in ("soft", "zero_one"):
        np.testing.assert_allclose(
            surprise_reward(ctx.probs, jnp.asarray(labels), kind), _np_reward(ctx.probs, labels, kind), atol=1e-6
        )


# ---------------------------------------------------------------------------
# numpy references: identical decisions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linucb_matches_numpy_reference(seed):
    n, d, batch = 80, 5, 7
    rng = np.random.default_rng(100 + seed)
    queried = rng.random(n) < 0.3
    ctx = _context(n, d, 3, queried, seed=seed)
    policy = make_policy("linucb", alpha=0.7)
    state, A, b = _rounds(policy, ctx, 6, 8, seed)
    np.testing.assert_allclose(state.model.theta, np.linalg.solve(A, b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.model.A_inv, np.linalg.inv(A), rtol=1e-4, atol=1e-6)
    index, _ = jax.jit(policy.select, static_argnums=3)(state, ctx, jax.random.PRNGKey(seed), batch)
    assert np.asarray(index).tolist() == _np_linucb(ctx.x, queried, A, b, 0.7, batch)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lints_matches_numpy_reference_under_the_same_normals(seed):
    n, d, batch = 80, 5, 7
    rng = np.random.default_rng(200 + seed)
    queried = rng.random(n) < 0.3
    ctx = _context(n, d, 3, queried, seed=seed)
    policy = make_policy("lints", v=0.8)
    state, A, b = _rounds(policy, ctx, 6, 8, seed)
    key = jax.random.PRNGKey(seed)
    index, _ = jax.jit(policy.select, static_argnums=3)(state, ctx, key, batch)
    z = np.asarray(jax.random.normal(key, (batch, d + 1)))
    np.testing.assert_array_equal(thompson_normals(key, batch, d, True), z)
    assert np.asarray(index).tolist() == _np_thompson(ctx.x, queried, np.linalg.solve(A, b), A, z, 0.8, batch)


def _np_laplace_map(m, H, phi, r):
    from scipy.optimize import minimize

    def objective(theta):
        eta = phi @ theta
        nll = np.sum(np.logaddexp(0, eta) - r * eta)
        return 0.5 * (theta - m) @ H @ (theta - m) + nll

    def gradient(theta):
        p = 1 / (1 + np.exp(-(phi @ theta)))
        return H @ (theta - m) + phi.T @ (p - r)

    return minimize(objective, m, jac=gradient, method="BFGS", options={"gtol": 1e-12}).x


def test_laplace_update_is_the_map_and_hessian_of_the_batch_posterior():
    rng = np.random.default_rng(3)
    D, B = 5, 9
    M = rng.normal(size=(D, D))
    H = M @ M.T + np.eye(D)
    m = rng.normal(size=D) * 0.3
    phi = rng.normal(size=(B, D))
    r = rng.random(B)
    valid = np.ones(B, bool)
    valid[[2, 6]] = False
    state = laplace_update(
        LaplaceState(jnp.asarray(m, jnp.float32), jnp.asarray(np.linalg.inv(H), jnp.float32)),
        jnp.asarray(phi, jnp.float32), jnp.asarray(r, jnp.float32), jnp.asarray(valid), 8,
    )
    theta = _np_laplace_map(m, H, phi[valid], r[valid])
    np.testing.assert_allclose(state.mean, theta, atol=2e-5)
    p = 1 / (1 + np.exp(-(phi[valid] @ theta)))
    H_new = H + (phi[valid] * (p * (1 - p))[:, None]).T @ phi[valid]
    np.testing.assert_allclose(state.cov, np.linalg.inv(H_new), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_lints_laplace_matches_numpy_reference(seed):
    n, d, batch = 60, 4, 6
    queried = np.random.default_rng(300 + seed).random(n) < 0.25
    ctx = _context(n, d, 3, queried, seed=seed)
    policy = make_policy("lints_laplace", v=1.0, ridge=2.0)
    state, _, _ = _rounds(policy, ctx, 4, 8, seed)
    key = jax.random.PRNGKey(7 + seed)
    index, _ = jax.jit(policy.select, static_argnums=3)(state, ctx, key, batch)
    mean = np.asarray(state.mean, np.float64)
    H = np.linalg.inv(np.asarray(state.cov, np.float64))

    def weight_of(phi):
        p = 1 / (1 + np.exp(-(phi @ mean)))
        return p * (1 - p)

    z = np.asarray(jax.random.normal(key, (batch, d + 1)))
    assert np.asarray(index).tolist() == _np_thompson(ctx.x, queried, mean, H, z, 1.0, batch, weight_of)


def test_greedy_takes_the_best_predicted_items_and_breaks_ties_at_random():
    n, d, batch = 70, 4, 5
    ctx = _context(n, d, 3, seed=4)
    policy = make_policy("greedy_linear")
    select = jax.jit(policy.select, static_argnums=3)
    state, A, b = _rounds(policy, ctx, 5, 8, 4)
    index, _ = select(state, ctx, jax.random.PRNGKey(0), batch)
    best = np.argsort(-(_phi(ctx.x) @ np.linalg.solve(A, b)))[:batch]
    assert set(np.asarray(index).tolist()) == set(best.tolist())
    # Before any reward every item ties: the first pick is uniform, not item 0.
    fresh = policy.init(ctx)
    first = [int(select(fresh, ctx, jax.random.PRNGKey(s), 1)[0][0]) for s in range(60)]
    assert len(set(first)) > 30


# ---------------------------------------------------------------------------
# rank-one widths


def test_rank_one_and_woodbury_equal_full_recomputation():
    rng = np.random.default_rng(5)
    n, d = 300, 6
    x = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
    C = jnp.eye(d + 1, dtype=jnp.float32)
    widths = squared_widths(x, C, True)
    C_block, widths_block = C, widths
    A = np.eye(d + 1)
    phi = _phi(x)
    for _ in range(5):
        rows = rng.choice(n, 8, replace=False)
        for j in rows:
            C, u, s = sherman_morrison(C, jnp.asarray(phi[j], jnp.float32))
            widths = rank_one_widths(widths, x @ u[:d] + u[d], s)
        C_block, Q = woodbury(C_block, jnp.asarray(phi[rows], jnp.float32))
        widths_block = woodbury_widths(widths_block, x, Q, True)
        A += phi[rows].T @ phi[rows]
    reference = np.einsum("ij,jk,ik->i", phi, np.linalg.inv(A), phi)
    np.testing.assert_allclose(widths, reference, rtol=1e-4)
    np.testing.assert_allclose(widths_block, reference, rtol=1e-4)
    np.testing.assert_allclose(C, np.linalg.inv(A), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(squared_widths(x, C, True), reference, rtol=1e-4)


def test_linucb_widths_stay_exact_after_many_updates():
    """600 labels in 60 rounds: the widths shrink ~1000-fold; rank-one + refresh keeps them to 1e-4."""
    ctx = _context(400, 8, 3, seed=6)
    state, A, _ = _rounds(make_policy("linucb"), ctx, 60, 12, 6)
    phi = _phi(ctx.x)
    reference = np.einsum("ij,jk,ik->i", phi, np.linalg.inv(A), phi)
    assert reference.max() / reference.min() > 5  # the widths did shrink unevenly
    np.testing.assert_allclose(state.widths, reference, rtol=1e-4)


# ---------------------------------------------------------------------------
# batches


def test_linucb_batch_is_diverse_thanks_to_hallucinated_updates():
    """20 distinct points, 5 copies each: a batch of 10 never takes two copies of one point."""
    rng = np.random.default_rng(8)
    points = rng.normal(size=(20, 16)).astype(np.float32)
    x = np.repeat(points, 5, axis=0)
    ctx = _context(100, 16, 3, seed=8, x=x)
    policy = make_policy("linucb")
    index, _ = policy.select(policy.init(ctx), ctx, jax.random.PRNGKey(1), 10)
    assert len({int(i) // 5 for i in np.asarray(index)}) == 10
    # Without the hallucinated shrinkage the same scores take copies.
    widths = np.einsum("ij,ij->i", _phi(x), _phi(x))
    assert len({int(i) // 5 for i in np.argsort(-widths)[:10]}) < 10
    # Thompson sampling: a copy's sampled value keeps a little variance, so copies are
    # rare rather than impossible; one shared sample would take 5 copies of 2 points.
    policy = make_policy("lints")
    select = jax.jit(policy.select, static_argnums=3)
    distinct = [len({int(i) // 5 for i in np.asarray(select(policy.init(ctx), ctx, jax.random.PRNGKey(s), 10)[0])})
                for s in range(10)]
    assert np.mean(distinct) >= 8.5


_N_SMALL = 16


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(LINEAR),
    queried=st.lists(st.booleans(), min_size=_N_SMALL, max_size=_N_SMALL),
    batch=st.sampled_from([1, 3, 8, _N_SMALL]),  # few static sizes: one compilation each
)
def test_batches_are_distinct_and_unqueried(name, queried, batch):
    queried = np.array(queried)
    policy = make_policy(name)
    ctx = _context(_N_SMALL, 3, 3, queried, seed=1)
    state, _, _ = _rounds(policy, ctx, 1, 4, 1)
    index, _ = _jitted_select(policy)(state, ctx, jax.random.PRNGKey(batch), batch)
    index = np.asarray(index)
    assert index.shape == (batch,) and index.dtype == np.int32
    assert len(set(index.tolist())) == batch
    # Every unqueried item is used before any queried one appears.
    assert len(index[~queried[index]]) == min(batch, int((~queried).sum()))


_SELECTS = {}


def _jitted_select(policy):
    if policy not in _SELECTS:
        _SELECTS[policy] = jax.jit(policy.select, static_argnums=3)
    return _SELECTS[policy]


# ---------------------------------------------------------------------------
# inside the simulator and the live loop


def _bought(trace) -> np.ndarray:
    initial = np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)]
    return np.concatenate([initial, np.asarray(trace.query_index)[np.asarray(trace.query_accepted)]])


@pytest.mark.slow
@pytest.mark.parametrize("name", LINEAR)
def test_policies_run_in_vmapped_simulate(name):
    data = episode_data(n=60)
    config = EpisodeConfig(LEARNER, make_policy(name), 4, 5, 6)
    traces = simulate_seeds(config, data, llm_annotator(), 10.0, jnp.arange(2))
    for s in range(2):
        trace = jax.tree_util.tree_map(lambda a: a[s], traces)
        for row in np.asarray(trace.query_index):
            assert len(set(row.tolist())) == len(row)
        bought = _bought(trace)
        assert len(bought) == len(set(bought.tolist())) == 4 + 5 * 6
    assert np.all(np.asarray(traces.test_accuracy)[:, -1] > 0.5)


@pytest.mark.slow
def test_live_loop_buys_what_simulate_predicts_for_lints(tmp_path):
    x, y, xt, yt, chars = blobs()
    task = Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), ["w" * int(c) for c in chars],
                x, y, xt, yt, ("a", "b", "c"))
    settings_ = LoopSettings(LEARNER, make_policy("lints"), 5, 6, 5, seed=3, budget_usd=10.0)
    model = llm_annotator()
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(3).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings_, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd()))
        live_items = [r.pool_index for r in ledger.rows()]
    trace = simulate(EpisodeConfig(LEARNER, settings_.policy, 5, 6, 5), task.episode_data(), model, 10.0,
                     jax.random.PRNGKey(3))
    assert live_items == _bought(trace).tolist()
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy), atol=1e-6)


def test_width_benchmark_reports_timings_and_agreement():
    from alband.benchmarks.bandits import bench_linucb_widths

    result = bench_linucb_widths(500, 8, repeats=2, batch_size=4)
    for key in ("rank_one_seconds", "woodbury_seconds_per_label", "full_seconds"):
        assert result[key] > 0
    assert result["features"] == 9 and result["batch_size"] == 4
    assert result["max_rel_diff"] < 1e-4
    assert result["machine"]["cores"] >= 1
    with pytest.raises(AlbandError, match="repeats must be an integer >= 1"):
        bench_linucb_widths(10, 2, repeats=0)
