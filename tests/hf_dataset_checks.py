"""Checks of a `table` source that is a Hugging Face dataset folder (save_to_disk), run in their own process
by tests/test_data_hf_dataset.py (they load pyarrow, kept out of the test workers)."""

from __future__ import annotations

import numpy as np
import pytest

from alband.data.records import read_records
from alband.data.spec import load_dataset
from alband.errors import AlbandError

datasets = pytest.importorskip("datasets", reason="the datasets library (alband[hf]) is not installed")

TOPICS = {
    "sport": ["the striker scored twice in the final", "the team won the league on goal difference",
              "a record crowd watched the marathon", "the goalkeeper saved a late penalty"],
    "tech": ["the new chip doubles battery life", "a software update fixes the security flaw",
             "the startup released an open source compiler", "engineers tested the quantum processor"],
}


def _rows(repeat: int = 3):
    texts, labels = [], []
    for r in range(repeat):
        for topic, sentences in TOPICS.items():
            for s in sentences:
                texts.append(f"{s} (report {r})")
                labels.append(topic)
    return texts, labels


def test_saved_dataset_is_a_table_source(tmp_path):
    texts, labels = _rows()
    folder = tmp_path / "news"
    datasets.Dataset.from_dict({"text": texts, "label": labels, "id": [f"n{i}" for i in range(len(texts))]}) \
        .save_to_disk(str(folder))
    ds = load_dataset({"source": "table", "path": "news", "id_column": "id", "dims": 8, "test_fraction": 0.25},
                      base_dir=tmp_path, progress=False)
    assert sorted(ds.label_names) == ["sport", "tech"]
    assert len(ds.ids) == len(texts) and set(ds.ids) == {f"n{i}" for i in range(len(texts))}
    assert ds.x.shape == (len(texts), 8)
    by_id = dict(zip(ds.ids, ds.texts))
    assert by_id["n0"] == texts[0]
    assert np.asarray(ds.split == "test").any()


def test_dataset_dict_keeps_its_splits(tmp_path):
    texts, labels = _rows()
    half = len(texts) // 2
    order = np.random.default_rng(0).permutation(len(texts))
    train = {"text": [texts[i] for i in order[:half]], "label": [labels[i] for i in order[:half]]}
    test = {"text": [texts[i] for i in order[half:]], "label": [labels[i] for i in order[half:]]}
    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(train),
                          "test": datasets.Dataset.from_dict(test)}).save_to_disk(str(folder))
    records = read_records(folder)
    assert [r.fields["split"] for r in records] == ["train"] * half + ["test"] * (len(texts) - half)
    assert records[0].position == "row 1"
    ds = load_dataset({"source": "table", "path": str(folder), "split_column": "split", "dims": 8},
                      base_dir=tmp_path, progress=False)
    assert int(np.sum(ds.split == "train")) == half
    assert sorted(t for t, s in zip(ds.texts, ds.split) if s == "test") == sorted(test["text"])


def test_errors_name_the_folder_and_row(tmp_path):
    folder = tmp_path / "bad"
    datasets.Dataset.from_dict({"text": ["fine text", ""], "label": ["a", "b"]}).save_to_disk(str(folder))
    with pytest.raises(AlbandError, match=r"bad, row 2, column 'text': empty text"):
        load_dataset({"source": "table", "path": "bad"}, base_dir=tmp_path, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "state.json").write_text("{not json")
    with pytest.raises(AlbandError, match=r"broken: not a readable save_to_disk dataset"):
        read_records(broken)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(AlbandError, match="or a folder saved by datasets' save_to_disk"):
        read_records(plain)
