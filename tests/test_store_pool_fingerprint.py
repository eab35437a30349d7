"""The pool fingerprint names, in one line, how a pool differs from the one a run started with."""

from __future__ import annotations

import numpy as np
import pytest

from alband.errors import AlbandError
from alband.store.pool_fingerprint import pool_difference, pool_fingerprint

IDS = ["a", "b", "c", "d"]
TEXTS = ["alpha", "beta", "gamma", "delta"]
X = np.arange(8, dtype=np.float32).reshape(4, 2)


def _diff(ids, texts, x):
    return pool_difference(pool_fingerprint(IDS, TEXTS, X), IDS, pool_fingerprint(ids, texts, x), ids)


def test_the_same_pool_has_no_difference():
    assert _diff(list(IDS), list(TEXTS), X.copy()) is None


def test_each_kind_of_change_is_named():
    order = [2, 0, 1, 3]
    assert _diff([IDS[k] for k in order], [TEXTS[k] for k in order], X[order]) == (
        "the same ids in another order (row 0 was 'a', now 'c')")
    assert _diff(IDS[:3], TEXTS[:3], X[:3]) == "1 ids missing (first 'd')"
    assert _diff(IDS + ["e"], TEXTS + ["eps"], np.vstack([X, X[:1]])) == "1 ids added (first 'e')"
    assert _diff(IDS, ["alpha", "BETA", "gamma", "delta"], X) == "texts changed for the same ids"
    moved = X.copy()
    moved[1, 0] += 1e-3
    assert _diff(IDS, TEXTS, moved) == "embeddings changed for the same ids"
    # Without the recorded ids (an old record), the change is still named.
    assert "another order" in pool_difference(pool_fingerprint(IDS, TEXTS, X), None,
                                              pool_fingerprint(IDS[::-1], TEXTS[::-1], X[::-1]), IDS[::-1])


def test_duplicate_ids_are_refused():
    with pytest.raises(AlbandError, match="rows 1 and 3 share the id 'b'"):
        pool_fingerprint(["a", "b", "c", "b"], None, X)
