"""Confidence intervals for alband's tables: the one place every report, study and the demo gets them.

Three intervals, all from :mod:`scipy.stats`:

* **Student-t** (:func:`mean_interval`, :func:`paired_interval`): for ``n``
  values with mean ``m`` and sample standard deviation ``s``, the level-``1 - a``
  interval is ``m +- t_{1 - a/2, n-1} s / sqrt(n)``. With seeds paired (the same
  seed runs both policies, so their curves share the seed set and the first
  labels), the interval is the t interval of the per-seed *differences*: the
  seed-to-seed variation that both arms share cancels. Exact for normal
  differences; with 5 seeds ``t_{0.975, 4} = 2.776``, 1.42 times the normal
  quantile 1.96, which is why a normal quantile on few seeds is never used here.
* **BCa bootstrap** (:func:`bootstrap_interval`; Efron 1987): the
  bias-corrected and accelerated percentile interval of any statistic (the
  median, a ratio of means), from ``n_resamples`` resamples with a fixed seed,
  so a table is reproducible. It corrects the percentile interval for bias
  (``z0``) and skew (acceleration ``a``, from the jackknife). It needs a
  handful of distinct values; with fewer than 3 non-missing values, or all
  values equal, the interval is the point itself (a degenerate sample has no
  spread to resample).
* **Wilson score** (:func:`wilson_interval`; Wilson 1927): for ``k`` successes
  in ``n`` trials, the interval for a proportion that stays inside [0, 1] and
  keeps its coverage near 0 and 1, where the normal (Wald) interval collapses.

Missing values (NaN) are dropped -- pairwise for paired intervals. An interval
from fewer than 2 values is NaN on both ends (Student-t) and says so through
``n``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from scipy import stats as _stats

from alband.errors import AlbandError

DEFAULT_LEVEL = 0.95


class Interval(NamedTuple):
    """An estimate and its confidence interval ``[low, high]`` from ``n`` values."""

    estimate: float
    low: float
    high: float
    n: int
    level: float
    method: str  # "t", "bca", "wilson"

    @property
    def half_width(self) -> float:
        """Half the interval's width (the ``+-`` of a symmetric interval)."""
        return (self.high - self.low) / 2.0

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (a difference "beyond its interval")."""
        return bool(self.low > value or self.high < value)

    def to_dict(self) -> dict:
        """JSON form: estimate, low, high, n, level, method."""
        return {"estimate": _json_float(self.estimate), "low": _json_float(self.low),
                "high": _json_float(self.high), "n": self.n, "level": self.level, "method": self.method}

    def format(self, digits: int = 3) -> str:
        """``estimate [low, high]`` with ``digits`` decimals."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise AlbandError(f"confidence level must be in (0, 1), got {level}")
    return float(level)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, np.float64).ravel()
    return values[~np.isnan(values)]


def t_quantile(n: int, level: float = DEFAULT_LEVEL) -> float:
    """``t_{(1 + level)/2, n-1}``: the two-sided Student-t multiplier for ``n`` values (NaN for ``n < 2``)."""
    level = _check_level(level)
    if n < 2:
        return float("nan")
    return float(_stats.t.ppf(0.5 + level / 2.0, n - 1))


def mean_interval(values, level: float = DEFAULT_LEVEL) -> Interval:
    """Mean of ``values`` and its Student-t interval (module docstring); NaNs dropped."""
    level = _check_level(level)
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level, "t")
    mean = float(np.mean(x))
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n, level, "t")
    half = t_quantile(n, level) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level, "t")


def paired_differences(a, b) -> np.ndarray:
    """``a - b`` per pair, dropping pairs where either is NaN (``a`` and ``b`` share their seed order)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise AlbandError(f"paired values need the same number of seeds, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def paired_interval(a, b, level: float = DEFAULT_LEVEL, method: str = "t", *, n_resamples: int = 9999,
                    seed: int = 0) -> Interval:
    """Mean of ``a - b`` over paired seeds and its interval: Student-t (``"t"``) or BCa bootstrap (``"bca"``)."""
    diff = paired_differences(a, b)
    if method == "t":
        return mean_interval(diff, level)
    if method == "bca":
        return bootstrap_interval(diff, np.mean, level, n_resamples=n_resamples, seed=seed)
    raise AlbandError(f"interval method must be 't' or 'bca', got {method!r}")


#: Values the bootstrap holds in memory at once (resamples x n), about 40 MB of float64.
_BATCH_VALUES = 5_000_000

#: Statistics that take ``axis`` themselves (the bootstrap calls them once on all resamples).
_VECTORIZED = (np.mean, np.median, np.nanmean, np.nanmedian)


def bootstrap_interval(values, statistic: Callable[[np.ndarray], float] = np.median, level: float = DEFAULT_LEVEL,
                       *, n_resamples: int = 9999, seed: int = 0) -> Interval:
    """``statistic(values)`` and its BCa bootstrap interval (module docstring); NaNs dropped.

    ``statistic`` maps a 1-d array to a number (``np.mean``, ``np.median``, ...).
    """
    level = _check_level(level)
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level, "bca")
    estimate = float(statistic(x))
    if n < 3 or np.all(x == x[0]):
        return Interval(estimate, estimate, estimate, n, level, "bca")
    if statistic in _VECTORIZED:  # numpy's own axis argument: one call for every resample
        batched = statistic
    else:
        def batched(sample, axis=-1):
            return np.apply_along_axis(statistic, axis, sample)
    result = _stats.bootstrap(
        (x,), batched, confidence_level=level,
        n_resamples=int(n_resamples), method="BCa", random_state=np.random.default_rng(seed), vectorized=True,
        batch=max(1, _BATCH_VALUES // n),  # resamples (and jackknife rows) per call: bounded memory for large n
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined (e.g. a statistic with no spread)
        low, high = (float(v) for v in np.quantile(
            np.apply_along_axis(statistic, 1, np.random.default_rng(seed).choice(x, (int(n_resamples), n))),
            [0.5 - level / 2.0, 0.5 + level / 2.0]))
    return Interval(estimate, low, high, n, level, "bca")


def wilson_interval(successes: int, trials: int, level: float = DEFAULT_LEVEL) -> Interval:
    """Share ``successes / trials`` and its Wilson score interval (module docstring)."""
    level = _check_level(level)
    successes, trials = int(successes), int(trials)
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise AlbandError(f"a proportion needs 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, level, "wilson")
    ci = _stats.binomtest(successes, trials).proportion_ci(confidence_level=level, method="wilson")
    return Interval(successes / trials, float(ci.low), float(ci.high), trials, level, "wilson")
