"""A user's own texts and labels in a CSV, TSV or JSONL table.

One row per item: a text column and a label column (class names or class
indices; an empty cell is an unlabeled pool row), optionally an id column
(default: the row number, ``"0"``, ``"1"``, ...) and a split column
(``train``/``test``; default: :func:`alband.data.split.stratified_split`).
Texts are embedded by TF-IDF + SVD (:func:`alband.data.embed.embed_texts`,
the default) or by the all-MiniLM-L6-v2 sentence encoder
(``embedder="minilm"``, :mod:`alband.data.minilm`).

Every error names the file, the line and the column at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alband.data.dataset import SPLITS, TRAIN, Dataset, check_unique_ids, validate_dataset
from alband.data.embedders import DEFAULT_EMBEDDER, check_embedder, describe_embedder, embed_with
from alband.data.labels import encode_labels
from alband.data.records import Record, read_records
from alband.data.split import stratified_split, subsample_pool
from alband.errors import AlbandError


def read_split_column(records: Sequence[Record], column: str, *, file: Path) -> np.ndarray:
    """``"train"``/``"test"`` per record (case and surrounding spaces ignored)."""
    split = []
    for record in records:
        value = record.get(column, file=file)
        word = value.strip().lower() if isinstance(value, str) else value
        if word not in SPLITS:
            raise AlbandError(
                f"{file}, {record.position}, column {column!r}: split {value!r} is neither 'train' nor 'test'"
            )
        split.append(word)
    return np.asarray(split, dtype="<U5")


def read_id_column(records: Sequence[Record], column: str, *, file: Path) -> list[str]:
    ids = []
    for record in records:
        value = record.get(column, file=file)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise AlbandError(f"{file}, {record.position}, column {column!r}: empty or invalid id {value!r}")
        ids.append(str(value).strip())
    check_unique_ids(ids, file=str(file), positions=[f"{r.position}" for r in records])
    return ids


def load_table(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = None,
    split_column: str | None = None,
    label_names: Sequence[str] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    *,
    dims: int | None = None,
    max_train: int | None = None,
    embedder: str = DEFAULT_EMBEDDER,
    progress: bool | None = None,
) -> Dataset:
    """Load a ``.csv``/``.tsv``/``.jsonl`` table of texts and labels, embedded by ``embedder``.

    ``embedder``: ``"tfidf"`` (TF-IDF + SVD, ``dims`` columns, default 128)
    or ``"minilm"`` (all-MiniLM-L6-v2, 384 columns, ``dims`` not allowed);
    ``progress`` shows or hides the encoder's progress bar (``None``: on a terminal).

    ``seed`` draws the split (when there is no ``split_column``), the
    ``max_train`` pool subsample and the SVD.
    """
    path = Path(path)
    file = str(path)
    try:
        check_embedder(embedder, dims)
    except AlbandError as e:
        raise AlbandError(f"{file}: {e}") from None
    records = read_records(path)
    positions = [f"{r.position}" for r in records]

    texts = []
    for record in records:
        text = record.get(text_column, file=path)
        if not isinstance(text, str):
            raise AlbandError(
                f"{file}, {record.position}, column {text_column!r}: text must be a string, got {text!r}"
            )
        if not text.strip():
            raise AlbandError(f"{file}, {record.position}, column {text_column!r}: empty text")
        texts.append(text)

    raw_labels = [r.get(label_column, file=path) for r in records]
    y, names = encode_labels(raw_labels, positions, file=file, column=label_column, label_names=label_names)
    ids = read_id_column(records, id_column, file=path) if id_column else [str(i) for i in range(len(records))]

    if split_column:
        split = read_split_column(records, split_column, file=path)
        unlabeled_test = np.flatnonzero((split != TRAIN) & (y < 0))
        if unlabeled_test.size:
            r = records[int(unlabeled_test[0])]
            raise AlbandError(
                f"{file}, {r.position}, column {label_column!r}: a test row needs a gold label "
                f"({unlabeled_test.size} unlabeled test rows)"
            )
    else:
        split = stratified_split(y, test_fraction, seed)
    if not np.any(split == TRAIN):
        raise AlbandError(f"{file}: the pool is empty: none of the {len(records)} rows is a 'train' row")

    keep = subsample_pool(split, max_train, seed)
    texts = [texts[i] for i in keep.tolist()]
    try:
        x = embed_with(embedder, texts, dims=dims, seed=seed, progress=progress)
    except AlbandError as e:
        raise AlbandError(f"{file}, column {text_column!r}: {e}") from None
    ds = Dataset(
        ids=np.asarray(ids)[keep],
        texts=texts,
        x=x,
        y=y[keep],
        label_names=names,
        split=split[keep],
        name=path.stem,
        source=file,
        files={"texts": file, "labels": file, "ids": file, "split": file,
               "embeddings": f"{describe_embedder(embedder, dims)} embedding of {file}"},
    )
    return validate_dataset(ds)
