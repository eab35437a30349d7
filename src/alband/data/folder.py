"""The shared dataset format: a folder of rows, class names and precomputed embeddings.

::

    <folder>/data.jsonl          {"id", "split", "text", "label", "label_name", ...} a line
    <folder>/labels.json         {"0": "ABBR", "1": "DESC", ...}
    <folder>/emb_minilm.npy      float32 (rows, d), row i embeds the i-th id of
    <folder>/emb_minilm_ids.txt  one id per line

Rows come in ``data.jsonl`` order; embedding rows are matched to them by id
(every id must be in both files). ``label`` may be an index or a name; a
``label_name`` must agree with ``labels.json``. A ``null`` label marks an
unlabeled pool row. Embeddings are memory-mapped and only the rows kept are
read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alband.data.dataset import Dataset, check_label_names, check_unique_ids, quote_list
from alband.data.labels import encode_labels
from alband.data.npy import align_ids, dataset_from_embedding_rows, open_npy, read_ids_for
from alband.data.records import read_records, read_text
from alband.data.table import read_split_column
from alband.errors import AlbandError

DATA_FILE = "data.jsonl"
LABELS_FILE = "labels.json"


def read_label_names(path: Path) -> tuple[str, ...]:
    """``labels.json``: an object mapping ``"0".."C-1"`` to class names (or a list of names)."""
    try:
        obj = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise AlbandError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(obj, list):
        return check_label_names(obj, where=str(path))
    if not isinstance(obj, dict):
        raise AlbandError(f"{path}: expected an object mapping class index to name, got {type(obj).__name__}")
    try:
        by_index = {int(k): v for k, v in obj.items()}
    except ValueError:
        raise AlbandError(f"{path}: keys must be class indices 0, 1, ..., got {list(obj)}") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise AlbandError(f"{path}: keys must be the class indices 0..{len(by_index) - 1}, got {sorted(by_index)}")
    return check_label_names([by_index[k] for k in range(len(by_index))], where=str(path))


def load_embedded_folder(
    path: str | Path,
    embeddings: str = "emb_minilm.npy",
    ids: str = "emb_minilm_ids.txt",
    *,
    max_train: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a folder in the shared format; ``max_train`` subsamples the pool with ``seed``."""
    folder = Path(path)
    if not folder.is_dir():
        raise AlbandError(f"{folder}: not a folder" if folder.exists() else f"{folder}: folder not found")
    data_path, labels_path = folder / DATA_FILE, folder / LABELS_FILE
    emb_path, ids_path = folder / embeddings, folder / ids
    data_file = str(data_path)

    names = read_label_names(labels_path)
    records = read_records(data_path)
    positions = [f"{r.position}" for r in records]

    row_ids = []
    texts = []
    for r in records:
        item_id = r.get("id", file=data_path)
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or not str(item_id).strip():
            raise AlbandError(f"{data_path}, {r.position}, field 'id': empty or invalid id {item_id!r}")
        row_ids.append(str(item_id))
        text = r.get("text", file=data_path)
        if not isinstance(text, str) or not text.strip():
            raise AlbandError(f"{data_path}, {r.position}, field 'text': empty text")
        texts.append(text)
    check_unique_ids(row_ids, file=data_file, positions=positions)

    raw_labels = [r.get("label", file=data_path) for r in records]
    y, _ = encode_labels(raw_labels, positions, file=data_file, column="label", label_names=names)
    for i, r in enumerate(records):
        given = r.get("label_name", file=data_path, required=False)
        if given is not None and y[i] >= 0 and given != names[y[i]]:
            raise AlbandError(
                f"{data_path}, {r.position}: label {raw_labels[i]!r} is class {names[y[i]]!r} in "
                f"{labels_path.name}, but label_name says {given!r}"
            )
    split = read_split_column(records, "split", file=data_path)
    bad = np.flatnonzero((split != "train") & (y < 0))
    if bad.size:
        raise AlbandError(f"{data_path}, {positions[int(bad[0])]}, field 'label': a test row needs a gold label")

    matrix = open_npy(emb_path)
    emb_ids = read_ids_for(matrix, ids_path, emb_path)
    file_rows, not_embedded, no_row = align_ids(row_ids, emb_ids)
    if not_embedded:
        raise AlbandError(
            f"{ids_path}: {len(not_embedded)} ids of {DATA_FILE} have no embedding: {quote_list(not_embedded)}"
        )
    if no_row:
        raise AlbandError(f"{ids_path}: {len(no_row)} ids are not in {DATA_FILE}: {quote_list(no_row)}")

    return dataset_from_embedding_rows(
        matrix, emb_ids, file_rows, embeddings_path=emb_path, ids=row_ids, texts=texts, y=y, split=split,
        label_names=names, max_train=max_train, seed=seed, name=folder.name, source=str(folder),
        files={"embeddings": str(emb_path), "ids": str(ids_path), "labels": data_file,
               "split": data_file, "texts": data_file},
    )
