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
    assert out["machine"]["cores"] >= 1


def test_bench_preference_rejects_bad_sizes():
    with pytest.raises(AlbandError):
        bench_preference(n_score=5, n_design=5, batch=10)
