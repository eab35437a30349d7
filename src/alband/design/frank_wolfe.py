r"""D-/G-optimal design by Frank-Wolfe with away and drop steps (Wolfe-Atwood).

Problem (Kiefer and Wolfowitz 1960; Pukelsheim 2006, ch. 9): over a finite pool
``x_1..x_n`` in R^d,

    maximise  f(pi) = log det V(pi),   V(pi) = sum_i pi_i x_i x_i',   pi in simplex.

``f`` is concave with gradient ``g_i = x_i' V^{-1} x_i`` (the leverages) and
``sum_i pi_i g_i = d``. By the equivalence theorem, ``pi`` is optimal iff
``max_i g_i = d``, and the same design minimises the G-criterion
``max_i g_i``.

Algorithm (Fedorov 1972, Wynn 1970; away steps: Wolfe 1970, Atwood 1973; this
variant and its stopping rule: Todd and Yildirim 2007, "On Khachiyan's
algorithm for the computation of minimum-volume enclosing ellipsoids", Discrete
Applied Mathematics 155):

* toward step on ``j = argmax_i g_i`` with ``eps_plus = g_j / d - 1``;
* away step on ``k = argmin_{pi_i > 0} g_i`` with ``eps_minus = 1 - g_k / d``;
* take the toward step when ``eps_plus >= eps_minus``, else the away step;
  both move along ``pi <- (1 - gamma) pi + gamma e_i`` with the exact line
  search of ``f``,

      gamma* = (g_i / d - 1) / (g_i - 1),

  positive for a toward step, negative for an away step, where it is clipped at
  ``-pi_k / (1 - pi_k)``: that *drop step* removes ``k`` from the support;
* stop when ``max(eps_plus, eps_minus) <= eps``: ``eps``-approximate optimality
  (the Kiefer-Wolfowitz certificate ``max_i g_i <= d (1 + eps)``) together with
  ``eps``-approximate complementarity (every support point has
  ``g_i >= d (1 - eps)``). Away steps make the convergence linear
  (Ahipasaoglu, Sun and Todd 2008, "Linear convergence of a modified
  Frank-Wolfe algorithm for computing minimum-volume enclosing ellipsoids",
  Optimization Methods and Software 23; in general Lacoste-Julien and Jaggi
  2015, "On the global linear convergence of Frank-Wolfe optimization
  variants", NeurIPS), where plain Fedorov-Wynn steps converge sublinearly.

``V^{-1}`` and all leverages are kept current by Sherman-Morrison rank-1
updates, O(n d) per step (:mod:`alband.design._linalg`), and rebuilt from
scratch by Cholesky every ``refresh_every`` steps and before the certificate is
accepted, which bounds float32 drift.

Large pools: the steps run on a working set of ``working_set_size`` rows
(default ``max(2048, 32 d)``; the whole pool when it is smaller). The working set starts as the rows of
largest leverage under the uniform design; after each inner solve the
leverages of the whole pool are recomputed once (O(n d^2), chunked) and, if the
certificate fails on the pool, the working set becomes the current support plus
the rows of largest leverage. The restricted problem's optimum is the pool's as
soon as the pool certificate holds, so the answer is the same; only the
O(n d)-per-step cost is paid on ``working_set_size`` rows instead of ``n``
(column generation; compare the core-set argument of Kumar and Yildirim 2005).
The initial support is ``d`` rows of greedy maximal volume
(:mod:`alband.design.initial`) with uniform weights.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from alband.design._linalg import (
    DEFAULT_CHUNK_ROWS,
    information_matrix,
    inverse_and_log_det,
    leverages,
    rank_one_update,
)
from alband.design.initial import greedy_volume_support, is_rank_deficient
from alband.design.result import DesignResult



def default_working_set_size(n: int, d: int) -> int:
    """``min(n, max(2048, 32 d))`` rows: room for the support (typically a few d rows)
    and its neighbours, small enough that a step costs O(2048 d), not O(n d)."""
    return min(n, max(2048, 32 * d))


DEFAULT_REFRESH_EVERY = 200
DEFAULT_MAX_ITER = 100_000
DEFAULT_MAX_ROUNDS = 64


class _Inner(NamedTuple):
    weights: Array  # (m,)
    M: Array  # (d, d) V^{-1}
    g: Array  # (m,) leverages on the working set
    log_det: Array
    iterations: Array  # int32, total steps so far
    since_refresh: Array  # int32
    done: Array  # bool


def _refresh(XW: Array, weights: Array) -> tuple[Array, Array, Array]:
    M, log_det = inverse_and_log_det(information_matrix(XW, weights))
    return M, leverages(XW, M), log_det


def _gaps(g: Array, weights: Array, d: int) -> tuple[Array, Array, Array, Array]:
    """``(eps_plus, j, eps_minus, k)`` for the toward and the away vertex."""
    j = jnp.argmax(g)
    k = jnp.argmin(jnp.where(weights > 0, g, jnp.inf))
    return g[j] / d - 1.0, j, 1.0 - g[k] / d, k


def _step_size(g_i: Array, pi_i: Array, d: int, toward: Array) -> tuple[Array, Array]:
    """Exact line-search step for ``pi <- (1 - gamma) pi + gamma e_i`` and the drop flag."""
    denom = g_i - 1.0
    safe = jnp.where(jnp.abs(denom) > 1e-12, denom, 1.0)
    gamma_ls = jnp.where(jnp.abs(denom) > 1e-12, (g_i / d - 1.0) / safe, 0.0)
    lower = -pi_i / jnp.maximum(1.0 - pi_i, jnp.finfo(g_i.dtype).eps)
    # Away step: if g_i <= 1, log det increases all the way to the bound.
    gamma_away = jnp.where(g_i > 1.0, jnp.maximum(gamma_ls, lower), lower)
    gamma = jnp.where(toward, jnp.clip(gamma_ls, 0.0, 1.0 - 1e-6), gamma_away)
    return gamma, (~toward) & (gamma <= lower)


def _solve_working_set(XW: Array, state: _Inner, eps: Array, max_iter: Array, *,
                       away_steps: bool, refresh_every: int) -> _Inner:
    """Wolfe-Atwood on the rows ``XW`` from ``state`` until the stopping rule or ``max_iter``."""
    d = XW.shape[1]

    def converged(gaps):
        eps_plus, _, eps_minus, _ = gaps
        return jnp.maximum(eps_plus, eps_minus) <= eps if away_steps else eps_plus <= eps

    def refresh(s: _Inner) -> _Inner:
        M, g, log_det = _refresh(XW, s.weights)
        return s._replace(M=M, g=g, log_det=log_det, since_refresh=jnp.int32(0))

    def refresh_with_gaps(args):
        s = refresh(args[0])
        return s, _gaps(s.g, s.weights, d)

    def step(args) -> _Inner:
        s, (eps_plus, j, eps_minus, k) = args
        toward = (eps_plus >= eps_minus) if away_steps else jnp.bool_(True)
        i = jnp.where(toward, j, k)
        gamma, drop = _step_size(s.g[i], s.weights[i], d, toward)
        u = s.M @ XW[i]
        M, g = rank_one_update(s.M, s.g, XW @ u, u, s.g[i], gamma)
        weights = ((1.0 - gamma) * s.weights).at[i].add(gamma)
        weights = jnp.where(drop, weights.at[i].set(0.0), weights)
        return s._replace(weights=weights, M=M, g=g, iterations=s.iterations + 1,
                          since_refresh=s.since_refresh + 1)

    def body(s: _Inner) -> _Inner:
        gaps = _gaps(s.g, s.weights, d)
        # Rebuild V^{-1} from scratch every `refresh_every` steps, and before
        # accepting a certificate computed from rank-1-updated leverages.
        need = (s.since_refresh > 0) & ((s.since_refresh >= refresh_every) | converged(gaps))
        s, gaps = jax.lax.cond(need, refresh_with_gaps, lambda a: a, (s, gaps))
        done = (converged(gaps) & (s.since_refresh == 0)) | ~jnp.isfinite(s.log_det)
        s = jax.lax.cond(done, lambda a: a[0], step, (s, gaps))
        return s._replace(done=done)

    def cond(s: _Inner) -> Array:
        return (~s.done) & (s.iterations < max_iter)

    s = jax.lax.while_loop(cond, body, state._replace(done=jnp.bool_(False)))
    return jax.lax.cond(s.since_refresh > 0, refresh, lambda s: s, s)


def _initial_working_set(X: Array, m: int, chunk_rows: int) -> tuple[Array, Array]:
    """Working-set rows and the positions (within it) of the ``d`` initial support rows."""
    n, d = X.shape
    if m >= n:
        W = jnp.arange(n, dtype=jnp.int32)
        support = greedy_volume_support(X)
        return W, support.indices
    # Rows of largest leverage under the uniform design hold the optimal support
    # in all but adversarial pools; pivoted QR picks the initial d among them.
    M_uniform, _ = inverse_and_log_det(information_matrix(X, jnp.full((n,), 1.0 / n, X.dtype), chunk_rows=chunk_rows))
    g_uniform = leverages(X, M_uniform, chunk_rows=chunk_rows)
    W = jax.lax.top_k(g_uniform, m)[1].astype(jnp.int32)
    local = greedy_volume_support(X[W])

    def from_whole_pool(_):
        # The top-leverage rows span less than R^d: take the d volume rows of
        # the whole pool instead and put them at the end of the working set.
        whole = greedy_volume_support(X, d)
        W2 = jnp.concatenate([W[: m - d], whole.indices])
        return W2, jnp.arange(m - d, m, dtype=jnp.int32)

    return jax.lax.cond(is_rank_deficient(local.pivots), from_whole_pool, lambda _: (W, local.indices), None)


@partial(jax.jit, static_argnames=("away_steps", "refresh_every", "working_set_size", "max_rounds", "chunk_rows"))
def wolfe_atwood_design(
    X: Array,
    eps: float | Array = 1e-3,
    max_iter: int | Array = DEFAULT_MAX_ITER,
    *,
    away_steps: bool = True,
    refresh_every: int = DEFAULT_REFRESH_EVERY,
    working_set_size: int | None = None,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DesignResult:
    """Approximate D-/G-optimal design of the rows of ``X`` (n, d), jitted.

    Args:
      X: pool, float32 ``(n, d)`` of rank ``d``.
      eps: target; stops when ``max_i g_i <= d (1 + eps)`` (and, with away
        steps, every support point has ``g_i >= d (1 - eps)``).
      max_iter: cap on the total number of Frank-Wolfe steps.
      away_steps: ``False`` gives plain Fedorov-Wynn (toward steps only).
      refresh_every: steps between rebuilds of ``V^{-1}`` from scratch.
      working_set_size: rows the steps run on (see module docstring; default
        :func:`default_working_set_size`; at least ``2 d``). The support never exceeds it: if
        the optimum needs more support points, ``certified`` stays False
        (:func:`alband.design.d_optimal_design` then retries with a larger one).
      max_rounds: cap on working-set rounds.
      chunk_rows: rows per chunk of pool-sized passes.

    Returns:
      :class:`DesignResult`; ``log_det`` is NaN when ``X`` has rank below ``d``.
    """
    n, d = X.shape
    m = default_working_set_size(n, d) if working_set_size is None else min(n, max(working_set_size, 2 * d))
    eps = jnp.asarray(eps, X.dtype)
    max_iter = jnp.asarray(max_iter, jnp.int32)
    solve = partial(_solve_working_set, away_steps=away_steps, refresh_every=refresh_every)

    W, start = _initial_working_set(X, m, chunk_rows)
    XW = X[W]
    weights_w = jnp.zeros((m,), X.dtype).at[start].set(1.0 / d)
    M, g, log_det = _refresh(XW, weights_w)
    inner = _Inner(weights_w, M, g, log_det, jnp.int32(0), jnp.int32(0), jnp.bool_(False))

    if m == n:
        inner = solve(XW, inner, eps, max_iter)
        weights = jnp.zeros((n,), X.dtype).at[W].add(inner.weights)
        g_pool = jnp.zeros((n,), X.dtype).at[W].set(inner.g)
        return _result(weights, inner, g_pool, eps, d)

    class Outer(NamedTuple):
        W: Array
        inner: _Inner
        g_pool: Array
        rounds: Array
        done: Array

    def outer_body(o: Outer) -> Outer:
        XW = X[o.W]
        inner = o.inner._replace(g=leverages(XW, o.inner.M))
        inner = solve(XW, inner, eps, max_iter)
        weights = jnp.zeros((n,), X.dtype).at[o.W].add(inner.weights)
        g_pool = leverages(X, inner.M, chunk_rows=chunk_rows)
        certified = jnp.max(g_pool) <= d * (1.0 + eps)
        stop = certified | (inner.iterations >= max_iter) | ~jnp.isfinite(inner.log_det)
        # Keep the support, fill the rest with the rows of largest leverage.
        W_next = jax.lax.top_k(jnp.where(weights > 0, jnp.inf, g_pool), m)[1].astype(jnp.int32)
        W_new = jnp.where(stop, o.W, W_next)
        inner = inner._replace(weights=jnp.where(stop, inner.weights, weights[W_new]))
        return Outer(W_new, inner, g_pool, o.rounds + 1, stop)

    o = jax.lax.while_loop(
        lambda o: (~o.done) & (o.rounds < max_rounds),
        outer_body,
        Outer(W, inner, jnp.zeros((n,), X.dtype), jnp.int32(0), jnp.bool_(False)),
    )
    weights = jnp.zeros((n,), X.dtype).at[o.W].add(o.inner.weights)
    return _result(weights, o.inner, o.g_pool, eps, d)


def _result(weights: Array, inner: _Inner, g_pool: Array, eps: Array, d: int) -> DesignResult:
    max_leverage = jnp.max(g_pool)
    return DesignResult(
        weights=weights,
        log_det=inner.log_det,
        max_leverage=max_leverage,
        certified=max_leverage <= d * (1.0 + eps),
        iterations=inner.iterations,
        leverages=g_pool,
    )
