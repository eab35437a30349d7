r"""Transductive (XY-) G-design: spread the labels to predict well on a target set.

Given a pool ``X`` (n, d) of items we may label and a target set ``Z`` (k, d)
of items we want to predict on (e.g. test queries; Fiez, Jain, Jamieson and
Ratliff 2019, "Sequential experimental design for transductive linear
bandits", NeurIPS; Yu, Bi and Tresp 2006), minimise over designs ``pi`` on the
simplex

    max:   F(pi) = max_{z in Z} z' V(pi)^{-1} z          (G-type, the default)
    mean:  F(pi) = (1/k) sum_{z in Z} z' V(pi)^{-1} z    (= tr(V^{-1} C_Z), A/V-type)

with ``V(pi) = sum_i pi_i x_i x_i'``. Each ``q_z(pi) = z' V(pi)^{-1} z`` is
convex in ``pi`` (``V -> V^{-1}`` is operator convex), so both objectives are
convex; the Kiefer-Wolfowitz shortcut does not apply when ``Z`` differs from
``X``, so we run Frank-Wolfe on the objective itself.

Smoothing of the max. The max is replaced by the log-mean-exp
``F_tau(pi) = tau log((1/k) sum_z exp(q_z / tau))``, convex and smooth, with
``max_z q_z - tau log k <= F_tau <= max_z q_z``. We use this smooth surrogate
rather than a subgradient method with decreasing steps because it keeps the
Frank-Wolfe duality gap as a stopping certificate and the exact line search
below. A small ``tau`` is accurate but badly conditioned, so ``tau`` follows a
short continuation (Nesterov 2005, "Smooth minimization of non-smooth
functions"): stages with ``tau = smoothing * 3^(S-1-j) * max_z q_z(start)``,
``j = 0..S-1``, each warm-started from the previous one and each a single
convex problem.

Gradient. With ``M = V^{-1}`` and softmax weights ``w_z`` (uniform for the
mean), ``dF/dpi_i = -a_i`` with ``a_i = x_i' M C_w M x_i`` and
``C_w = sum_z w_z z z'``: one O((n + k) d^2) pass.

Steps. Frank-Wolfe with away and pairwise steps on the simplex (Guelat and
Marcotte 1986; Lacoste-Julien and Jaggi 2015), with toward vertex
``s = argmax_i a_i`` and away vertex ``v = argmin_{pi_i > 0} a_i``: the toward
step ``pi <- (1 - gamma) pi + gamma e_s``, the away step (same with ``e_v``
and ``gamma < 0``, down to a drop step) and the pairwise step
``pi <- pi + gamma (e_s - e_v)`` are all line-searched and the best is taken
(never worse than the classical choice between toward and away, and an away
step capped by a tiny weight cannot stall the run). Each step changes ``V`` by
``c0 (V + U diag(C) U')`` with ``U = [x_s, x_v]``, so by Woodbury

    q_z(gamma) = (q_z - p_z' (I + diag(C) G)^{-1} diag(C) p_z) / c0,
    p_z = U' M z,  G = U' M U  (2 x 2),

and every trial of the line search costs O(k): a golden-section search (the
objective is convex along each line). ``V^{-1}`` gets the same rank-2 update
and is rebuilt by Cholesky every ``refresh_every`` steps. Stops when the duality
gap ``a_s - sum_i pi_i a_i`` (an upper bound on ``F_tau(pi) - min F_tau``) is
below ``tol * F_tau(pi)``. The returned design is the iterate with the lowest
*unsmoothed* objective seen, the start and the uniform design included, so it
is never worse than either. The default start is the D-optimal design of the
pool (sparse, and G-optimal for ``Z = X``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._checks import explain_singular, is_concrete, pool_array, positive_float, positive_int, vector
from alband.design._linalg import information_matrix, inverse_and_log_det, leverages
from alband.design.frank_wolfe import wolfe_atwood_design
from alband.errors import AlbandError

Objective = Literal["max", "mean"]
_GOLDEN = 0.6180339887498949
_LINE_SEARCH_STEPS = 40


class TransductiveResult(NamedTuple):
    """A transductive design and its objective values."""

    weights: Array  # (n,) design on the simplex (best iterate)
    objective: Array  # () max_z (or mean_z) z' V^{-1} z at `weights`
    variances: Array  # (k,) z' V^{-1} z for every target at `weights`
    smoothed_objective: Array  # () F_tau at `weights` (= objective for "mean")
    gap: Array  # () Frank-Wolfe duality gap of the last stage's F_tau at the last iterate
    iterations: Array  # () int32


class _State(NamedTuple):
    weights: Array
    M: Array
    q: Array
    best_weights: Array
    best_objective: Array
    gap: Array
    iterations: Array
    since_refresh: Array
    done: Array


def _smoothed(q: Array, tau: Array, objective: str) -> Array:
    if objective == "mean":
        return jnp.mean(q)
    q = jnp.where(jnp.isnan(q), jnp.inf, q)
    return tau * (jax.nn.logsumexp(q / tau) - jnp.log(q.shape[0]))


def _true(q: Array, objective: str) -> Array:
    return jnp.mean(q) if objective == "mean" else jnp.max(q)


def _step_coefficients(kind: Array, gamma: Array) -> tuple[Array, Array]:
    """``(c0, C)`` with ``V_new = c0 (V + U diag(C) U')``, ``U = [x_s, x_v]``.

    kind 0 (toward s):  pi <- (1 - gamma) pi + gamma e_s,   gamma in [0, 1)
    kind 1 (away v):    pi <- (1 - gamma) pi + gamma e_v,   gamma in [-pi_v / (1 - pi_v), 0]
    kind 2 (pairwise):  pi <- pi + gamma (e_s - e_v),       gamma in [0, pi_v]
    """
    t = gamma / (1.0 - gamma)
    zero = jnp.zeros_like(gamma)
    c0 = jnp.where(kind == 2, 1.0, 1.0 - gamma)
    C = jnp.where(kind == 0, jnp.stack([t, zero]),
                  jnp.where(kind == 1, jnp.stack([zero, t]), jnp.stack([gamma, -gamma])))
    return c0, C


def _woodbury_core(G: Array, C: Array) -> tuple[Array, Array]:
    """``(K, det)`` with ``K = (I + diag(C) G)^{-1} diag(C)`` (2 x 2) and ``det = det(I + diag(C) G)``.

    By Woodbury, ``(V + U diag(C) U')^{-1} = M - (M U) K (M U)'`` for
    ``M = V^{-1}``, ``G = U' M U``; by the determinant lemma the updated
    matrix stays positive definite iff ``det > 0``.
    """
    B = jnp.eye(2, dtype=G.dtype) + C[:, None] * G
    det = B[0, 0] * B[1, 1] - B[0, 1] * B[1, 0]
    safe = jnp.where(det > 0, det, 1.0)
    B_inv = jnp.array([[B[1, 1], -B[0, 1]], [-B[1, 0], B[0, 0]]]) / safe
    K = B_inv * C[None, :]
    return 0.5 * (K + K.T), det


def _q_after_step(q: Array, P: Array, G: Array, kind: Array, gamma: Array) -> Array:
    """``z' V_new^{-1} z`` for every target: ``(q_z - p_z' K p_z) / c0`` with ``p_z = U' M z``."""
    c0, C = _step_coefficients(kind, gamma)
    K, det = _woodbury_core(G, C)
    correction = jnp.sum((P @ K) * P, axis=1)
    return jnp.where(det > 0, (q - correction) / c0, jnp.inf)


def _golden_section(phi, lo: Array, hi: Array) -> Array:
    """Minimiser of a unimodal ``phi`` on ``[lo, hi]`` (fixed number of steps)."""

    def body(_, bracket):
        a, b = bracket
        c = b - _GOLDEN * (b - a)
        e = a + _GOLDEN * (b - a)
        left = phi(c) <= phi(e)
        return jnp.where(left, a, c), jnp.where(left, e, b)

    a, b = jax.lax.fori_loop(0, _LINE_SEARCH_STEPS, body, (lo, hi))
    return 0.5 * (a + b)


@partial(jax.jit, static_argnames=("objective", "refresh_every", "stages"))
def transductive_design_kernel(
    X: Array,
    Z: Array,
    initial_weights: Array,
    *,
    objective: str = "max",
    smoothing: float | Array = 1e-3,
    tol: float | Array = 1e-3,
    max_iter: int | Array = 2000,
    refresh_every: int = 50,
    stages: int = 4,
) -> TransductiveResult:
    """Frank-Wolfe with away and pairwise steps on ``F_tau`` (see module docstring), jitted."""
    n, d = X.shape
    dtype = X.dtype
    stages = 1 if objective == "mean" else stages

    def fresh(weights):
        M, log_det = inverse_and_log_det(information_matrix(X, weights))
        return M, leverages(Z, M), log_det

    weights0 = initial_weights / jnp.sum(initial_weights)
    M0, q0, log_det0 = fresh(weights0)
    scale = jnp.max(q0)
    # The uniform design is the baseline the result must not lose to.
    uniform = jnp.full((n,), 1.0 / n, dtype)
    q_uniform = fresh(uniform)[1]
    start_is_better = ~(_true(q_uniform, objective) < _true(q0, objective))

    def run_stage(s: _State, stage: Array) -> tuple[_State, None]:
        tau = jnp.asarray(smoothing, dtype) * scale * 3.0 ** (stages - 1 - stage).astype(dtype)
        stage_end = (stage + 1) * max_iter // stages

        def phi(q):
            return _smoothed(q, tau, objective)

        def softmax_weights(q):
            if objective == "mean":
                return jnp.full(q.shape, 1.0 / q.shape[0], dtype)
            return jax.nn.softmax(q / tau)

        def body(s: _State) -> _State:
            refresh = s.since_refresh >= refresh_every
            M, q = jax.lax.cond(refresh, lambda w: fresh(w)[:2], lambda w: (s.M, s.q), s.weights)
            since = jnp.where(refresh, 0, s.since_refresh)

            w_z = softmax_weights(q)
            Zw = Z * jnp.sqrt(w_z)[:, None]
            A = M @ (Zw.T @ Zw) @ M
            a = leverages(X, 0.5 * (A + A.T))
            s_idx = jnp.argmax(a)
            v_idx = jnp.argmin(jnp.where(s.weights > 0, a, jnp.inf))
            fw_gap = a[s_idx] - jnp.sum(s.weights * a)
            value = phi(q)
            converged = fw_gap <= tol * jnp.abs(value)

            # Line-search the toward, the away and the pairwise direction (each
            # trial is O(k) through the 2 x 2 Woodbury core) and take the best:
            # never worse than the classical choice between toward and away,
            # and an away step capped by a tiny weight cannot stall the run.
            U = jnp.stack([X[s_idx], X[v_idx]], axis=1)  # (d, 2)
            MU = M @ U
            G = U.T @ MU
            P = Z @ MU  # (k, 2): p_z = U' M z
            pi_v = s.weights[v_idx]
            lows = jnp.stack([jnp.zeros((), dtype), -pi_v / jnp.maximum(1.0 - pi_v, jnp.finfo(dtype).eps),
                              jnp.zeros((), dtype)])
            highs = jnp.stack([jnp.asarray(0.999, dtype), jnp.zeros((), dtype), pi_v])
            # The bound that empties v: a drop step (away, pairwise).
            bounds = jnp.stack([jnp.zeros((), dtype), lows[1], pi_v])

            def search(kind):
                along = lambda gm: phi(_q_after_step(q, P, G, kind, gm))  # noqa: E731
                gamma = _golden_section(along, lows[kind], highs[kind])
                gamma = jnp.where(along(bounds[kind]) <= along(gamma), bounds[kind], gamma)
                return gamma, along(gamma)

            gammas, values = jax.vmap(search)(jnp.arange(3))
            kind = jnp.argmin(values)
            improves = values[kind] < value
            gamma = jnp.where(improves & ~converged, gammas[kind], 0.0)
            drop = (kind > 0) & (gamma == bounds[kind]) & (gamma != 0)

            c0, C = _step_coefficients(kind, gamma)
            K, _ = _woodbury_core(G, C)
            M_new = (M - MU @ K @ MU.T) / c0
            q_new = (q - jnp.sum((P @ K) * P, axis=1)) / c0
            scaled = ((1.0 - gamma) * s.weights).at[jnp.where(kind == 0, s_idx, v_idx)].add(gamma)
            pairwise = s.weights.at[s_idx].add(gamma).at[v_idx].add(-gamma)
            weights = jnp.where(kind == 2, pairwise, scaled)
            weights = jnp.where(drop, weights.at[v_idx].set(0.0), weights)

            true_new = _true(q_new, objective)
            better = true_new < s.best_objective
            return _State(
                weights=weights,
                M=0.5 * (M_new + M_new.T),
                q=q_new,
                best_weights=jnp.where(better, weights, s.best_weights),
                best_objective=jnp.where(better, true_new, s.best_objective),
                gap=fw_gap,
                iterations=s.iterations + 1,
                since_refresh=since + 1,
                done=converged | ~improves,
            )

        s = s._replace(done=~jnp.isfinite(s.best_objective))
        s = jax.lax.while_loop(lambda s: (~s.done) & (s.iterations < stage_end), body, s)
        return s, None

    state = _State(
        weights=weights0, M=M0, q=q0,
        best_weights=jnp.where(start_is_better, weights0, uniform),
        best_objective=jnp.where(jnp.isfinite(log_det0),
                                 jnp.where(start_is_better, _true(q0, objective), _true(q_uniform, objective)),
                                 jnp.nan),
        gap=jnp.asarray(jnp.inf, dtype), iterations=jnp.int32(0), since_refresh=jnp.int32(0),
        done=jnp.bool_(False),
    )
    s, _ = jax.lax.scan(run_stage, state, jnp.arange(stages))
    _, q_best, _ = fresh(s.best_weights)
    tau_last = jnp.asarray(smoothing, dtype) * scale
    return TransductiveResult(
        weights=s.best_weights,
        objective=_true(q_best, objective),
        variances=q_best,
        smoothed_objective=_smoothed(q_best, tau_last, objective),
        gap=s.gap,
        iterations=s.iterations,
    )


def transductive_design(
    X: Any,
    Z: Any,
    *,
    objective: Objective = "max",
    smoothing: float = 1e-3,
    tol: float = 1e-3,
    max_iter: int = 2000,
    initial_weights: Any | None = None,
    refresh_every: int = 50,
    stages: int = 4,
) -> TransductiveResult:
    """Design over the pool ``X`` minimising the max (or mean) of ``z' V^{-1} z`` over targets ``Z``.

    Args:
      X: pool ``(n, d)`` of rank ``d``.
      Z: targets ``(k, d)``.
      objective: ``"max"`` (log-mean-exp smoothed) or ``"mean"``.
      smoothing: final ``tau / max_z q_z(start)`` for ``"max"``.
      tol: stop when the Frank-Wolfe gap is below ``tol * F_tau``.
      max_iter: cap on Frank-Wolfe steps.
      initial_weights: starting design (default: the D-optimal design of
        ``X``, which is G-optimal for the pool itself and sparse).
      refresh_every: steps between rebuilds of ``V^{-1}``.
      stages: continuation stages of ``tau`` for ``"max"`` (each gets
        ``max_iter / stages`` steps at most).

    Returns:
      :class:`TransductiveResult`.
    """
    if objective not in ("max", "mean"):
        raise AlbandError(f"objective must be 'max' or 'mean', got {objective!r}")
    Xj = pool_array(X, "X")
    Zj = pool_array(Z, "Z")
    n, d = Xj.shape
    if Zj.shape[1] != d:
        raise AlbandError(f"Z has {Zj.shape[1]} features but the pool X has {d}; embed both the same way")
    if n < d:
        raise AlbandError(f"X has {n} rows but {d} columns: every design is singular")
    if initial_weights is None:
        w0 = wolfe_atwood_design(Xj).weights
    else:
        w0 = vector(initial_weights, n, "initial_weights")
    if is_concrete(w0) and (bool(jnp.any(w0 < 0)) or not bool(jnp.sum(w0) > 0)):
        raise AlbandError("initial_weights must be >= 0 with a positive sum")
    result = transductive_design_kernel(
        Xj, Zj, w0, objective=objective, smoothing=positive_float(smoothing, "smoothing"),
        tol=positive_float(tol, "tol"), max_iter=positive_int(max_iter, "max_iter"),
        refresh_every=positive_int(refresh_every, "refresh_every"), stages=positive_int(stages, "stages"),
    )
    if is_concrete(Xj) and not bool(jnp.isfinite(result.objective)):
        if not bool(jnp.isfinite(Zj).all()):
            raise AlbandError("Z has a NaN or infinite entry; clean or drop it")
        raise explain_singular(Xj)
    return result
