"""Benchmark of LinUCB width maintenance: rank-one updates against full recomputation.

LinUCB scores every pool item with its width ``||phi_i||_{A^{-1}}``. After a
label, :mod:`alband.policies.linear_bandits` updates every squared width with
the rank-one formula (one ``X @ u`` pass, ``2 N D`` flops) instead of
recomputing ``phi_i' A^{-1} phi_i`` for all items (``2 N D^2`` flops). This
module times, on an ``n x d`` float32 Gaussian pool (bias feature on, as the
policy's default, so ``D = d + 1``):

* ``rank_one_seconds``: one label: Sherman-Morrison on ``A^{-1}`` plus the
  rank-one update of all ``n`` widths;
* ``woodbury_seconds_per_label``: a batch of ``batch_size`` labels in one
  Woodbury step (one ``(n, D) x (D, B)`` product), divided by ``batch_size``;
* ``full_seconds``: recomputing all ``n`` widths from ``A^{-1}``.

Each is the median wall time of ``repeats`` calls of a jitted function after a
warm-up call (compilation excluded). ``max_rel_diff`` compares the rank-one
widths with the full recomputation after the same update.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

from alband.errors import AlbandError


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    import jax

    jax.block_until_ready(fn())  # compile and warm the buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_linucb_widths(n: int, d: int, repeats: int = 5, *, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    """Median seconds per label of rank-one / Woodbury width updates and of a full recomputation."""
    for value, name in ((n, "n"), (d, "d"), (repeats, "repeats"), (batch_size, "batch_size")):
        if not (isinstance(value, int) and value >= 1):
            raise AlbandError(f"bench_linucb_widths: {name} must be an integer >= 1, got {value!r}")
    import jax
    import jax.numpy as jnp

    from alband.benchmarks.design import machine_info
    from alband.policies._rank_one import (
        feature_rows,
        pool_dot,
        rank_one_widths,
        sherman_morrison,
        squared_widths,
        woodbury,
        woodbury_widths,
    )

    bias = True
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.standard_normal((n, d), dtype=np.float32) / np.float32(np.sqrt(d)))
    # A^{-1} after a few labels, so that no entry is trivially zero.
    seen = feature_rows(X[: min(n, 64)], bias)
    C = jnp.linalg.inv(jnp.eye(d + 1, dtype=jnp.float32) + seen.T @ seen)
    widths = squared_widths(X, C, bias)
    index = jnp.int32(n // 2)
    batch = jnp.asarray(rng.choice(n, size=min(batch_size, n), replace=False), jnp.int32)

    @jax.jit
    def rank_one(C, widths, X, j):
        phi = feature_rows(X[j][None, :], bias)[0]
        C_new, u, s = sherman_morrison(C, phi)
        return C_new, rank_one_widths(widths, pool_dot(X, u, bias), s)

    @jax.jit
    def block(C, widths, X, rows):
        C_new, Q = woodbury(C, feature_rows(X[rows], bias))
        return C_new, woodbury_widths(widths, X, Q, bias)

    full = jax.jit(lambda X, C: squared_widths(X, C, bias))

    rank_one_seconds = _median_seconds(lambda: rank_one(C, widths, X, index), repeats)
    woodbury_seconds = _median_seconds(lambda: block(C, widths, X, batch), repeats)
    full_seconds = _median_seconds(lambda: full(X, C), repeats)

    C_new, updated = rank_one(C, widths, X, index)
    reference = np.asarray(full(X, C_new), np.float64)
    max_rel_diff = float(np.max(np.abs(np.asarray(updated, np.float64) - reference) / reference))
    return {
        "n": n,
        "d": d,
        "features": d + 1,
        "repeats": repeats,
        "batch_size": int(batch.shape[0]),
        "rank_one_seconds": rank_one_seconds,
        "woodbury_seconds_per_label": woodbury_seconds / int(batch.shape[0]),
        "full_seconds": full_seconds,
        "speedup_rank_one": full_seconds / rank_one_seconds,
        "speedup_woodbury": full_seconds / (woodbury_seconds / int(batch.shape[0])),
        "max_rel_diff": max_rel_diff,
        "machine": machine_info(),
    }
