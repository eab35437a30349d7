"""Benchmark of the D-optimal design engine: JAX Frank-Wolfe vs the cvxpy oracle.

Pool: ``n`` rows of ``N(0, I_d)`` with the first 5% scaled by 2.5 (the peer
benchmark in ``REFERENCES.md``), float32, seeded. ``fw_seconds`` is the median
wall time of :func:`alband.design.d_optimal_design` (Frank-Wolfe with away
steps) over ``repeats`` calls *after* a warm-up call; ``fw_compile_seconds`` is
the warm-up call minus that median (tracing + XLA compilation). The cvxpy
reference (Clarabel) runs once, only when ``n d^2 <= cvxpy_max_work`` (an
interior-point SDP grows as ``n d^2``); otherwise its fields are None.
``rel_gap = (log det_cvxpy - log det_fw) / max(1, |log det_cvxpy|)``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Any

import numpy as np

from alband.errors import AlbandError


def design_pool(n: int, d: int, seed: int = 0, *, outlier_share: float = 0.05,
                outlier_scale: float = 2.5) -> np.ndarray:
    """Gaussian pool with ``outlier_share`` of the rows scaled by ``outlier_scale`` (float32)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X[: int(outlier_share * n)] *= np.float32(outlier_scale)
    return X


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Cores, platform and library versions (JSON-able)."""
    import jax

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "cvxpy": _version("cvxpy"),
        "clarabel": _version("clarabel"),
    }


def bench_design(
    n: int,
    d: int,
    *,
    repeats: int = 5,
    eps: float = 1e-3,
    with_cvxpy: bool = True,
    seed: int = 0,
    cvxpy_max_work: float = 5e6,
) -> dict[str, Any]:
    """Time Frank-Wolfe (and cvxpy where feasible) to the certificate ``max g <= d (1 + eps)``.

    Returns a JSON-able dict: ``n``, ``d``, ``eps``, ``repeats``, ``seed``,
    ``fw_seconds`` (median), ``fw_seconds_all``, ``fw_compile_seconds``,
    ``fw_iterations``, ``fw_log_det``, ``fw_support``, ``max_leverage_over_d``,
    ``certified``, ``cvxpy_seconds``, ``cvxpy_log_det``,
    ``cvxpy_max_leverage_over_d``, ``rel_gap``, ``speedup`` (cvxpy / fw),
    ``cvxpy_skipped_reason`` and ``machine``.
    """
    import jax

    from alband.design import d_optimal_design

    for value, name in ((n, "n"), (d, "d"), (repeats, "repeats")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AlbandError(f"{name} must be an integer >= 1, got {value!r}")
    if n < d:
        raise AlbandError(f"n ({n}) must be at least d ({d}) for a nonsingular design")
    X_host = design_pool(n, d, seed)
    X = jax.device_put(X_host)

    def run():
        start = time.perf_counter()
        result = d_optimal_design(X, method="frank-wolfe", eps=eps)
        jax.block_until_ready(result)
        return result, time.perf_counter() - start

    result, first = run()
    times = []
    for _ in range(repeats):
        result, seconds = run()
        times.append(seconds)
    fw_seconds = statistics.median(times)
    out: dict[str, Any] = {
        "n": n,
        "d": d,
        "eps": eps,
        "repeats": repeats,
        "seed": seed,
        "fw_seconds": fw_seconds,
        "fw_seconds_all": times,
        "fw_compile_seconds": max(first - fw_seconds, 0.0),
        "fw_iterations": int(result.iterations),
        "fw_log_det": float(result.log_det),
        "fw_support": int(np.sum(np.asarray(result.weights) > 0)),
        "max_leverage_over_d": float(result.max_leverage) / d,
        "certified": bool(result.certified),
        "cvxpy_seconds": None,
        "cvxpy_log_det": None,
        "cvxpy_max_leverage_over_d": None,
        "rel_gap": None,
        "speedup": None,
        "cvxpy_skipped_reason": None,
        "machine": machine_info(),
    }
    if not with_cvxpy:
        out["cvxpy_skipped_reason"] = "with_cvxpy=False"
    elif n * d * d > cvxpy_max_work:
        out["cvxpy_skipped_reason"] = (
            f"n*d^2 = {n * d * d:.3g} > {cvxpy_max_work:.3g}: the SDP is too large for the oracle"
        )
    else:
        import cvxpy  # noqa: F401  (import time is not solve time)

        from alband.design import cvxpy_design

        start = time.perf_counter()
        reference = cvxpy_design(X_host, eps)
        cvxpy_seconds = time.perf_counter() - start
        out.update(
            cvxpy_seconds=cvxpy_seconds,
            cvxpy_log_det=float(reference.log_det),
            cvxpy_max_leverage_over_d=float(reference.max_leverage) / d,
            rel_gap=(float(reference.log_det) - float(result.log_det)) / max(1.0, abs(float(reference.log_det))),
            speedup=cvxpy_seconds / fw_seconds if fw_seconds > 0 else None,
        )
    return out
