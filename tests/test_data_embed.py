"""TF-IDF + SVD embedder: shape, norms, determinism, cache hits and corrupted caches."""

from __future__ import annotations

import numpy as np
import pytest

from alband.data import embed
from alband.data.embed import cache_path, embed_texts
from alband.errors import AlbandError

TEXTS = [
    "the striker scored a late goal in the cup final",
    "the goalkeeper saved a penalty and the team won the league",
    "the coach praised the midfield after the match",
    "shares fell as the bank reported lower quarterly profits",
    "the central bank raised interest rates to curb inflation",
    "investors sold shares after the profit warning",
    "the new phone has a faster chip and a better camera",
    "the software update fixes a security flaw in the browser",
    "the chip maker unveiled a faster processor for laptops",
]


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_shape_dtype_unit_rows_and_determinism():
    x = embed_texts(TEXTS, dims=4, seed=0, cache=False)
    assert x.shape == (len(TEXTS), 4) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(x, embed_texts(TEXTS, dims=4, seed=0, cache=False))


def test_embedding_separates_topics():
    x = embed_texts(TEXTS, dims=6, seed=0, cache=False)
    sim = x @ x.T
    topic = np.repeat(np.arange(3), 3)
    same = sim[(topic[:, None] == topic[None, :]) & ~np.eye(9, dtype=bool)].mean()
    other = sim[topic[:, None] != topic[None, :]].mean()
    assert same > other + 0.2


def test_rank_deficient_corpus_pads_with_zero_columns():
    x = embed_texts(TEXTS[:3], dims=16, seed=0, cache=False)
    assert x.shape == (3, 16)
    assert np.all(x[:, 2:] == 0)  # 3 texts span at most 2 SVD components here
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)


def test_cache_file_written_and_hit(cache_in_tmp, monkeypatch):
    first = embed_texts(TEXTS, dims=4, seed=0)
    path = cache_path(TEXTS, 4, 0)
    assert path.is_file() and path.is_relative_to(cache_in_tmp)
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temporary file

    def no_refit(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(embed, "_fit_tfidf_svd", no_refit)
    np.testing.assert_array_equal(embed_texts(TEXTS, dims=4, seed=0), first)


def test_cache_key_depends_on_texts_dims_and_seed():
    base = cache_path(TEXTS, 4, 0)
    assert len({base, cache_path(TEXTS, 5, 0), cache_path(TEXTS, 4, 1), cache_path(TEXTS[::-1], 4, 0),
                cache_path(["a b", "c"], 4, 0), cache_path(["a", "b c"], 4, 0)}) == 6
    assert cache_path(list(TEXTS), 4, 0) == base


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(b"not a numpy file at all"),  # garbage
        lambda p: np.save(p, np.zeros((2, 2), np.float32)),  # wrong shape
        lambda p: np.save(p, np.full((len(TEXTS), 4), np.nan, np.float32)),  # not finite
    ],
)
def test_corrupted_cache_is_recomputed(damage):
    first = embed_texts(TEXTS, dims=4, seed=0)
    path = cache_path(TEXTS, 4, 0)
    damage(path)
    again = embed_texts(TEXTS, dims=4, seed=0)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(np.load(path), first)  # and the cache is repaired


def test_unwritable_cache_warns_but_embeds(tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(blocker))
    with pytest.warns(RuntimeWarning, match="could not write the embedding cache"):
        x = embed_texts(TEXTS, dims=4, seed=0)
    assert x.shape == (len(TEXTS), 4)


def test_bad_arguments():
    with pytest.raises(AlbandError, match="dims"):
        embed_texts(TEXTS, dims=0)
    with pytest.raises(AlbandError, match="empty list"):
        embed_texts([])
    with pytest.raises(AlbandError, match="no words besides English stop words"):
        embed_texts(["the and of", "a the"], dims=2, cache=False)
