"""alband.stats: intervals against closed forms written out here, and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.errors import AlbandError
from alband.stats import (
    bootstrap_interval,
    mean_interval,
    paired_interval,
    t_quantile,
    wilson_interval,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def test_t_quantile_matches_tables():
    # Printed Student-t tables, two-sided 95%: df = 4 -> 2.776, df = 19 -> 2.093, df = 1 -> 12.706.
    assert t_quantile(5) == pytest.approx(2.776, abs=5e-4)
    assert t_quantile(20) == pytest.approx(2.093, abs=5e-4)
    assert t_quantile(2) == pytest.approx(12.706, abs=5e-4)
    assert math.isnan(t_quantile(1))


def test_mean_interval_by_hand():
    x = np.array([0.81, 0.84, 0.79, 0.90, 0.86])
    mean, sd = x.mean(), x.std(ddof=1)
    half = 2.7764451051977987 * sd / math.sqrt(5)
    interval = mean_interval(x)
    assert interval.estimate == pytest.approx(mean)
    assert interval.low == pytest.approx(mean - half)
    assert interval.high == pytest.approx(mean + half)
    assert interval.n == 5 and interval.method == "t"


def test_nans_dropped_and_small_samples():
    interval = mean_interval([1.0, np.nan, 3.0])
    assert interval.n == 2 and interval.estimate == 2.0
    single = mean_interval([4.0])
    assert single.estimate == 4.0 and math.isnan(single.low) and single.n == 1
    assert mean_interval([]).n == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=2, max_size=30))
def test_paired_interval_ignores_what_both_arms_share(rows):
    a, b, shift = (np.array(col) for col in zip(*rows))
    plain = paired_interval(a, b)
    shifted = paired_interval(a + shift, b + shift)
    assert shifted.estimate == pytest.approx(plain.estimate, abs=1e-6)
    if math.isfinite(plain.low):
        assert shifted.half_width == pytest.approx(plain.half_width, rel=1e-6, abs=1e-6)
        assert plain.low <= plain.estimate <= plain.high


def test_paired_interval_drops_pairs_with_a_nan_and_checks_lengths():
    interval = paired_interval([1.0, 2.0, np.nan, 4.0], [0.5, np.nan, 1.0, 3.0])
    assert interval.n == 2 and interval.estimate == pytest.approx(0.75)
    with pytest.raises(AlbandError, match="same number of seeds"):
        paired_interval([1.0, 2.0], [1.0])
    with pytest.raises(AlbandError, match="'t' or 'bca'"):
        paired_interval([1.0, 2.0], [1.0, 2.0], method="normal")


def test_wilson_matches_closed_form():
    for k, n in [(0, 10), (3, 10), (10, 10), (47, 60), (1, 1000)]:
        z = 1.959963984540054
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        interval = wilson_interval(k, n)
        assert interval.low == pytest.approx(max(centre - half, 0.0), abs=1e-9)
        assert interval.high == pytest.approx(min(centre + half, 1.0), abs=1e-9)
        assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0
    with pytest.raises(AlbandError):
        wilson_interval(5, 3)


def test_bca_close_to_t_for_the_mean_of_a_normal_sample():
    x = np.random.default_rng(3).normal(1.0, 2.0, 400)
    t = mean_interval(x)
    bca = bootstrap_interval(x, np.mean, n_resamples=4000, seed=1)
    assert bca.estimate == pytest.approx(t.estimate)
    assert bca.low == pytest.approx(t.low, abs=0.05)
    assert bca.high == pytest.approx(t.high, abs=0.05)


def test_bca_is_seeded_and_handles_degenerate_samples():
    x = np.random.default_rng(0).exponential(1.0, 25)
    first = bootstrap_interval(x, np.median, n_resamples=2000, seed=7)
    again = bootstrap_interval(x, np.median, n_resamples=2000, seed=7)
    assert first == again
    assert first.low <= first.estimate <= first.high
    flat = bootstrap_interval([2.0, 2.0, 2.0, 2.0])
    assert (flat.low, flat.estimate, flat.high) == (2.0, 2.0, 2.0)


def test_bca_covers_the_mean_of_a_skewed_population():
    # Coverage check: for exponential samples of 30, the BCa interval of the mean holds the true mean
    # (1.0) in about 95% of 200 repetitions; the band allows for the repetitions' own binomial error.
    rng = np.random.default_rng(11)
    covered = 0
    for i in range(200):
        sample = rng.exponential(1.0, 30)
        interval = bootstrap_interval(sample, np.mean, n_resamples=999, seed=i)
        covered += interval.low <= 1.0 <= interval.high
    assert 0.88 <= covered / 200 <= 0.99


def test_interval_json_and_excludes():
    interval = mean_interval([0.1, 0.2, 0.3, 0.2, 0.25, 0.15])
    data = interval.to_dict()
    assert data["n"] == 6 and data["method"] == "t" and data["level"] == 0.95
    assert interval.excludes(0.0) and not interval.excludes(0.2)
    assert mean_interval([1.0]).to_dict()["low"] is None
    with pytest.raises(AlbandError, match="level"):
        mean_interval([1.0, 2.0], level=1.5)
