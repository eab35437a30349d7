"""D-/G-optimal design: Frank-Wolfe (Wolfe-Atwood), multiplicative and cvxpy agree and certify."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.design import (
    cvxpy_design,
    d_optimal_design,
    evaluate_design,
    greedy_volume_support,
    multiplicative_design,
    wolfe_atwood_design,
)
from alband.design._linalg import information_matrix, inverse_and_log_det, leverages, rank_one_update
from alband.errors import AlbandError


def pool(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[: n // 20] *= 2.5
    return X


def rel_gap(reference: float, value: float) -> float:
    return (reference - value) / max(1.0, abs(reference))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frank_wolfe_matches_cvxpy_on_random_pools(seed):
    X = pool(240, 6, seed)
    fw = d_optimal_design(X, eps=1e-3)
    ref = d_optimal_design(X, method="cvxpy")
    assert bool(fw.certified)
    assert abs(rel_gap(float(ref.log_det), float(fw.log_det))) < 1e-3
    # The log det the solver reports is the log det of the weights it returns.
    exact = evaluate_design(X, np.asarray(fw.weights, dtype=np.float64))
    assert float(fw.log_det) == pytest.approx(float(exact.log_det), rel=1e-5, abs=1e-4)
    assert float(fw.max_leverage) == pytest.approx(float(exact.max_leverage), rel=1e-4)


def test_frank_wolfe_matches_cvxpy_on_trec_embeddings(shared_data):
    emb = np.load(shared_data / "trec" / "emb_minilm.npy", mmap_mode="r")
    rows = np.random.default_rng(0).choice(emb.shape[0], size=1000, replace=False)
    E = np.asarray(emb[np.sort(rows)], dtype=np.float64)
    E -= E.mean(axis=0)
    _, _, Vt = np.linalg.svd(E, full_matrices=False)
    X = (E @ Vt[:16].T).astype(np.float32)  # PCA to d = 16
    fw = d_optimal_design(X, eps=1e-3)
    ref = d_optimal_design(X, method="cvxpy")
    assert bool(fw.certified)
    assert float(fw.max_leverage) <= 16 * (1 + 1e-3)
    assert abs(rel_gap(float(ref.log_det), float(fw.log_det))) < 1e-3


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_certificate_reaches_d_times_one_plus_eps(eps):
    X = pool(240, 6, 3)
    res = d_optimal_design(X, eps=eps)
    assert bool(res.certified)
    g = np.asarray(evaluate_design(X, np.asarray(res.weights, np.float64)).leverages)
    assert g.max() <= 6 * (1 + eps) * (1 + 1e-5)
    w = np.asarray(res.weights)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-5)


def test_working_set_rounds_give_the_whole_pool_answer():
    X = pool(240, 6, 4)
    whole = d_optimal_design(X, eps=1e-3)
    rounds = d_optimal_design(X, eps=1e-3, working_set_size=30)  # 240 rows, working set of 30
    assert bool(whole.certified) and bool(rounds.certified)
    assert float(rounds.log_det) == pytest.approx(float(whole.log_det), abs=5e-3)
    # Certificate checked against leverages of the whole pool.
    g = evaluate_design(X, np.asarray(rounds.weights, np.float64)).leverages
    assert g.max() <= 6 * (1 + 1e-3) * (1 + 1e-5)


def test_fedorov_wynn_without_away_steps_also_certifies():
    X = pool(240, 6, 5)
    res = d_optimal_design(X, eps=1e-2, away_steps=False)
    assert bool(res.certified)


def test_multiplicative_is_monotone_and_certifies():
    X = jnp.asarray(pool(240, 6, 6))
    log_dets = [float(multiplicative_design(X, 1e-9, k).log_det) for k in range(0, 25)]
    assert all(b >= a - 1e-5 * abs(a) for a, b in zip(log_dets, log_dets[1:]))
    assert log_dets[-1] > log_dets[0]
    res = d_optimal_design(X, method="multiplicative", eps=1e-2)
    assert bool(res.certified)
    ref = d_optimal_design(np.asarray(X), eps=1e-4)
    assert float(ref.log_det) - float(res.log_det) <= 6 * np.log1p(1e-2) + 1e-4


def test_sherman_morrison_leverages_equal_recomputation():
    X = jnp.asarray(pool(240, 6, 7))
    rng = np.random.default_rng(7)
    support = np.asarray(greedy_volume_support(X).indices)
    weights = np.zeros(240, np.float32)
    weights[support] = 1 / 6
    M, _ = inverse_and_log_det(information_matrix(X, jnp.asarray(weights)))
    g = leverages(X, M)
    update = jax.jit(rank_one_update)
    for step in range(40):
        if step % 3 == 2:  # away step on a support point, within the drop bound
            i = int(rng.choice(np.flatnonzero(weights > 0)))
            gamma = -float(rng.uniform(0.1, 0.9)) * weights[i] / (1 - weights[i])
        else:
            i = int(rng.integers(240))
            gamma = float(rng.uniform(0.01, 0.3))
        u = M @ X[i]
        M, g = update(M, g, X @ u, u, g[i], jnp.float32(gamma))
        weights = (1 - gamma) * weights
        weights[i] += gamma
        M_full, _ = inverse_and_log_det(information_matrix(X, jnp.asarray(weights)))
        g_full = np.asarray(leverages(X, M_full))
        np.testing.assert_allclose(np.asarray(g), g_full, rtol=1e-4, atol=1e-4 * g_full.max())


def test_cvxpy_reference_certifies_itself():
    X = pool(120, 4, 8)
    ref = cvxpy_design(X)
    assert float(ref.max_leverage) == pytest.approx(4.0, rel=1e-3)
    assert bool(ref.certified)


def test_kernel_is_jittable_and_vmappable():
    Xs = jnp.stack([jnp.asarray(pool(240, 6, s)) for s in (0, 1)])
    batch = jax.jit(jax.vmap(lambda X: wolfe_atwood_design(X, 1e-3)))(Xs)
    assert batch.weights.shape == (2, 240)
    assert bool(jnp.all(batch.certified))
    single = wolfe_atwood_design(Xs[1], 1e-3)
    assert float(batch.log_det[1]) == pytest.approx(float(single.log_det), abs=1e-4)


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        (np.ones((5, 3, 2), np.float32), {}, "2-D array"),
        (np.ones((2, 4), np.float32), {}, "2 rows but 4 columns"),
        (pool(50, 3, 0), {"method": "simplex"}, "unknown design method 'simplex'"),
        (pool(50, 3, 0), {"eps": 0.0}, "eps must be a finite number > 0"),
        (pool(50, 3, 0), {"method": "multiplicative", "away_steps": False}, "do not apply to method 'multiplicative'"),
        (pool(50, 3, 0), {"max_iter": 0}, "max_iter must be an integer >= 1"),
    ],
)
def test_bad_input_is_a_readable_error(X, kwargs, message):
    with pytest.raises(AlbandError, match=message):
        d_optimal_design(X, **kwargs)


def test_singular_and_nonfinite_pools_are_explained():
    X = pool(240, 6, 0)
    rank_five = X.copy()
    rank_five[:, 5] = X[:, 0] - 2 * X[:, 1]
    with pytest.raises(AlbandError, match="rank 5 < 6"):
        d_optimal_design(rank_five)
    with_nan = X.copy()
    with_nan[17, 2] = np.nan
    with pytest.raises(AlbandError, match="row 17 has a NaN"):
        d_optimal_design(with_nan)


def test_working_set_grows_when_the_support_fills_it():
    # Points on a sphere: the optimal support is far larger than 2 d.
    X = pool(240, 6, 9)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    capped = wolfe_atwood_design(jnp.asarray(X), 1e-3, working_set_size=12)
    assert not bool(capped.certified) and int(jnp.sum(capped.weights > 0)) == 12
    grown = d_optimal_design(X, eps=1e-3, working_set_size=12)
    assert bool(grown.certified)
    assert float(grown.log_det) == pytest.approx(float(d_optimal_design(X).log_det), abs=1e-4)
