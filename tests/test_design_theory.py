"""Numerical checks of every claim in theory/design.md (one test per claim)."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from alband.design import (
    cost_weighted_design,
    cvxpy_design,
    d_optimal_design,
    evaluate_design,
    greedy_budgeted_design,
    multiplicative_design,
    wolfe_atwood_design,
)
from alband.design._linalg import log_det_along_line
from alband.design.transductive import _q_after_step, _smoothed

N, D = 120, 4


def pool(seed: int, n: int = N, d: int = D) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[: n // 20] *= 2.5
    return X


def random_design(rng, n: int = N, support: int = 20) -> np.ndarray:
    w = np.zeros(n)
    idx = rng.choice(n, support, replace=False)
    w[idx] = rng.dirichlet(np.ones(support))
    return w


def info(X, w):
    return X.T @ (w[:, None] * X)


def lev(X, V):
    return np.einsum("ni,ij,nj->n", X, np.linalg.inv(V), X)


@pytest.fixture(scope="module")
def reference():
    X = pool(0)
    return X, cvxpy_design(X)


# 1. sum_i pi_i g_i = d, hence max_i g_i >= d.
def test_weighted_leverages_sum_to_d():
    rng = np.random.default_rng(1)
    X = pool(1)
    for _ in range(5):
        w = random_design(rng)
        g = lev(X, info(X, w))
        assert np.dot(w, g) == pytest.approx(D, rel=1e-10)
        assert g.max() >= D - 1e-9


# 2. Kiefer-Wolfowitz: at the D-optimum max_i g_i = d, g_i = d on the support,
#    and the D-optimal design is G-optimal (no design has a smaller max leverage).
def test_kiefer_wolfowitz_equivalence(reference):
    X, ref = reference
    g = ref.leverages
    assert g.max() == pytest.approx(D, rel=1e-4)
    support = ref.weights > 1e-6
    np.testing.assert_allclose(g[support], D, rtol=1e-3)
    rng = np.random.default_rng(2)
    for _ in range(20):
        w = random_design(rng)
        assert lev(X, info(X, w)).max() >= g.max() * (1 - 1e-6)


# 3. Duality bound: log det V* - log det V(pi) <= d log(max_i g_i / d).
def test_duality_gap_bound(reference):
    X, ref = reference
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = random_design(rng)
        V = info(X, w)
        gap = float(ref.log_det) - np.linalg.slogdet(V)[1]
        assert gap <= D * np.log(lev(X, V).max() / D) + 1e-7


# 4. log det((1-gamma) V + gamma x x') - log det V = (d-1) log(1-gamma) + log(1 + gamma (g_x - 1)).
def test_log_det_along_the_frank_wolfe_line():
    rng = np.random.default_rng(4)
    X = pool(4)
    w = random_design(rng)
    V = info(X, w)
    g = lev(X, V)
    for i, gamma in [(0, 0.3), (5, 0.01), (17, 0.8), (int(np.flatnonzero(w)[0]), -0.5 * w[np.flatnonzero(w)[0]])]:
        new = (1 - gamma) * V + gamma * np.outer(X[i], X[i])
        exact = np.linalg.slogdet(new)[1] - np.linalg.slogdet(V)[1]
        assert float(log_det_along_line(D, jnp.float32(g[i]), jnp.float32(gamma))) == pytest.approx(exact, abs=2e-5)


# 5. The exact line search gamma* = (g/d - 1)/(g - 1) maximises log det along the
#    line for g > 1 (toward iff g > d, away iff g < d); for g <= 1 log det grows
#    all the way down to the drop bound.
def test_exact_line_search_step():
    rng = np.random.default_rng(5)
    X = pool(5)
    X[-1] *= 0.05  # a short support vector: leverage below 1
    w = random_design(rng)
    w = 0.9 * w + 0.1 * np.eye(N)[-1]
    V = info(X, w)
    g = lev(X, V)
    grid = np.linspace(-0.9, 0.999, 40001)
    above_one = np.flatnonzero(g >= 2.0)  # gamma* inside the grid
    for i in above_one[np.argsort(g[above_one])[[0, len(above_one) // 2, -1]]]:
        with np.errstate(invalid="ignore"):
            f = (D - 1) * np.log1p(-grid) + np.log1p(grid * (g[i] - 1))
        f = np.where(np.isfinite(f), f, -np.inf)
        gamma_star = (g[i] / D - 1) / (g[i] - 1)
        assert abs(grid[np.argmax(f)] - gamma_star) < 1e-4
        assert np.sign(gamma_star) == np.sign(g[i] - D)
    small = np.flatnonzero((g < 1) & (w > 0))
    assert small.size > 0
    for i in small:
        lower = -w[i] / (1 - w[i])
        line = np.linspace(lower, 0, 101)
        f = (D - 1) * np.log1p(-line) + np.log1p(line * (g[i] - 1))
        assert np.all(np.diff(f) < 0)  # decreasing in gamma: best at the bound


# 6. Sherman-Morrison: the rank-1 update of V^{-1} and of every leverage is exact.
def test_sherman_morrison_rank_one_update():
    rng = np.random.default_rng(6)
    X = pool(6)
    V = info(X, random_design(rng))
    M, g = np.linalg.inv(V), lev(X, V)
    i, gamma = 9, 0.2
    t, u = gamma / (1 - gamma), M @ X[i]
    M_new = (M - t * np.outer(u, u) / (1 + t * g[i])) / (1 - gamma)
    g_new = (g - t * (X @ u) ** 2 / (1 + t * g[i])) / (1 - gamma)
    V_new = (1 - gamma) * V + gamma * np.outer(X[i], X[i])
    np.testing.assert_allclose(M_new, np.linalg.inv(V_new), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_new, lev(X, V_new), rtol=1e-10)


# 7. Away steps give linear convergence (iterations grow like log 1/eps); plain
#    Fedorov-Wynn does not, and leaves a larger log-det gap at the same certificate.
def test_away_steps_converge_linearly(reference):
    X, ref = reference
    Xj = jnp.asarray(X, jnp.float32)
    wa = {eps: wolfe_atwood_design(Xj, eps) for eps in (1e-2, 1e-3, 1e-4)}
    fw = {eps: wolfe_atwood_design(Xj, eps, away_steps=False) for eps in (1e-2, 1e-4)}
    it = {eps: int(r.iterations) for eps, r in wa.items()}
    assert it[1e-4] <= 3 * it[1e-2]  # additive cost per decade of eps: linear rate
    assert int(fw[1e-4].iterations) > 3 * int(fw[1e-2].iterations)  # sublinear
    assert int(fw[1e-4].iterations) > 4 * it[1e-4]
    gap_wa = float(ref.log_det) - float(wa[1e-2].log_det)
    gap_fw = float(ref.log_det) - float(fw[1e-2].log_det)
    assert gap_wa < gap_fw


# 8. Caratheodory: some optimal design has at most d(d+1)/2 support points; drop
#    steps keep the Wolfe-Atwood support that small.
def test_support_size_bound():
    for seed in range(3):
        res = d_optimal_design(pool(10 + seed).astype(np.float32), eps=1e-4)
        assert int(np.sum(np.asarray(res.weights) > 0)) <= D * (D + 1) // 2


# 9. The multiplicative update pi_i <- pi_i g_i / d stays on the simplex and never decreases log det.
def test_multiplicative_update_is_monotone():
    X = pool(7)
    w = np.full(N, 1 / N)
    previous = -np.inf
    for _ in range(50):
        V = info(X, w)
        log_det = np.linalg.slogdet(V)[1]
        assert log_det >= previous - 1e-12
        previous = log_det
        w = w * lev(X, V) / D
        assert w.sum() == pytest.approx(1.0, rel=1e-12)
    jax_path = [float(multiplicative_design(jnp.asarray(X, jnp.float32), 1e-9, k).log_det) for k in (0, 10, 49)]
    assert jax_path[0] <= jax_path[1] <= jax_path[2]
    assert jax_path[2] == pytest.approx(previous, abs=1e-4)


# 10. q_z(pi) = z' V(pi)^{-1} z is convex in pi (transductive objectives are convex).
def test_transductive_variance_is_convex_in_the_design():
    rng = np.random.default_rng(8)
    X = pool(8)
    Z = rng.standard_normal((10, D))
    for _ in range(20):
        a, b = random_design(rng, support=30), random_design(rng, support=30)
        lam = rng.uniform()
        q = lambda w: np.einsum("ki,ij,kj->k", Z, np.linalg.inv(info(X, w)), Z)  # noqa: E731
        assert np.all(q(lam * a + (1 - lam) * b) <= lam * q(a) + (1 - lam) * q(b) + 1e-9)


# 11. Log-mean-exp smoothing: max q - tau log k <= F_tau(q) <= max q.
def test_log_mean_exp_bounds():
    rng = np.random.default_rng(9)
    for tau in (1e-3, 0.1, 1.0):
        q = rng.uniform(1, 5, 50).astype(np.float32)
        f = float(_smoothed(jnp.asarray(q), jnp.float32(tau), "max"))
        assert q.max() - tau * np.log(50) - 1e-5 <= f <= q.max() + 1e-5


# 12. Woodbury for the toward / away / pairwise steps of the transductive solver.
def test_woodbury_step_formula():
    rng = np.random.default_rng(10)
    X = pool(10)
    Z = rng.standard_normal((7, D))
    w = random_design(rng)
    V = info(X, w)
    M = np.linalg.inv(V)
    s, v = 3, int(np.flatnonzero(w)[0])
    U = np.stack([X[s], X[v]], axis=1)
    G, P = U.T @ M @ U, Z @ M @ U
    for kind, gamma in [(0, 0.3), (1, -0.5 * w[v] / (1 - w[v])), (2, 0.7 * w[v])]:
        if kind == 0:
            new = (1 - gamma) * w + gamma * np.eye(N)[s]
        elif kind == 1:
            new = (1 - gamma) * w + gamma * np.eye(N)[v]
        else:
            new = w + gamma * (np.eye(N)[s] - np.eye(N)[v])
        exact = np.einsum("ki,ij,kj->k", Z, np.linalg.inv(info(X, new)), Z)
        q = np.einsum("ki,ij,kj->k", Z, M, Z)
        ours = _q_after_step(jnp.asarray(q, jnp.float32), jnp.asarray(P, jnp.float32), jnp.asarray(G, jnp.float32),
                             jnp.int32(kind), jnp.float32(gamma))
        np.testing.assert_allclose(np.asarray(ours), exact, rtol=2e-4)


# 13. GO's rank-1 formula: z' Sigma_{S+x} z = z' Sigma z - (z' Sigma x)^2 / (sigma^2 + x' Sigma x).
def test_go_rank_one_variance_reduction():
    rng = np.random.default_rng(11)
    X = pool(11)
    Z = rng.standard_normal((9, D))
    lam, sigma = 0.7, 0.4
    S = X[:15]
    Sigma = np.linalg.inv(lam * np.eye(D) + S.T @ S / sigma**2)
    x = X[40]
    direct = np.linalg.inv(lam * np.eye(D) + (S.T @ S + np.outer(x, x)) / sigma**2)
    formula = np.einsum("ki,ij,kj->k", Z, Sigma, Z) - (Z @ Sigma @ x) ** 2 / (sigma**2 + x @ Sigma @ x)
    np.testing.assert_allclose(formula, np.einsum("ki,ij,kj->k", Z, direct, Z), rtol=1e-10)


# 14. Budget change of variables: the D-optimal design of x_i / sqrt(c_i) gives the
#     allocation n maximising log det sum n_i x_i x_i' subject to c'n <= C.
def test_cost_scaling_gives_the_budget_optimal_allocation():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(12)
    X = pool(12)
    cost = rng.uniform(0.05, 2.0, N)
    budget = 10.0
    n = cp.Variable(N, nonneg=True)
    A = np.einsum("ni,nj->ijn", X, X).reshape(D * D, N)
    Vn = cp.reshape(A @ n, (D, D), order="C")
    problem = cp.Problem(cp.Maximize(cp.log_det(0.5 * (Vn + Vn.T))), [cost @ n <= budget])
    problem.solve(solver=cp.CLARABEL)
    ours = cost_weighted_design(X.astype(np.float32), cost, budget, eps=1e-5)
    ours_value = np.linalg.slogdet(info(X, ours.expected_counts))[1]
    assert ours_value == pytest.approx(problem.value, abs=1e-3)
    assert float(cost @ ours.expected_counts) == pytest.approx(budget, rel=1e-6)


# 15. Cost-benefit greedy or best single item: f >= (1 - 1/e)/2 OPT under a knapsack.
def test_budgeted_greedy_approximation_guarantee():
    rng = np.random.default_rng(13)
    for trial in range(4):
        X = rng.standard_normal((9, 3)).astype(np.float32)
        cost = rng.uniform(0.1, 1.0, 9)
        budget = float(rng.uniform(0.8, 2.0))
        lam = 1e-2 * np.sum(X.astype(np.float64) ** 2) / X.size

        def f(S):
            rows = X[list(S)].astype(np.float64)
            return np.linalg.slogdet(np.eye(3) + rows.T @ rows / lam)[1]

        best = max(
            f(S) for r in range(10) for S in itertools.combinations(range(9), r) if cost[list(S)].sum() <= budget
        )
        sel = greedy_budgeted_design(X, cost, budget, max_items=9)
        chosen = np.asarray(sel.indices)[np.asarray(sel.valid)]
        assert f(chosen) >= (1 - 1 / np.e) / 2 * best - 1e-6
        assert float(sel.gain) == pytest.approx(f(chosen), rel=1e-3, abs=1e-3)


# 16. The certificate is what the solver reports: log det and max leverage of the returned weights.
def test_reported_certificate_is_recomputable():
    X = pool(14)
    res = d_optimal_design(X.astype(np.float32), eps=1e-3)
    check = evaluate_design(X, np.asarray(res.weights, np.float64), 1e-3)
    assert bool(check.certified)
    assert float(res.log_det) == pytest.approx(float(check.log_det), abs=1e-4)
