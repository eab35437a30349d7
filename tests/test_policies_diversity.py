"""Diversity and Bayesian policies (coreset, BADGE, BALD, information density) and streamed top-B.

Distinct, fresh-first batches on random and degenerate pools; each score or
pick cross-checked against an explicit NumPy computation.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.errors import AlbandError
from alband.models import SoftmaxRegression
from alband.models.softmax_regression import SoftmaxParams
from alband.policies import RoundContext, make_policy
from alband.policies.badge import gradient_embedding, gradient_embedding_sq_distances
from alband.policies.bald import (
    laplace_precision_blocks,
    laplace_precision_diag,
    laplace_weight_samples,
    mutual_information,
    sample_probabilities,
)
from alband.policies.coreset import fill_invalid, k_center_greedy, min_squared_distance_to_set
from alband.policies.density import information_density_scores
from alband.policies._chunked import fold_masked_rows, streamed_top_b, streamed_top_b_device
from alband.simulate import EpisodeConfig, simulate

from helpers import episode_data, llm_annotator

N, D, C = 24, 3, 4
POLICIES = ["coreset", "badge", "bald", "information_density"]


def _context(x, probs, queried, w=None, b=None, cost=None) -> RoundContext:
    n, d = x.shape
    c = probs.shape[1]
    w = np.zeros((d, c)) if w is None else w
    b = np.zeros(c) if b is None else b
    return RoundContext(
        x=jnp.asarray(x, jnp.float32),
        queried=jnp.asarray(queried, bool),
        probs=jnp.asarray(probs, jnp.float32),
        params=SoftmaxParams(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)),
        cost_usd=jnp.ones(n, jnp.float32) if cost is None else jnp.asarray(cost, jnp.float32),
        round=jnp.int32(1),
        head=(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)),
    )


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _random_pool(rng, n=N, d=D, c=C, kind="random"):
    x = rng.normal(size=(n, d))
    if kind == "duplicates":
        x = np.repeat(x[:1], n, axis=0)
    elif kind == "zeros":
        x[: n // 2] = 0.0
    logits = rng.normal(size=(n, c)) * 2
    probs = _softmax(logits)
    if kind == "one_hot":
        probs = np.eye(c)[rng.integers(0, c, n)]
    return x, probs


@lru_cache(maxsize=None)
def _jitted_select(name: str, batch: int):
    policy = make_policy(name)

    @jax.jit
    def run(ctx, key):
        return policy.select(policy.init(ctx), ctx, key, batch)[0]

    return run


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(POLICIES),
    batch=st.sampled_from([3, N]),
    kind=st.sampled_from(["random", "one_hot", "duplicates", "zeros"]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_batches_are_distinct_and_fresh_first(name, batch, kind, seed, data):
    rng = np.random.default_rng(seed)
    queried = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    x, probs = _random_pool(rng, kind=kind)
    ctx = _context(x, probs, queried, w=rng.normal(size=(D, C)))
    index = np.asarray(_jitted_select(name, batch)(ctx, jax.random.PRNGKey(seed)))
    assert index.shape == (batch,)
    assert len(set(index.tolist())) == batch
    assert ((index >= 0) & (index < N)).all()
    # Every unqueried item is used before any queried one appears.
    assert (~queried[index]).sum() == min(batch, (~queried).sum())


def test_fewer_unqueried_items_than_the_batch():
    rng = np.random.default_rng(1)
    x, probs = _random_pool(rng)
    queried = np.ones(N, bool)
    queried[[4, 9]] = False
    ctx = _context(x, probs, queried)
    for name in POLICIES:
        index = np.asarray(_jitted_select(name, N)(ctx, jax.random.PRNGKey(0)))
        assert sorted(index.tolist()) == list(range(N)), name
        assert set(index[:2].tolist()) == {4, 9}, name


def test_fill_invalid_prefers_the_requested_group():
    queried = jnp.array([True, False, True, False, False, True])
    picks = jnp.array([4, -1, -1])
    fresh_first = np.asarray(fill_invalid(picks, picks >= 0, queried))
    assert fresh_first.tolist() == [4, 1, 3]
    queried_first = np.asarray(fill_invalid(picks, picks >= 0, queried, prefer_queried=True))
    assert queried_first.tolist() == [4, 0, 2]
    ordered = np.asarray(fill_invalid(picks, picks >= 0, queried, prefer_queried=True,
                                      order=jnp.array([0.0, 0, 1, 0, 0, 5])))
    assert ordered.tolist() == [4, 5, 2]


# --- coreset -------------------------------------------------------------------------------------


def _numpy_k_center(x, queried, batch):
    x = np.asarray(x, np.float64)
    labelled = x[queried]
    dmin = ((x[:, None, :] - labelled[None, :, :]) ** 2).sum(-1).min(1)
    picked = np.zeros(len(x), bool)
    picks = []
    for _ in range(batch):
        i = int(np.argmax(np.where(~picked & ~queried, dmin, -np.inf)))
        picks.append(i)
        picked[i] = True
        dmin = np.minimum(dmin, ((x - x[i]) ** 2).sum(1))
    return picks


@pytest.mark.parametrize("seed", range(5))
def test_coreset_equals_numpy_k_center_greedy(seed):
    rng = np.random.default_rng(seed)
    n = 80
    x = rng.normal(size=(n, 5))
    queried = rng.random(n) < 0.2
    queried[0] = True
    ctx = _context(x, _softmax(rng.normal(size=(n, 3))), queried)
    index, state = make_policy("coreset").select(make_policy("coreset").init(ctx), ctx, jax.random.PRNGKey(0), 12)
    assert np.asarray(index).tolist() == _numpy_k_center(x, queried, 12)
    expected = ((x[:, None] - x[queried][None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(np.asarray(state.min_sq_dist), expected, rtol=1e-4, atol=1e-4)


def test_coreset_state_carries_over_rounds():
    rng = np.random.default_rng(3)
    n = 60
    x = rng.normal(size=(n, 4))
    queried = np.zeros(n, bool)
    queried[:5] = True
    policy = make_policy("coreset")
    ctx = _context(x, _softmax(rng.normal(size=(n, 3))), queried)
    first, state = policy.select(policy.init(ctx), ctx, jax.random.PRNGKey(0), 6)
    queried2 = queried.copy()
    queried2[np.asarray(first)] = True
    ctx2 = ctx._replace(queried=jnp.asarray(queried2))
    carried, _ = policy.select(state, ctx2, jax.random.PRNGKey(1), 6)
    fresh, _ = policy.select(policy.init(ctx2), ctx2, jax.random.PRNGKey(1), 6)
    assert np.asarray(carried).tolist() == np.asarray(fresh).tolist() == _numpy_k_center(x, queried2, 6)


def test_min_distance_blocks_cover_every_labelled_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    mask = rng.random(50) < 0.5
    got = min_squared_distance_to_set(jnp.asarray(x), jnp.asarray(mask), block_rows=7)
    expected = ((x[:, None] - x[mask][None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)
    total = fold_masked_rows(lambda acc, rows, valid: acc + jnp.sum(jnp.where(valid, rows, 0)), jnp.int32(0),
                             jnp.asarray(mask), 4)
    assert int(total) == int(np.flatnonzero(mask).sum())


def test_coreset_without_labels_starts_at_a_random_item():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(30, 2)), jnp.float32)
    picks = jax.vmap(lambda k: k_center_greedy(x, jnp.zeros(30, bool), jnp.full(30, jnp.inf), k, 3))(
        jax.random.split(jax.random.PRNGKey(0), 20))
    assert len(set(np.asarray(picks[:, 0]).tolist())) > 5


# --- BADGE ---------------------------------------------------------------------------------------


def test_badge_distances_equal_the_explicit_kronecker_embedding():
    rng = np.random.default_rng(0)
    x, probs = _random_pool(rng, n=15, d=4, c=3)
    g = np.asarray(gradient_embedding(jnp.asarray(probs, jnp.float32), jnp.asarray(x, jnp.float32)), np.float64)
    # Independent reference: (p - onehot(argmax p)) kron x with numpy.
    a = probs - np.eye(3)[probs.argmax(1)]
    reference = np.stack([np.kron(a[i], x[i]) for i in range(15)])
    np.testing.assert_allclose(g, reference, rtol=1e-5, atol=1e-6)
    for j in (0, 7, 14):
        got = gradient_embedding_sq_distances(jnp.asarray(probs, jnp.float32), jnp.asarray(x, jnp.float32), j)
        np.testing.assert_allclose(np.asarray(got), ((reference - reference[j]) ** 2).sum(1), rtol=1e-4, atol=1e-5)


def test_badge_first_pick_is_the_largest_gradient_and_then_d2_sampling():
    rng = np.random.default_rng(5)
    n = 6
    x, probs = _random_pool(rng, n=n, d=2, c=3)
    queried = np.zeros(n, bool)
    ctx = _context(x, probs, queried)
    a = probs - np.eye(3)[probs.argmax(1)]
    g = np.stack([np.kron(a[i], x[i]) for i in range(n)])
    first = int(np.argmax((g**2).sum(1)))
    d2 = ((g - g[first]) ** 2).sum(1)
    expected = d2 / d2.sum()
    select = _jitted_select("badge", 2)
    picks = np.asarray(jax.vmap(lambda k: select(ctx, k))(jax.random.split(jax.random.PRNGKey(0), 4000)))
    assert (picks[:, 0] == first).all()
    freq = np.bincount(picks[:, 1], minlength=n) / len(picks)
    assert freq[first] == 0
    np.testing.assert_allclose(freq, expected, atol=0.03)


def test_badge_with_one_hot_predictions_is_still_distinct():
    rng = np.random.default_rng(2)
    x, probs = _random_pool(rng, kind="one_hot")
    ctx = _context(x, probs, np.zeros(N, bool))
    index = np.asarray(_jitted_select("badge", N)(ctx, jax.random.PRNGKey(0)))
    assert sorted(index.tolist()) == list(range(N))


# --- BALD ----------------------------------------------------------------------------------------


def _bald_setup(seed=0, n=40, d=3, c=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(d, c))
    b = rng.normal(size=c) * 0.3
    probs = _softmax(x @ w + b)
    queried = rng.random(n) < 0.4
    return x, w, b, probs, queried


@pytest.mark.parametrize("hessian", ["block", "diag"])
def test_laplace_precision_equals_numpy(hessian):
    x, w, b, probs, queried = _bald_setup()
    xj, pj, qj = jnp.asarray(x, jnp.float32), jnp.asarray(probs, jnp.float32), jnp.asarray(queried)
    s = probs * (1 - probs)
    if hessian == "block":
        reference = np.stack([(x[queried] * s[queried, k:k + 1]).T @ x[queried] + np.eye(3) / 2.0 for k in range(3)])
        got = laplace_precision_blocks(xj, pj, qj, 2.0, block_rows=5)
    else:
        reference = (x[queried] ** 2).T @ s[queried] + 1 / 2.0
        got = laplace_precision_diag(xj, pj, qj, 2.0)
    np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-4, atol=1e-5)


def test_laplace_samples_have_the_inverse_hessian_as_covariance():
    x, w, b, probs, queried = _bald_setup(n=30)
    params = SoftmaxParams(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    samples = np.asarray(laplace_weight_samples(params, jnp.asarray(x, jnp.float32), jnp.asarray(probs, jnp.float32),
                                                jnp.asarray(queried), jax.random.PRNGKey(0), 20000), np.float64)
    H = np.asarray(laplace_precision_blocks(jnp.asarray(x, jnp.float32), jnp.asarray(probs, jnp.float32),
                                            jnp.asarray(queried), 1.0), np.float64)
    np.testing.assert_allclose(samples.mean(0), w, atol=0.03)
    for k in range(3):
        np.testing.assert_allclose(np.cov(samples[:, :, k].T), np.linalg.inv(H[k]), atol=0.02)


def test_bald_equals_numpy_mutual_information_from_the_same_samples():
    x, w, b, probs, queried = _bald_setup()
    ctx = _context(x, probs, queried, w=w, b=b)
    key = jax.random.PRNGKey(7)
    samples = laplace_weight_samples(ctx.params, ctx.x, ctx.probs, ctx.queried, key, 30)
    got = np.asarray(mutual_information(sample_probabilities(ctx.x, samples, ctx.params.b)))
    S = np.asarray(samples, np.float64)
    p = np.stack([_softmax(x @ S[s] + b) for s in range(30)])  # (S, N, C)
    mean = p.mean(0)
    reference = -(mean * np.log(mean)).sum(1) + (p * np.log(p)).sum(2).mean(0)
    np.testing.assert_allclose(got, reference, rtol=1e-3, atol=1e-5)
    # The policy scores with the same key: it picks the top of these.
    index, _ = make_policy("bald", n_samples=30).select((), ctx, key, 5)
    top = np.argsort(-np.where(queried, -np.inf, reference))[:5]
    assert set(np.asarray(index).tolist()) == set(top.tolist())


def test_bald_rejects_bad_options():
    with pytest.raises(AlbandError, match="n_samples"):
        make_policy("bald", n_samples=1)
    with pytest.raises(AlbandError, match="hessian"):
        make_policy("bald", hessian="full")


# --- information density -------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_density_equals_the_explicit_similarity_matrix(beta):
    rng = np.random.default_rng(0)
    x, probs = _random_pool(rng, n=30, d=4, c=3)
    x[3] = 0.0
    queried = rng.random(30) < 0.3
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    sim = unit @ unit.T  # explicit N x N cosine similarity
    density = np.maximum(sim[:, ~queried].mean(1), 0.0)
    entropy = -(probs * np.log(probs)).sum(1)
    got = information_density_scores(jnp.asarray(probs, jnp.float32), jnp.asarray(x, jnp.float32),
                                     jnp.asarray(queried), beta=beta)
    np.testing.assert_allclose(np.asarray(got), entropy * density**beta, rtol=1e-4, atol=1e-6)


# --- streamed top-B ------------------------------------------------------------------------------


def _row_score(rows):
    return jnp.round(rows[:, 0] * 3.0)  # coarse: many ties


@settings(max_examples=10, deadline=None)
@given(
    shape=st.sampled_from([(1, 1, 4), (9, 9, 4), (37, 3, 16), (37, 20, 16), (90, 5, 200)]),
    seed=st.integers(0, 2**16),
    exclude_share=st.sampled_from([0.0, 0.3, 0.95]),
)
def test_streamed_top_b_equals_one_shot_top_k(shape, seed, exclude_share):
    n, batch, chunk = shape  # a few fixed shapes: each one compiles the scan once
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    exclude = rng.random(n) < exclude_share
    scores = jnp.where(jnp.asarray(exclude), -jnp.inf, _row_score(jnp.asarray(x)))
    expected = jax.lax.top_k(scores, batch)
    for source in (jnp.asarray(x), x, (x[i:i + 7] for i in range(0, n, 7))):
        got = streamed_top_b(_row_score, source, batch, chunk, exclude=exclude)
        np.testing.assert_array_equal(np.asarray(got.indices), np.asarray(expected[1]))
        np.testing.assert_array_equal(np.asarray(got.scores), np.asarray(expected[0]))


def test_streamed_top_b_reads_a_memory_map(tmp_path):
    x = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    np.save(tmp_path / "pool.npy", x)
    pool = np.load(tmp_path / "pool.npy", mmap_mode="r")
    got = streamed_top_b(_row_score, pool, 10, 128)
    expected = jax.lax.top_k(_row_score(jnp.asarray(x)), 10)
    np.testing.assert_array_equal(np.asarray(got.indices), np.asarray(expected[1]))


def test_streamed_top_b_inside_jit_and_vmap():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 50, 2)), jnp.float32)
    got = jax.vmap(lambda xi: streamed_top_b_device(_row_score, xi, 5, 8).indices)(x)
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(jax.lax.top_k(_row_score(x[k]), 5)[1]))


def test_streamed_top_b_rejects_bad_input():
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(AlbandError, match="exceeds the 5 rows"):
        streamed_top_b(_row_score, x, 6)
    with pytest.raises(AlbandError, match="exclude must have shape"):
        streamed_top_b(_row_score, x, 2, exclude=np.zeros(4, bool))
    with pytest.raises(AlbandError, match="2-D"):
        streamed_top_b(_row_score, np.zeros(5, np.float32), 2)


# --- inside the simulator ------------------------------------------------------------------------


def _simulate(policy):
    config = EpisodeConfig(SoftmaxRegression(3, max_iter=20), policy, 4, 5, 3)
    trace = simulate(config, episode_data(n=60), llm_annotator(), 100.0, jax.random.PRNGKey(2))
    bought = np.concatenate([np.asarray(trace.initial_index), np.asarray(trace.query_index).ravel()])
    assert len(set(bought.tolist())) == len(bought) == 4 + 5 * 3
    assert np.asarray(trace.query_accepted).all()
    return trace


def test_badge_runs_inside_simulate():
    _simulate(make_policy("badge"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coreset", "bald", "information_density"])
def test_policy_runs_inside_simulate(name):
    _simulate(make_policy(name))


@pytest.mark.parametrize("name", POLICIES)
def test_vmap_over_pools_equals_each_pool_alone(name):
    rng = np.random.default_rng(11)
    contexts = []
    for _ in range(2):
        x, probs = _random_pool(rng)
        contexts.append(_context(x, probs, rng.random(N) < 0.3, w=rng.normal(size=(D, C))))
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *contexts)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    select = _jitted_select(name, 5)
    batched = np.asarray(jax.vmap(select)(stacked, keys))
    for k in range(2):
        np.testing.assert_array_equal(batched[k], np.asarray(select(contexts[k], keys[k])))
