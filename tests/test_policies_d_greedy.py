"""Greedy D-optimal batches against a float64 numpy reference that re-inverts after every pick."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.policies import make_policy
from alband.policies.d_greedy import d_greedy_select


def _reference(x: np.ndarray, queried: np.ndarray, batch: int, ridge: float) -> list[int]:
    x = x.astype(np.float64)
    a = ridge * np.eye(x.shape[1]) + x[queried].T @ x[queried]
    taken = queried.copy()
    out = []
    for _ in range(batch):
        g = np.einsum("ij,jk,ik->i", x, np.linalg.inv(a), x)
        g[taken] = -np.inf
        best = int(np.argmax(g))
        out.append(best)
        taken[best] = True
        a += np.outer(x[best], x[best])
    return out


def test_picks_equal_the_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    queried = np.zeros(300, bool)
    queried[rng.choice(300, 20, replace=False)] = True
    ours = np.asarray(d_greedy_select(jnp.asarray(x), jnp.asarray(queried), 15, 1.0)).tolist()
    assert ours == _reference(x, queried, 15, 1.0)


def test_each_pick_has_the_largest_log_det_gain():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 5)).astype(np.float32)
    queried = np.zeros(80, bool)
    picks = np.asarray(d_greedy_select(jnp.asarray(x), jnp.asarray(queried), 4, 1.0))
    a = np.eye(5)
    for p in picks:
        gains = [np.linalg.slogdet(a + np.outer(v, v))[1] for v in x.astype(np.float64)]
        for q in picks[: list(picks).index(p)]:
            gains[q] = -np.inf
        assert np.isclose(gains[p], max(gains), rtol=1e-5)
        a += np.outer(x[p], x[p])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 40), data=st.data())
def test_batches_distinct_and_fresh_first(n, data):
    queried = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    batch = data.draw(st.integers(1, n))
    x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
    policy = make_policy("d_greedy")
    from alband.policies import RoundContext
    from alband.models import SoftmaxRegression, init_params

    ctx = RoundContext(jnp.asarray(x), jnp.asarray(queried), jnp.full((n, 2), 0.5), init_params(SoftmaxRegression(2), 4),
                       jnp.ones(n), jnp.int32(1))
    index = np.asarray(policy.select((), ctx, None, batch)[0])
    assert len(set(index.tolist())) == batch
    assert int((~queried[index]).sum()) == min(batch, int((~queried).sum()))
