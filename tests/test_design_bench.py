"""The design benchmark returns JSON-able timings, gaps and machine info."""

from __future__ import annotations

import json

import pytest

from alband.benchmarks.design import bench_design, design_pool
from alband.errors import AlbandError


def test_bench_design_small_with_cvxpy():
    out = bench_design(200, 4, repeats=2, seed=1)
    json.dumps(out)  # JSON-able
    assert out["n"] == 200 and out["d"] == 4
    assert out["fw_seconds"] > 0 and out["fw_compile_seconds"] >= 0
    assert out["certified"] and out["max_leverage_over_d"] <= 1.001 + 1e-6
    assert out["cvxpy_seconds"] > 0
    assert abs(out["rel_gap"]) < 1e-3
    assert out["machine"]["cores"] >= 1 and out["machine"]["jax"]


def test_bench_design_skips_cvxpy_on_large_problems():
    out = bench_design(300, 4, repeats=1, cvxpy_max_work=100)
    assert out["cvxpy_seconds"] is None and out["rel_gap"] is None
    assert "n*d^2" in out["cvxpy_skipped_reason"]
    assert bench_design(300, 4, repeats=1, with_cvxpy=False)["cvxpy_skipped_reason"] == "with_cvxpy=False"


def test_bench_design_scores_both_designs_at_the_same_certificate():
    out = bench_design(300, 5, repeats=1, seed=2)
    assert out["cvxpy_timed_out"] is False and out["cvxpy_iterations"] > 0
    assert out["same_certificate"] is True
    assert out["max_leverage_over_d"] <= 1.001 + 1e-6 and out["cvxpy_max_leverage_over_d"] <= 1.001 + 1e-6
    assert out["fw_log_det_float64"] == pytest.approx(out["fw_log_det"], abs=1e-3)
    assert out["speedup"] == pytest.approx(out["cvxpy_seconds"] / out["fw_seconds"])
    assert out["speedup_vs_cvxpy_lower_bound"] is None


def test_a_cvxpy_timeout_gives_a_lower_bound_on_the_speedup():
    out = bench_design(300, 4, repeats=1, cvxpy_timeout_seconds=0.05)  # the child cannot even import in 50 ms
    json.dumps(out)
    assert out["cvxpy_timed_out"] is True and out["cvxpy_seconds"] is None and out["rel_gap"] is None
    assert out["speedup_vs_cvxpy_lower_bound"] == pytest.approx(0.05 / out["fw_seconds"])
    assert out["speedup"] is None


def test_bench_pool_has_five_percent_outliers():
    X = design_pool(1000, 8, 0)
    norms = (X**2).sum(axis=1)
    assert norms[:50].mean() > 4 * norms[50:].mean()


def test_bench_rejects_bad_sizes():
    with pytest.raises(AlbandError, match="n must be an integer"):
        bench_design(0, 4)
    with pytest.raises(AlbandError, match="at least d"):
        bench_design(3, 4)
    with pytest.raises(AlbandError, match="cvxpy_timeout_seconds"):
        bench_design(10, 2, cvxpy_timeout_seconds=0)
