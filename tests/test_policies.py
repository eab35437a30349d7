"""Query policies: one signature, distinct unqueried batches, scores equal to a numpy reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.errors import AlbandError
from alband.models import SoftmaxRegression, init_params
from alband.policies import RoundContext, available_policies, make_policy, top_unqueried
from alband.policies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

BUILT_IN = ["random", "least_confidence", "margin", "entropy"]


def _context(n, d, c, queried, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)).astype(np.float32) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return RoundContext(
        x=jnp.asarray(rng.normal(size=(n, d)).astype(np.float32)),
        queried=jnp.asarray(queried),
        probs=jnp.asarray(probs),
        params=init_params(SoftmaxRegression(c), d),
        cost_usd=jnp.ones(n),
        round=jnp.int32(1),
    )


def test_built_in_policies_are_registered():
    assert set(BUILT_IN) <= set(available_policies())
    with pytest.raises(AlbandError, match="unknown query policy 'nope'"):
        make_policy("nope")


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(BUILT_IN),
    n=st.integers(5, 60),
    data=st.data(),
)
def test_batches_are_distinct_and_unqueried(name, n, data):
    queried = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    n_free = int((~queried).sum())
    batch = data.draw(st.integers(1, n))
    policy = make_policy(name)
    ctx = _context(n, 3, 4, queried, seed=n)
    index, _ = policy.select(policy.init(ctx), ctx, jax.random.PRNGKey(n), batch)
    index = np.asarray(index)
    assert index.shape == (batch,)
    assert len(set(index.tolist())) == batch
    fresh = index[~queried[index]]
    # Every unqueried slot is used before any queried item appears.
    assert len(fresh) == min(batch, n_free)


def test_scores_match_numpy():
    ctx = _context(200, 3, 5, np.zeros(200, bool))
    p = np.asarray(ctx.probs, np.float64)
    s = np.sort(p, axis=1)
    np.testing.assert_allclose(least_confidence_scores(ctx.probs), 1 - s[:, -1], atol=1e-6)
    np.testing.assert_allclose(margin_scores(ctx.probs), -(s[:, -1] - s[:, -2]), atol=1e-6)
    np.testing.assert_allclose(entropy_scores(ctx.probs), -(p * np.log(p)).sum(1), atol=1e-5)


def test_entropy_picks_the_most_uncertain_items():
    ctx = _context(100, 3, 3, np.zeros(100, bool))
    index, _ = make_policy("entropy").select((), ctx, jax.random.PRNGKey(0), 7)
    reference = np.argsort(-(-(np.asarray(ctx.probs) * np.log(np.asarray(ctx.probs))).sum(1)))[:7]
    assert set(np.asarray(index).tolist()) == set(reference.tolist())


def test_random_policy_is_uniform_over_unqueried_items():
    queried = np.zeros(10, bool)
    queried[:5] = True
    ctx = _context(10, 2, 2, queried)
    policy = make_policy("random")
    counts = np.zeros(10)
    for seed in range(400):
        index, _ = policy.select((), ctx, jax.random.PRNGKey(seed), 1)
        counts[int(index[0])] += 1
    assert counts[:5].sum() == 0
    assert counts[5:].min() > 50  # about 80 each


def test_top_unqueried_breaks_ties_by_pool_index():
    index = top_unqueried(jnp.zeros(6), jnp.array([True, False, False, True, False, False]), 3)
    assert np.asarray(index).tolist() == [1, 2, 4]


def test_top_unqueried_tie_break_is_the_same_under_vmap():
    scores = jnp.array([[0.5, 0.5, 0.5, 0.1, 0.5, 0.9], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]], jnp.float32)
    queried = jnp.array([[False, True, False, False, False, False], [True, False, False, False, False, False]])
    batched = np.asarray(jax.vmap(lambda s, q: top_unqueried(s, q, 3))(scores, queried))
    assert batched.tolist() == [[5, 0, 2], [1, 2, 3]]
    for k in range(2):
        assert batched[k].tolist() == np.asarray(top_unqueried(scores[k], queried[k], 3)).tolist()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 20), delta=st.sampled_from([0.0, 1e-7, 1e-5, 1e-3, 0.1]))
def test_perturbed_scores_exchange_only_items_near_the_cut(seed, batch, delta):
    # The documented tolerance: scores moved by <= delta change the batch only within 2 delta of the B-th score.
    rng = np.random.default_rng(seed)
    n = 40
    scores = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    scores[rng.integers(n, size=5)] = scores[0]  # exact ties too
    moved = (scores + rng.uniform(-delta, delta, n)).astype(np.float32)
    moved_by = float(np.max(np.abs(moved.astype(np.float64) - scores)))
    queried = rng.random(n) < 0.3
    batch = min(batch, int((~queried).sum()))
    before = set(np.asarray(top_unqueried(jnp.asarray(scores), jnp.asarray(queried), batch)).tolist())
    after = set(np.asarray(top_unqueried(jnp.asarray(moved), jnp.asarray(queried), batch)).tolist())
    cut = np.sort(scores[~queried])[::-1][batch - 1]
    for i in before ^ after:
        assert abs(float(scores[i]) - float(cut)) <= 2 * moved_by + 1e-7
    if moved_by == 0.0:
        assert before == after
