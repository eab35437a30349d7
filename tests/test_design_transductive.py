"""Transductive design and the GO policy against brute force and the uniform design."""

from __future__ import annotations

import numpy as np
import pytest

from alband.design import go_select, transductive_design
from alband.errors import AlbandError

N, D, K = 150, 5, 30


def problem(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(np.float32)
    X[: N // 20] *= 2.5
    Z = (rng.standard_normal((K, D)) + np.linspace(-1, 1, D)).astype(np.float32)
    return X, Z


def variances(X, Z, weights) -> np.ndarray:
    X64, Z64 = X.astype(np.float64), Z.astype(np.float64)
    V = X64.T @ (np.asarray(weights, np.float64)[:, None] * X64)
    return np.einsum("ki,ij,kj->k", Z64, np.linalg.inv(V), Z64)


@pytest.mark.parametrize("objective", ["max", "mean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_transductive_design_beats_the_uniform_design(objective, seed):
    X, Z = problem(seed)
    res = transductive_design(X, Z, objective=objective)
    reduce = np.max if objective == "max" else np.mean
    ours = reduce(variances(X, Z, res.weights))
    uniform = reduce(variances(X, Z, np.full(N, 1 / N)))
    assert ours <= uniform * (1 + 1e-5)
    assert ours < 0.8 * uniform  # and by a clear margin on these pools
    assert float(res.objective) == pytest.approx(ours, rel=1e-3)
    w = np.asarray(res.weights)
    assert (w >= 0).all() and w.sum() == pytest.approx(1, abs=1e-5)


def test_transductive_mean_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    X, Z = problem(2)
    res = transductive_design(X, Z, objective="mean")
    X64 = X.astype(np.float64)
    A = np.einsum("ni,nj->ijn", X64, X64).reshape(D * D, N)
    w = cp.Variable(N, nonneg=True)
    V = cp.reshape(A @ w, (D, D), order="C")
    V = 0.5 * (V + V.T)
    obj = sum(cp.matrix_frac(z.astype(np.float64), V) for z in Z) / K
    cp.Problem(cp.Minimize(obj), [cp.sum(w) == 1]).solve(solver=cp.CLARABEL)
    optimum = float(np.mean(variances(X, Z, np.clip(w.value, 0, None) / np.clip(w.value, 0, None).sum())))
    assert float(res.objective) <= optimum * (1 + 2e-3)


def test_transductive_with_z_equal_x_recovers_g_optimality():
    # Kiefer-Wolfowitz: for Z = X the min over designs of max_i x_i' V^{-1} x_i is d.
    X, _ = problem(3)
    res = transductive_design(X, X)
    assert float(res.objective) == pytest.approx(D, rel=2e-3)


def brute_force_go(X, Z, batch_size, lam, sigma, labelled):
    X64, Z64 = X.astype(np.float64), Z.astype(np.float64)
    chosen = list(np.flatnonzero(labelled))
    picks, values = [], []
    for _ in range(batch_size):
        best, best_value = None, np.inf
        for i in range(len(X64)):
            if i in chosen:
                continue
            rows = X64[chosen + [i]]
            Sigma = np.linalg.inv(lam * np.eye(X64.shape[1]) + rows.T @ rows / sigma**2)
            value = np.max(np.einsum("ki,ij,kj->k", Z64, Sigma, Z64))
            if value < best_value:
                best, best_value = i, value
        picks.append(best)
        values.append(best_value)
        chosen.append(best)
    return picks, values


@pytest.mark.parametrize(("lam", "sigma", "n_labelled"), [(1.0, 1.0, 0), (0.3, 0.5, 7)])
def test_go_picks_equal_brute_force(lam, sigma, n_labelled):
    X, Z = problem(4)
    X, Z = X[:60], Z[:12]
    labelled = np.zeros(60, bool)
    labelled[np.random.default_rng(5).choice(60, n_labelled, replace=False)] = True
    sel = go_select(X, Z, 6, lam=lam, sigma=sigma, labelled_mask=labelled)
    picks, values = brute_force_go(X, Z, 6, lam, sigma, labelled)
    ours = np.asarray(sel.indices).tolist()
    np.testing.assert_allclose(np.asarray(sel.max_variance), values, rtol=1e-4)
    assert ours == picks
    assert not labelled[ours].any()
    assert len(set(ours)) == 6


def test_go_objective_decreases_and_errors():
    X, Z = problem(6)
    sel = go_select(X, Z, 10)
    path = np.r_[float(sel.initial_max_variance), np.asarray(sel.max_variance)]
    assert np.all(np.diff(path) <= 1e-6)
    with pytest.raises(AlbandError, match="features"):
        go_select(X, Z[:, :3], 2)
    with pytest.raises(AlbandError, match="exceeds the 0 unlabelled"):
        go_select(X, Z, 1, labelled_mask=np.ones(N, bool))
    with pytest.raises(AlbandError, match="objective must be"):
        transductive_design(X, Z, objective="median")
