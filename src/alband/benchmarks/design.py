"""Benchmark of the D-optimal design engine: JAX Frank-Wolfe vs the cvxpy oracle.

Pool: ``n`` rows of ``N(0, I_d)`` with the first 5% scaled by 2.5 (the peer
benchmark in ``REFERENCES.md``), float32, seeded. ``fw_seconds`` is the median
wall time of :func:`alband.design.d_optimal_design` (Frank-Wolfe with away
steps) over ``repeats`` calls *after* a warm-up call; ``fw_compile_seconds`` is
the warm-up call minus that median (tracing + XLA compilation).

The cvxpy reference (Clarabel) runs once, in a child process with a wall-clock
limit of ``cvxpy_timeout_seconds`` (default 600 s): an interior-point SDP grows
as ``n d^2`` in time and memory, and a child can be stopped (or can run out of
memory) without taking the benchmark with it. ``cvxpy_seconds`` is the solve
time measured inside the child (imports excluded); the limit applies to the
child's whole life, imports included. When the limit is hit, ``cvxpy_timed_out``
is true, ``cvxpy_seconds`` is None and ``speedup_vs_cvxpy_lower_bound`` is
``cvxpy_timeout_seconds / fw_seconds`` (cvxpy would have taken longer than the
limit). Problems with ``n d^2 > cvxpy_max_work`` are not attempted.

Both designs are scored the same way, in float64 on the host
(:func:`alband.design.evaluate_design`): ``rel_gap = (log det_cvxpy -
log det_fw) / max(1, |log det_cvxpy|)`` and each side's
``max_i x_i' V^{-1} x_i / d`` (``max_leverage_over_d``,
``cvxpy_max_leverage_over_d``); ``same_certificate`` says whether both meet
``max_leverage_over_d <= 1 + eps``, the condition under which the speed-up
compares equal work.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
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
    """Cores, platform, the JAX backend and its devices (a GPU shows here), library versions (JSON-able)."""
    import jax

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in jax.devices()],
        "numpy": np.__version__,
        "cvxpy": _version("cvxpy"),
        "clarabel": _version("clarabel"),
    }


DEFAULT_CVXPY_TIMEOUT_SECONDS = 600.0
DEFAULT_CVXPY_MAX_WORK = 3e7  # n d^2: (5k, 64) and (20k, 16) are attempted, (20k, 64) is not

# Run in the child: read the pool, solve, print one JSON line (solve time excludes the imports).
_CVXPY_CHILD = """
import json, sys, time
import numpy as np
import cvxpy  # noqa: F401
from alband.design import cvxpy_design
X = np.load(sys.argv[1])
start = time.perf_counter()
reference = cvxpy_design(X, float(sys.argv[2]))
seconds = time.perf_counter() - start
np.save(sys.argv[3], np.asarray(reference.weights, dtype=np.float64))
print(json.dumps({"seconds": seconds, "iterations": int(reference.iterations)}))
"""


def run_cvxpy_reference(X: np.ndarray, eps: float, timeout_seconds: float) -> dict[str, Any]:
    """Solve the cvxpy reference design in a child process with a wall-clock limit.

    Returns ``{"seconds", "iterations", "weights"}`` on success,
    ``{"timed_out": True}`` when the limit is hit, or ``{"error": message}``
    when the child fails (solver error, out of memory).
    """
    with tempfile.TemporaryDirectory(prefix="alband-cvxpy-") as folder:
        pool = Path(folder) / "pool.npy"
        weights = Path(folder) / "weights.npy"
        np.save(pool, np.asarray(X))
        try:
            child = subprocess.run(
                [sys.executable, "-c", _CVXPY_CHILD, str(pool), repr(float(eps)), str(weights)],
                capture_output=True, text=True, timeout=timeout_seconds,
            )
        except subprocess.TimeoutExpired:
            return {"timed_out": True}
        if child.returncode != 0:
            lines = (child.stderr or "").strip().splitlines() or [f"exit code {child.returncode}"]
            return {"error": f"cvxpy child failed (exit code {child.returncode}): {lines[-1]}"}
        report = json.loads(child.stdout.strip().splitlines()[-1])
        report["weights"] = np.load(weights)
        return report


def bench_design(
    n: int,
    d: int,
    *,
    repeats: int = 5,
    eps: float = 1e-3,
    with_cvxpy: bool = True,
    seed: int = 0,
    cvxpy_max_work: float = DEFAULT_CVXPY_MAX_WORK,
    cvxpy_timeout_seconds: float = DEFAULT_CVXPY_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Time Frank-Wolfe (and cvxpy, in a child process with a time limit) to ``max g <= d (1 + eps)``.

    Returns a JSON-able dict: ``n``, ``d``, ``eps``, ``repeats``, ``seed``,
    ``fw_seconds`` (median), ``fw_seconds_all``, ``fw_compile_seconds``,
    ``fw_iterations``, ``fw_log_det`` (the solver's float32 value),
    ``fw_log_det_float64``, ``fw_support``, ``max_leverage_over_d``,
    ``certified``, ``cvxpy_seconds``, ``cvxpy_iterations``, ``cvxpy_log_det``,
    ``cvxpy_max_leverage_over_d``, ``cvxpy_timed_out``,
    ``cvxpy_timeout_seconds``, ``rel_gap``, ``same_certificate``, ``speedup``
    (cvxpy / fw), ``speedup_vs_cvxpy_lower_bound``, ``cvxpy_skipped_reason``
    and ``machine`` (module docstring).
    """
    import jax

    from alband.design import d_optimal_design, evaluate_design

    for value, name in ((n, "n"), (d, "d"), (repeats, "repeats")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AlbandError(f"{name} must be an integer >= 1, got {value!r}")
    if n < d:
        raise AlbandError(f"n ({n}) must be at least d ({d}) for a nonsingular design")
    if not (isinstance(cvxpy_timeout_seconds, (int, float)) and cvxpy_timeout_seconds > 0):
        raise AlbandError(f"cvxpy_timeout_seconds must be a number > 0, got {cvxpy_timeout_seconds!r}")
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
    fw_host = evaluate_design(X_host, np.asarray(result.weights, dtype=np.float64), eps)
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
        "fw_log_det_float64": float(fw_host.log_det),
        "fw_support": int(np.sum(np.asarray(result.weights) > 0)),
        "max_leverage_over_d": float(fw_host.max_leverage) / d,
        "certified": bool(result.certified),
        "cvxpy_seconds": None,
        "cvxpy_iterations": None,
        "cvxpy_log_det": None,
        "cvxpy_max_leverage_over_d": None,
        "cvxpy_timed_out": False,
        "cvxpy_timeout_seconds": float(cvxpy_timeout_seconds),
        "rel_gap": None,
        "same_certificate": None,
        "speedup": None,
        "speedup_vs_cvxpy_lower_bound": None,
        "cvxpy_skipped_reason": None,
        "machine": machine_info(),
    }
    if not with_cvxpy:
        out["cvxpy_skipped_reason"] = "with_cvxpy=False"
        return out
    if n * d * d > cvxpy_max_work:
        out["cvxpy_skipped_reason"] = (
            f"n*d^2 = {n * d * d:.3g} > {cvxpy_max_work:.3g}: the SDP is too large for the oracle"
        )
        return out
    reference = run_cvxpy_reference(X_host, eps, float(cvxpy_timeout_seconds))
    if reference.get("timed_out"):
        out.update(cvxpy_timed_out=True,
                   speedup_vs_cvxpy_lower_bound=float(cvxpy_timeout_seconds) / fw_seconds if fw_seconds > 0 else None)
        return out
    if "error" in reference:
        out["cvxpy_skipped_reason"] = reference["error"]
        return out
    cvx = evaluate_design(X_host, reference["weights"], eps)
    cvxpy_log_det = float(cvx.log_det)
    out.update(
        cvxpy_seconds=float(reference["seconds"]),
        cvxpy_iterations=int(reference["iterations"]),
        cvxpy_log_det=cvxpy_log_det,
        cvxpy_max_leverage_over_d=float(cvx.max_leverage) / d,
        rel_gap=(cvxpy_log_det - float(fw_host.log_det)) / max(1.0, abs(cvxpy_log_det)),
        same_certificate=bool(fw_host.certified) and bool(cvx.certified),
        speedup=float(reference["seconds"]) / fw_seconds if fw_seconds > 0 else None,
    )
    return out
