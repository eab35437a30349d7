"""rounds.train fits on the shortest filled prefix of the buffer: same minimiser as the whole buffer."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from alband.models.softmax_regression import SoftmaxRegression, fit, init_params
from alband.pool import empty_label_state, record_annotations
from alband.rounds import train, train_prefix_sizes


def test_prefix_sizes_double_from_256_and_end_at_the_capacity():
    assert train_prefix_sizes(100) == (100,)
    assert train_prefix_sizes(256) == (256,)
    assert train_prefix_sizes(257) == (256, 257)
    assert train_prefix_sizes(2010) == (256, 512, 1024, 2010)


@pytest.mark.parametrize("n_train", [1, 255, 256, 257, 511, 512, 513, 700])
def test_train_equals_the_fit_on_the_whole_buffer(n_train):
    rng = np.random.default_rng(n_train)
    n_items, d, n_classes, capacity = 1500, 8, 3, 700
    x = rng.standard_normal((n_items, d)).astype(np.float32)
    truth = rng.standard_normal((d, n_classes))
    y = (x @ truth + rng.gumbel(size=(n_items, n_classes))).argmax(1).astype(np.int32)
    index = rng.choice(n_items, n_train, replace=False).astype(np.int32)
    labels = np.where(rng.random(n_train) < 0.1, -1, y[index]).astype(np.int32)  # some invalid answers
    state = record_annotations(empty_label_state(n_items, capacity), jnp.asarray(index), jnp.asarray(labels),
                               jnp.ones(n_train, bool), jnp.zeros(n_train))
    model = SoftmaxRegression(n_classes, c=0.5, tol=1e-6)
    start = init_params(model, d)
    ours = train(model, start, jnp.asarray(x), state, n_train)
    whole = fit(model, start, jnp.asarray(x)[state.train_index], state.train_label, state.train_weight)
    # The last filled slot matters: a prefix one row too short would miss its label.
    np.testing.assert_allclose(ours.w, whole.w, atol=2e-4)
    np.testing.assert_allclose(ours.b, whole.b, atol=2e-4)


def test_the_prefix_is_chosen_by_the_bound_so_vmap_keeps_one_branch():
    import jax

    from alband.rounds import filled_bound

    rng = np.random.default_rng(0)
    n_items, d, capacity = 600, 4, 600
    x = jnp.asarray(rng.standard_normal((n_items, d)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, n_items), jnp.int32)
    model = SoftmaxRegression(2)

    def one(n):  # seeds with different fill levels, all below the round's bound
        accepted = jnp.arange(capacity) < n
        state = record_annotations(empty_label_state(n_items, capacity), jnp.arange(capacity, dtype=jnp.int32), y,
                                   accepted, jnp.zeros(capacity))
        return train(model, init_params(model, d), x, state, filled_bound(10, 10, 20))

    batched = jax.vmap(one)(jnp.asarray([50, 150, 210]))
    # The bound is not batched, so the jaxpr has a real switch (cond), not a select over every prefix.
    jaxpr = str(jax.make_jaxpr(jax.vmap(one))(jnp.asarray([50, 150, 210])))
    assert "cond[" in jaxpr
    for k, n in enumerate([50, 150, 210]):
        np.testing.assert_allclose(batched.w[k], one(n).w, atol=2e-4)
