"""Benchmark of preference-pair acquisition against the read roof and plain numpy.

Pool: ``n`` pair features ``z ~ N(0, I_d / d)`` (float32, seeded) and reward
weights ``theta ~ N(0, 4 I_d)``, so margins ``theta' z`` have standard
deviation 2 (neither all coin flips nor all certain).

* ``uncertainty``: the ``pair_uncertainty`` batch of ``batch`` pairs among
  ``n_score`` (default 1e6) at ``d = 384``: ``-|z theta|`` and a masked
  ``lax.top_k``, one jitted call. ``read_roof_seconds`` is one jitted
  ``z @ v`` over the same device array in the same run -- one read of the pair
  features, which no scorer can beat; the target is
  ``ratio = policy / roof <= 1.5``. ``numpy_seconds``: the same batch in numpy
  (``np.abs(Z @ theta)``, ``np.argpartition``) on the same matrix.
* ``design``: the Fisher-weighted Bayesian D-optimal batch of ``batch`` pairs
  among ``n_design`` (default 1e5) with 1% of them judged, as the
  ``pair_d_design`` policy computes it
  (:func:`alband.policies.preference.apo.lazy_greedy_rank_one_batch`: one
  pass for the initial scores ``||L^{-1} z_i||^2``, then the greedy rank-1
  picks on a candidate set, with the eager greedy as the fallback when the
  candidates' bound fails); target under 0.5 s. ``score_pass_seconds``: that
  one pass (two thirds of the multiply-adds of ``z_i' V^{-1} z_i`` at
  ``d = 384``: the floor of an exact greedy), ``gemm_pass_seconds`` the plain
  ``z_i' V^{-1} z_i`` pass;
  ``engine_eager_seconds`` the design engine's eager greedy on the weighted
  rows (:func:`alband.policies.preference.d_design.fisher_d_design_batch`: an
  ``O(n d)`` pool pass per pick) and ``same_as_engine`` whether both chose the
  same pairs in the same order; APO's batch beside them. ``numpy_seconds``:
  the same greedy rank-1 batch in numpy float32, and ``same_batch_share`` the
  share of its pairs in ours.
* ``double_ts``: decisions (champion and challenger) for ``n_prompts``
  prompts of ``K = 16`` candidates at ``d``: two posterior draws per prompt
  and two argmaxes (:func:`alband.policies.preference.double_ts.double_ts_decisions`);
  ``decisions_per_second = n_prompts / seconds`` (the normal draws included,
  JAX's counter-based generator); ``numpy_*`` the same math in vectorised numpy
  (its Cholesky included) with numpy's generator and numpy's threads, and
  ``numpy_*one_thread_seconds`` the same with one BLAS thread (on a busy machine
  numpy's own LAPACK threads contend too); ``*_from_noise*`` both
  given the same normal draws (the decisions alone), ``normal_draws_seconds``
  and ``numpy_normal_draws_seconds`` the draws alone, and
  ``same_decisions_share`` whether both decide alike on the same draws.

Every jitted function is compiled first (``*compile_seconds``: tracing and
XLA compilation, what a process pays once per shape), then timed: medians of
``repeats`` calls, the JAX and numpy versions called in alternation so that
the load of a shared machine weighs on both alike; the load average comes
with the numbers. The JAX calls run with one BLAS thread
(:func:`alband.cpu_threads.one_blas_thread`, as ``alband run`` and ``alband
simulate`` run them: the LAPACK kernels of a jitted program otherwise fight
XLA's threads for the cores); the numpy versions keep numpy's threads.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from alband.benchmarks.acquisition import _check_int, _timed_alternating
from alband.errors import AlbandError

TARGET_ROOF_RATIO = 1.5
TARGET_DESIGN_SECONDS = 0.5


def _compiled(jitted, *args):
    """``(call, compile_seconds)``: ``jitted`` lowered and compiled for ``args`` (one BLAS thread), and a
    call of the compiled program that runs with one BLAS thread and waits for its result."""
    import time

    import jax

    from alband.cpu_threads import one_blas_thread

    with one_blas_thread():
        start = time.perf_counter()
        program = jitted.lower(*args).compile()
        seconds = time.perf_counter() - start

    def call():
        with one_blas_thread():
            return jax.block_until_ready(program(*args))

    return call, seconds


def _pool(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = np.empty((n, d), np.float32)
    step = 1 << 16
    for start in range(0, n, step):  # in slices: no float64 copy of a 1.5 GB pool
        z[start:start + step] = rng.standard_normal((min(step, n - start), d), dtype=np.float32)
    z *= np.float32(1.0 / np.sqrt(d))
    theta = (2.0 * rng.standard_normal(d)).astype(np.float32)
    return z, theta


def _numpy_greedy(z, V_inv, weight, available, batch, criterion):
    """Greedy rank-1 batch in numpy (the reference of the jitted kernel)."""
    W = z @ V_inv
    s = np.einsum("nd,nd->n", W, z)
    available = available.copy()
    picks = []
    for _ in range(batch):
        score = s if criterion == "apo" else weight * s
        i = int(np.argmax(np.where(available, score, -np.inf)))
        picks.append(i)
        available[i] = False
        u = V_inv @ z[i]
        factor = weight[i] / (1.0 + weight[i] * (z[i] @ u))
        zu = z @ u
        V_inv = V_inv - factor * np.outer(u, u)
        s = s - factor * zu * zu
    return np.asarray(picks)


def bench_uncertainty(n: int = 1_000_000, d: int = 384, batch: int = 100, repeats: int = 5,
                      seed: int = 0) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from alband.policies.base import top_unqueried
    from alband.policies.preference.uncertainty import pair_uncertainty_scores

    z_np, theta_np = _pool(n, d, seed)
    z = jax.device_put(z_np)
    theta = jnp.asarray(theta_np)
    queried = jnp.zeros((n,), bool)
    v = jnp.ones((d,), jnp.float32)

    policy, policy_compile = _compiled(
        jax.jit(lambda z, theta, q: top_unqueried(pair_uncertainty_scores(z, theta), q, batch)), z, theta, queried)
    roof, _ = _compiled(jax.jit(lambda z, v: z @ v), z, v)

    def numpy_batch():
        scores = np.abs(z_np @ theta_np)
        part = np.argpartition(scores, batch)[:batch]
        return part[np.argsort(scores[part], kind="stable")]

    t = _timed_alternating({"roof": roof, "policy": policy, "numpy": numpy_batch}, repeats)
    ours = np.asarray(policy())
    return {
        "n": n, "d": d, "batch": batch,
        "policy_seconds": t["policy"]["seconds"], "policy_compile_seconds": policy_compile,
        "read_roof_seconds": t["roof"]["seconds"],
        "ratio": t["policy"]["seconds"] / t["roof"]["seconds"],
        "target_ratio": TARGET_ROOF_RATIO,
        "numpy_seconds": t["numpy"]["seconds"],
        "numpy_over_ours": t["numpy"]["seconds"] / t["policy"]["seconds"],
        "same_batch": sorted(ours.tolist()) == sorted(numpy_batch().tolist()),
    }


def bench_design(n: int = 100_000, d: int = 384, batch: int = 100, repeats: int = 5, seed: int = 1,
                 judged_fraction: float = 0.01, l2: float = 1.0) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from alband.design._linalg import leverages, triangular_leverages
    from alband.policies.preference._posterior import precision_factor_inverse
    from alband.policies.preference.apo import apo_batch, lazy_greedy_rank_one_batch
    from alband.policies.preference.d_design import fisher_d_design_batch

    z_np, theta_np = _pool(n, d, seed)
    rng = np.random.default_rng(seed + 1)
    queried_np = np.zeros(n, bool)
    queried_np[rng.choice(n, max(1, int(judged_fraction * n)), replace=False)] = True
    p_np = (1.0 / (1.0 + np.exp(-(z_np @ theta_np)))).astype(np.float32)
    w_np = (p_np * (1 - p_np)).astype(np.float32)
    zq = z_np[queried_np]
    V_np = (l2 * np.eye(d) + (zq * w_np[queried_np, None]).T @ zq).astype(np.float32)

    z, p, q, V = jax.device_put(z_np), jnp.asarray(p_np), jnp.asarray(queried_np), jnp.asarray(V_np)
    w = jnp.asarray(w_np)
    d_design, d_design_compile = _compiled(
        jax.jit(lambda z, V, w, q: lazy_greedy_rank_one_batch(z, V, w, ~q, batch, "d")), z, V, w, q)
    engine, _ = _compiled(jax.jit(lambda z, p, q: fisher_d_design_batch(z, p, q, batch, l2)), z, p, q)
    apo, apo_compile = _compiled(jax.jit(lambda z, V, p, q: apo_batch(z, V, p, q, batch)), z, V, p, q)
    score_pass, _ = _compiled(jax.jit(lambda z, V: triangular_leverages(z, precision_factor_inverse(V)[0])), z, V)
    gemm_pass, _ = _compiled(jax.jit(lambda z, V: leverages(z, precision_factor_inverse(V)[1])), z, V)

    def numpy_batch():
        V_inv = np.linalg.inv(V_np).astype(np.float32)
        return _numpy_greedy(z_np, V_inv, w_np, ~queried_np, batch, "d")

    t = _timed_alternating({"d_design": d_design, "engine": engine, "apo": apo, "numpy": numpy_batch,
                            "score_pass": score_pass, "gemm_pass": gemm_pass}, repeats)
    ours = np.asarray(d_design())
    ref = numpy_batch()
    return {
        "n": n, "d": d, "batch": batch, "judged": int(queried_np.sum()),
        "d_design_seconds": t["d_design"]["seconds"], "d_design_compile_seconds": d_design_compile,
        "score_pass_seconds": t["score_pass"]["seconds"], "gemm_pass_seconds": t["gemm_pass"]["seconds"],
        "engine_eager_seconds": t["engine"]["seconds"],
        "same_as_engine": np.asarray(engine()).tolist() == ours.tolist(),
        "apo_seconds": t["apo"]["seconds"], "apo_compile_seconds": apo_compile,
        "target_seconds": TARGET_DESIGN_SECONDS,
        "numpy_seconds": t["numpy"]["seconds"],
        "numpy_over_ours": t["numpy"]["seconds"] / t["d_design"]["seconds"],
        "same_batch_share": len(set(ours.tolist()) & set(ref.tolist())) / batch,
    }


def bench_double_ts(n_prompts: int = 10_000, k: int = 16, d: int = 384, repeats: int = 5,
                    seed: int = 2) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from alband.models.bradley_terry import GaussianPosterior
    from alband.policies.preference.double_ts import double_ts_decisions, double_ts_decisions_from_noise

    rng = np.random.default_rng(seed)
    x_np = (rng.standard_normal((n_prompts, k, d), dtype=np.float32) / np.float32(np.sqrt(d)))
    A = rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d)
    V_np = (np.eye(d) + A @ A.T).astype(np.float32)
    mean_np = rng.standard_normal(d).astype(np.float32)
    posterior = GaussianPosterior(jnp.asarray(mean_np), jnp.asarray(V_np))
    x, valid = jax.device_put(x_np), jnp.ones((n_prompts, k), bool)
    key = jax.random.key(seed)
    e_np = np.asarray(jax.random.normal(key, (2, n_prompts, d), jnp.float32))
    e = jnp.asarray(e_np)

    def numpy_decisions(e_np=e_np):
        L_t_inv = np.linalg.inv(np.linalg.cholesky(V_np).T)
        thetas = mean_np + (e_np.reshape(-1, d) @ L_t_inv.T).reshape(2, n_prompts, d)
        r1 = np.einsum("pkd,pd->pk", x_np, thetas[0])
        r2 = np.einsum("pkd,pd->pk", x_np, thetas[1])
        champion = np.argmax(r1, axis=1)
        r2[np.arange(n_prompts), champion] = -np.inf
        return np.stack([champion, np.argmax(r2, axis=1)], axis=1)

    numpy_rng = np.random.default_rng(seed)
    ours, compile_seconds = _compiled(double_ts_decisions, key, x, valid, posterior)
    from_noise, _ = _compiled(double_ts_decisions_from_noise, e, x, valid, posterior)
    draws, _ = _compiled(jax.jit(lambda key: jax.random.normal(key, (2, n_prompts, d), jnp.float32)), key)
    from alband.cpu_threads import one_blas_thread

    def numpy_one_thread():
        with one_blas_thread():
            return numpy_decisions(numpy_rng.standard_normal((2, n_prompts, d), dtype=np.float32))

    def numpy_from_noise_one_thread():
        with one_blas_thread():
            return numpy_decisions()

    t = _timed_alternating({
        "ours": ours, "ours_from_noise": from_noise, "numpy_from_noise": numpy_decisions,
        "numpy": lambda: numpy_decisions(numpy_rng.standard_normal((2, n_prompts, d), dtype=np.float32)),
        "numpy_one_thread": numpy_one_thread, "numpy_from_noise_one_thread": numpy_from_noise_one_thread,
        "draws": draws, "numpy_draws": lambda: numpy_rng.standard_normal((2, n_prompts, d), dtype=np.float32),
    }, repeats)
    decided = np.asarray(ours())
    return {
        "n_prompts": n_prompts, "k": k, "d": d,
        "seconds": t["ours"]["seconds"], "compile_seconds": compile_seconds,
        "decisions_per_second": n_prompts / t["ours"]["seconds"],
        "from_noise_seconds": t["ours_from_noise"]["seconds"],
        "normal_draws_seconds": t["draws"]["seconds"],
        "numpy_seconds": t["numpy"]["seconds"],
        "numpy_decisions_per_second": n_prompts / t["numpy"]["seconds"],
        "numpy_one_thread_seconds": t["numpy_one_thread"]["seconds"],
        "numpy_from_noise_seconds": t["numpy_from_noise"]["seconds"],
        "numpy_from_noise_one_thread_seconds": t["numpy_from_noise_one_thread"]["seconds"],
        "numpy_normal_draws_seconds": t["numpy_draws"]["seconds"],
        "same_decisions_share": float(np.mean((decided == numpy_decisions()).all(axis=1))),
    }


def bench_preference(*, n_score: int = 1_000_000, n_design: int = 100_000, n_prompts: int = 10_000,
                     d: int = 384, batch: int = 100, k: int = 16, repeats: int = 5) -> dict[str, Any]:
    """All three benchmarks (module docstring), with the machine and its load."""
    from alband.benchmarks.acquisition import acquisition_machine_info

    for name, value in (("n_score", n_score), ("n_design", n_design), ("n_prompts", n_prompts), ("d", d),
                        ("batch", batch), ("repeats", repeats)):
        _check_int(value, name)
    _check_int(k, "k", 2)
    if batch > min(n_score, n_design):
        raise AlbandError(f"bench preference: batch {batch} exceeds the pool sizes")
    out = {
        "uncertainty": bench_uncertainty(n_score, d, batch, repeats),
        "design": bench_design(n_design, d, batch, repeats),
        "double_ts": bench_double_ts(n_prompts, k, d, repeats),
        "machine": acquisition_machine_info(),
    }
    out["machine"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return out


def preference_main(argv: list[str]) -> int:
    """``alband bench preference [--json] [--n-score N] [--n-design N] [--n-prompts N] [--repeats R]``."""
    import argparse
    import json

    class _Parser(argparse.ArgumentParser):
        def error(self, message):  # one readable line via AlbandError, exit code 2
            from alband.errors import AlbandError

            raise AlbandError(f"{self.prog}: {message}")

    p = _Parser(prog="alband bench preference",
                                description="Pair uncertainty vs the read roof, a design batch, Double TS decisions; "
                                            "each against plain numpy, compilation timed apart (JAX with one BLAS "
                                            "thread, alband.cpu_threads).")
    p.add_argument("--n-score", type=int, default=1_000_000,
                   help="pairs scored by the uncertainty batch (default 1000000)")
    p.add_argument("--n-design", type=int, default=100_000, help="pairs of the D-optimal design batch (default 100000)")
    p.add_argument("--n-prompts", type=int, default=10_000, help="prompts given Double TS decisions (default 10000)")
    p.add_argument("--d", type=int, default=384, help="pair feature dimension (default 384)")
    p.add_argument("--batch", type=int, default=100, help="pairs per batch (default 100)")
    p.add_argument("--k", type=int, default=16, help="candidates per prompt for Double TS (default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after a warm-up; medians (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)
    result = bench_preference(n_score=args.n_score, n_design=args.n_design, n_prompts=args.n_prompts, d=args.d,
                              batch=args.batch, k=args.k, repeats=args.repeats)
    print(json.dumps({"benchmark": "preference", **result}, indent=None if args.json else 2))
    return 0
