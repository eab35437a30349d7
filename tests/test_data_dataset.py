"""Dataset invariants, validate_dataset messages, splits and label encoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.data import Dataset, describe, stratified_split, subsample_pool, validate_dataset
from alband.data.labels import encode_labels
from alband.errors import AlbandError


def make_dataset(n: int = 6, d: int = 3, **changes) -> Dataset:
    rng = np.random.default_rng(0)
    ds = Dataset(
        ids=np.asarray([f"item-{i}" for i in range(n)]),
        texts=[f"text {i}" for i in range(n)],
        x=rng.normal(size=(n, d)).astype(np.float32),
        y=(np.arange(n) % 2).astype(np.int32),
        label_names=("neg", "pos"),
        split=np.asarray(["train"] * (n - 2) + ["test"] * 2),
        name="toy",
        source="toy source",
        files={"embeddings": "emb.npy", "ids": "ids.txt", "labels": "labels.csv", "split": "labels.csv"},
    )
    return dataclasses.replace(ds, **changes)


def test_valid_dataset_passes_and_views_partition_rows():
    ds = validate_dataset(make_dataset())
    assert ds.n_classes == 2 and ds.dim == 3 and len(ds) == 6
    train, test = ds.train(), ds.test()
    assert ds.n_train == len(train) == 4 and ds.n_test == len(test) == 2
    assert set(train.ids) | set(test.ids) == set(ds.ids)
    x_tr, y_tr, x_te, y_te, ids_tr, texts_tr = ds.split_arrays()
    np.testing.assert_array_equal(x_tr, ds.x[:4])
    np.testing.assert_array_equal(y_te, ds.y[4:])
    assert list(ids_tr) == [f"item-{i}" for i in range(4)] and texts_tr == [f"text {i}" for i in range(4)]
    assert x_tr.dtype == np.float32


def test_describe_is_one_line_with_the_counts():
    line = describe(make_dataset(y=np.asarray([-1, 0, 1, 0, 0, 1], dtype=np.int32)))
    assert "\n" not in line
    assert "6 items" in line and "4 pool (1 unlabeled)" in line and "2 test" in line
    assert "2 classes (neg, pos)" in line and "3-d" in line


def test_nan_embedding_names_file_row_and_id():
    x = make_dataset().x.copy()
    x[3, 1] = np.nan
    with pytest.raises(AlbandError, match=r"emb\.npy, row 3 \(id 'item-3'\): embedding contains NaN"):
        validate_dataset(make_dataset(x=x))


def test_infinite_embedding_names_file_row_and_id():
    x = make_dataset().x.copy()
    x[5, 0] = -np.inf
    with pytest.raises(AlbandError, match=r"emb\.npy, row 5 \(id 'item-5'\): embedding contains an infinite"):
        validate_dataset(make_dataset(x=x))


@pytest.mark.parametrize("shape", [(6,), (6, 3, 1)])
def test_non_2d_embeddings(shape):
    with pytest.raises(AlbandError, match=r"emb\.npy: embeddings must be a 2-D array.*" + str(shape[0])):
        validate_dataset(make_dataset(x=np.zeros(shape, dtype=np.float32)))


def test_mismatched_lengths_name_every_file():
    ds = make_dataset(y=np.zeros(5, dtype=np.int32))
    with pytest.raises(AlbandError, match="mismatched lengths") as info:
        validate_dataset(ds)
    message = str(info.value)
    assert "embeddings (emb.npy): 6" in message and "labels (labels.csv): 5" in message
    assert "ids (ids.txt): 6" in message


def test_unknown_label_names_file_row_and_label():
    y = np.asarray([0, 1, 0, 7, 0, 1], dtype=np.int32)
    with pytest.raises(AlbandError, match=r"labels\.csv, row 3 \(id 'item-3'\): label 7 is not in the label set"):
        validate_dataset(make_dataset(y=y))


def test_duplicate_ids_name_the_id_and_both_rows():
    ids = np.asarray(["a", "b", "c", "b", "d", "e"])
    with pytest.raises(AlbandError, match=r"ids\.txt: duplicate id 'b' at row 1 and row 3"):
        validate_dataset(make_dataset(ids=ids))


def test_empty_pool():
    with pytest.raises(AlbandError, match="pool is empty"):
        validate_dataset(make_dataset(split=np.asarray(["test"] * 6)))


def test_unlabeled_test_row_and_bad_split_value():
    with pytest.raises(AlbandError, match=r"row 5 \(id 'item-5'\): a test row needs a gold label"):
        validate_dataset(make_dataset(y=np.asarray([0, 1, 0, 1, 0, -1], dtype=np.int32)))
    with pytest.raises(AlbandError, match=r"row 0 \(id 'item-0'\): split 'dev'"):
        validate_dataset(make_dataset(split=np.asarray(["dev"] + ["train"] * 5)))


def test_float64_embeddings_and_single_class_are_rejected():
    with pytest.raises(AlbandError, match="float32"):
        validate_dataset(make_dataset(x=make_dataset().x.astype(np.float64)))
    with pytest.raises(AlbandError, match="at least 2 classes"):
        validate_dataset(make_dataset(label_names=("only",), y=np.zeros(6, dtype=np.int32)))


# -- splits ---------------------------------------------------------------
labels_strategy = st.lists(st.integers(-1, 4), min_size=1, max_size=200).map(lambda v: np.asarray(v, np.int32))


@settings(max_examples=60, deadline=None)
@given(y=labels_strategy, fraction=st.floats(0.0, 0.9), seed=st.integers(0, 2**31))
def test_stratified_split_properties(y, fraction, seed):
    split = stratified_split(y, fraction, seed)
    np.testing.assert_array_equal(split, stratified_split(y, fraction, seed))  # deterministic
    assert set(split.tolist()) <= {"train", "test"}
    assert np.all(split[y == -1] == "train")
    for c in np.unique(y[y >= 0]):
        members = y == c
        n_test = int(np.sum(split[members] == "test"))
        assert n_test == min(int(np.floor(fraction * members.sum() + 0.5)), members.sum() - 1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 100), max_train=st.integers(1, 120), seed=st.integers(0, 1000))
def test_subsample_pool_keeps_test_rows_and_max_train_pool_rows(n, max_train, seed):
    split = np.where(np.arange(n) % 4 == 0, "test", "train")
    keep = subsample_pool(split, max_train, seed)
    assert np.all(np.diff(keep) > 0)
    assert set(np.flatnonzero(split == "test")) <= set(keep.tolist())
    assert np.sum(split[keep] == "train") == min(max_train, np.sum(split == "train"))
    np.testing.assert_array_equal(keep, subsample_pool(split, max_train, seed))


def test_split_argument_errors():
    with pytest.raises(AlbandError, match="test_fraction"):
        stratified_split(np.zeros(3, np.int32), 1.0, 0)
    with pytest.raises(AlbandError, match="max_train"):
        subsample_pool(np.asarray(["train"]), 0, 0)


# -- labels ---------------------------------------------------------------
def test_encode_labels_names_ints_and_unlabeled():
    pos = [f"line {i + 2}" for i in range(5)]
    y, names = encode_labels(["tech", "sport", "", None, " tech "], pos, file="f.csv", column="label")
    assert names == ("sport", "tech") and y.tolist() == [1, 0, -1, -1, 1]
    y, names = encode_labels(["2", 0, "1", 1, ""], pos, file="f.csv", column="label")
    assert names == ("0", "1", "2") and y.tolist() == [2, 0, 1, 1, -1]
    y, names = encode_labels(["b", 0, "", "a", "1"], pos, file="f.csv", column="label", label_names=["a", "b"])
    assert names == ("a", "b") and y.tolist() == [1, 0, -1, 0, 1]


def test_encode_labels_unknown_label_message():
    pos = ["line 2", "line 3", "line 4"]
    with pytest.raises(AlbandError, match=r"f\.csv, line 4, column 'topic': label 'sprots' is not in the label set"):
        encode_labels(["tech", "sport", "sprots"], pos, file="f.csv", column="topic", label_names=["sport", "tech"])
    with pytest.raises(AlbandError, match=r"line 3, column 'topic': label 5 is not in the label set"):
        encode_labels(["tech", 5, "sport"], pos, file="f.csv", column="topic", label_names=["sport", "tech"])
    with pytest.raises(AlbandError, match=r"line 3, column 'topic': label '-2' is negative"):
        encode_labels(["0", "-2", "1"], pos, file="f.csv", column="topic")
    with pytest.raises(AlbandError, match="give label_names"):
        encode_labels(["", None, ""], pos, file="f.csv", column="topic")


def test_inferred_labels_refuse_probable_typos():
    from alband.data.labels import SINGLETON_OUTLIER_ROWS

    n = SINGLETON_OUTLIER_ROWS
    values = ["sport"] * n + ["tech"] * 3 + ["sprot"]
    pos = [f"line {i + 2}" for i in range(len(values))]
    with pytest.raises(AlbandError, match=rf"line {n + 5}, column 'topic': label 'sprot' occurs in this row only, "
                                          rf"while class 'sport' has {n} rows: a typo\? did you mean 'sport'"):
        encode_labels(values, pos, file="f.csv", column="topic")
    # Listed in label_names, the rare class is accepted as it is.
    y, names = encode_labels(values, pos, file="f.csv", column="topic", label_names=["sport", "tech", "sprot"])
    assert names == ("sport", "tech", "sprot") and y[-1] == 2
    # One row short of the threshold, a lone label is a small table's class, not an outlier.
    y, names = encode_labels(values[1:], pos[1:], file="f.csv", column="topic")
    assert names == ("sport", "sprot", "tech")
    # Integer labels: a lone 11 among 0s and 1s is refused the same way.
    ints = [0] * n + [1] * 3 + [11]
    with pytest.raises(AlbandError, match=r"label 11 occurs in this row only"):
        encode_labels(ints, pos, file="f.csv", column="topic")
    # The same class written two ways is refused whatever the counts; the commoner spelling is named.
    with pytest.raises(AlbandError, match=r"line 3, column 'topic': label 'Tech\.' differs from label 'tech' "
                                          r"\(2 rows\) only in case, spaces or punctuation"):
        encode_labels(["tech", "Tech.", "tech", "sport"], pos[:4], file="f.csv", column="topic")
