"""Deterministic train/test splits and pool subsampling.

:func:`stratified_split` holds out ``round(f * n_c)`` rows of every class
``c`` (half rounds up), chosen uniformly at random with ``seed``, so the
class proportions of the test set match the data's to within one row per
class. A class keeps at least one row in the pool. Unlabeled rows (``-1``)
always stay in the pool: they cannot be evaluated on.

:func:`subsample_pool` keeps ``max_train`` pool rows chosen uniformly at
random (an independent stream of the same ``seed``); test rows are kept.
Both return rows in their original order.
"""

from __future__ import annotations

import math

import numpy as np

from alband.data.dataset import TEST, TRAIN, UNLABELED
from alband.errors import AlbandError


def check_test_fraction(test_fraction: float, *, where: str = "test_fraction") -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
        math.isfinite(test_fraction) and 0.0 <= test_fraction < 1.0
    ):
        raise AlbandError(f"{where}: test_fraction must be a number in [0, 1), got {test_fraction!r}")
    return float(test_fraction)


def check_seed(seed: int, *, where: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AlbandError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """``"train"``/``"test"`` per row, stratified by label; ``-1`` rows stay in train."""
    test_fraction = check_test_fraction(test_fraction)
    seed = check_seed(seed)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    split = np.full(y.shape[0], TRAIN, dtype="<U5")
    for label in np.unique(y[y != UNLABELED]):  # a loop over classes, not items
        members = np.flatnonzero(y == label)
        n_test = min(int(math.floor(test_fraction * members.size + 0.5)), members.size - 1)
        split[rng.permutation(members)[:n_test]] = TEST
    return split


def subsample_pool(split: np.ndarray, max_train: int | None, seed: int) -> np.ndarray:
    """Sorted indices of the rows to keep: all test rows and ``max_train`` pool rows."""
    split = np.asarray(split)
    if max_train is None:
        return np.arange(split.shape[0])
    if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1:
        raise AlbandError(f"max_train must be an integer >= 1, got {max_train!r}")
    seed = check_seed(seed)
    pool = np.flatnonzero(split == TRAIN)
    if pool.size <= max_train:
        return np.arange(split.shape[0])
    rng = np.random.default_rng([seed, 1])  # independent of the split's stream
    kept_pool = rng.choice(pool, size=int(max_train), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(split != TRAIN), kept_pool]))
