"""The acquisition benchmark: its fields, consistency of the ratios, peers reported as absent, bad input."""

from __future__ import annotations

import importlib.util
import json

import pytest

from alband.benchmarks.acquisition import TARGET_BATCH_SECONDS, bench_acquisition
from alband.errors import AlbandError


@pytest.fixture(scope="module")
def small_run():
    return bench_acquisition(3000, 16, repeats=2, batch=10, diversity_n=400, chunk_rows=512)


def test_fields_are_positive_medians(small_run):
    out = small_run
    for key in ("score_topk_seconds", "read_roof_seconds", "margin_topk_seconds", "streamed_score_topk_seconds",
                "badge_seconds", "coreset_seconds", "g_design_seconds", "go_seconds"):
        assert isinstance(out[key], float) and out[key] > 0, key
    assert len(out["score_topk_seconds_all"]) == 2
    assert min(out["score_topk_seconds_all"]) <= out["score_topk_seconds"] <= max(out["score_topk_seconds_all"])
    assert out["ratio"] == pytest.approx(out["score_topk_seconds"] / out["read_roof_seconds"])
    assert out["ratio_xla"] == pytest.approx(out["score_topk_xla_seconds"] / out["read_roof_seconds"])
    assert out["native_kernel"]["used"] is False  # 3,000 rows: below NATIVE_MIN_ROWS, XLA's product
    assert isinstance(out["native_kernel"]["available"], bool) and out["native_kernel"]["reason"]
    assert out["native_and_xla_same_batch"] is True
    assert (out["n"], out["d"], out["batch"], out["diversity_n"], out["diversity_labelled"]) == (3000, 16, 10, 400, 4)
    assert out["g_design_pca64_seconds"] is None  # d <= 64: nothing to project
    assert out["target_batch_seconds"] == TARGET_BATCH_SECONDS
    assert out["machine"]["cores"] >= 1 and out["machine"]["jax"]
    json.dumps(out)  # JSON-able for `alband bench acquisition --json`


def test_peers_are_null_when_not_installed(small_run):
    out = small_run
    if importlib.util.find_spec("modAL") is None:
        assert out["modal_margin_seconds"] is None and out["modal_margin_ratio"] is None
        assert "not installed" in out["peers_skipped"]["modAL"]
    if importlib.util.find_spec("skactiveml") is None:
        assert out["skactiveml_badge_seconds"] is None and out["skactiveml_badge_ratio"] is None
        assert out["skactiveml_margin_ratio"] is None and out["skactiveml_margin_overlap"] is None
        assert out["skactiveml_badge_distinct"] is None
        assert "not installed" in out["peers_skipped"]["scikit-activeml"]
    if importlib.util.find_spec("modAL") is None and importlib.util.find_spec("skactiveml") is None:
        assert out["peer_model_max_abs_diff"] is None


def test_bad_sizes_are_named():
    with pytest.raises(AlbandError, match="batch"):
        bench_acquisition(50, 4, batch=100)
    with pytest.raises(AlbandError, match="repeats"):
        bench_acquisition(50, 4, repeats=0)


def test_a_peer_is_timed_when_importable(monkeypatch):
    # A stand-in for modAL's margin_sampling (same signature), to exercise the guarded code path.
    import sys
    import types

    import numpy as np

    calls = []

    def margin_sampling(classifier, X, n_instances=1):
        part = np.partition(classifier.predict_proba(X), -2, axis=1)
        calls.append(X.shape)
        return np.argsort(part[:, -1] - part[:, -2])[:n_instances]

    package = types.ModuleType("modAL")
    module = types.ModuleType("modAL.uncertainty")
    module.margin_sampling = margin_sampling
    monkeypatch.setitem(sys.modules, "modAL", package)
    monkeypatch.setitem(sys.modules, "modAL.uncertainty", module)
    out = bench_acquisition(500, 8, repeats=1, batch=5, diversity_n=100)
    assert calls and calls[0] == (500, 8)
    assert out["modal_margin_seconds"] > 0
    assert out["modal_margin_ratio"] == pytest.approx(out["modal_margin_seconds"] / out["margin_topk_seconds"])
    assert "modAL" not in out["peers_skipped"]
    # The peer's model is ours (same W, b, softmax), so its margin batch is ours.
    assert out["peer_model_max_abs_diff"] < 1e-6
    assert out["modal_margin_overlap"] == 1.0
