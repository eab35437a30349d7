"""The preference benchmark runs at small sizes and its JAX and numpy versions agree."""

from __future__ import annotations

import pytest

from alband.benchmarks.preference import bench_preference
from alband.errors import AlbandError


def test_bench_preference_small():
    out = bench_preference(n_score=4000, n_design=1500, n_prompts=200, d=16, batch=10, k=16, repeats=1)
    assert out["uncertainty"]["same_batch"]
    assert out["uncertainty"]["ratio"] > 0 and out["uncertainty"]["numpy_seconds"] > 0
    assert out["design"]["same_batch_share"] == 1.0
    assert out["double_ts"]["same_decisions_share"] == 1.0
    assert out["double_ts"]["decisions_per_second"] > 0
    # compilation is reported apart from the steady calls
    for section, key in (("uncertainty", "policy_compile_seconds"), ("design", "d_design_compile_seconds"),
                         ("design", "apo_compile_seconds"), ("double_ts", "compile_seconds")):
        assert out[section][key] > 0, (section, key)
    assert out["design"]["score_pass_seconds"] > 0 and out["design"]["gemm_pass_seconds"] > 0
    assert out["double_ts"]["normal_draws_seconds"] > 0 and out["double_ts"]["numpy_normal_draws_seconds"] > 0
    assert out["double_ts"]["numpy_one_thread_seconds"] > 0 and out["double_ts"]["numpy_from_noise_one_thread_seconds"] > 0
    assert out["machine"]["cores"] >= 1


def test_bench_preference_rejects_bad_sizes():
    with pytest.raises(AlbandError):
        bench_preference(n_score=5, n_design=5, batch=10)
