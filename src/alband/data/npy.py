"""A user's own precomputed embeddings: a ``.npy`` matrix, its ids, a labels table.

* ``embeddings``: a ``.npy`` array of shape ``(n, d)``, any real dtype
  (returned as float32), row ``i`` embedding the item on line ``i + 1`` of
* ``ids``: a text file with one id per line;
* ``labels`` (optional): a CSV/TSV/JSONL table with an id column and a label
  column (class names or indices; an empty cell = unlabeled), optionally a
  split column and a text column. Every id of the ids file must have exactly
  one row there and vice versa. Without a labels table the whole pool is
  unlabeled (``label_names`` then says what the classes are).

The matrix is memory-mapped, so only the rows kept (see ``max_train``) are
read into memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alband.data.dataset import (
    TRAIN,
    UNLABELED,
    Dataset,
    quote_list,
    check_embedding_matrix,
    check_label_names,
    check_unique_ids,
    validate_dataset,
)
from alband.data.labels import encode_labels
from alband.data.records import read_id_lines, read_records
from alband.data.split import stratified_split, subsample_pool
from alband.data.table import read_id_column, read_split_column
from alband.errors import AlbandError


def open_npy(path: Path) -> np.ndarray:
    """The ``.npy`` file memory-mapped read-only, checked to be a 2-D real matrix."""
    if not path.is_file():
        raise AlbandError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise AlbandError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(x, np.ndarray):
        raise AlbandError(f"{path}: expected one array in .npy format, got {type(x).__name__}")
    if x.ndim != 2:
        raise AlbandError(f"{path}: embeddings must be a 2-D array (items x dimensions), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise AlbandError(f"{path}: embeddings must be real numbers, got dtype {x.dtype}")
    return x


def read_embedding_rows(matrix: np.ndarray, rows: np.ndarray, ids: Sequence[str], *, file: Path) -> np.ndarray:
    """``matrix[rows]`` as an in-memory float32 array, checked finite (errors name the file row and id)."""
    x = np.ascontiguousarray(matrix[rows], dtype=np.float32)
    check_embedding_matrix(x, file=str(file), ids=[ids[r] for r in rows.tolist()] if len(rows) else [],
                           file_rows=rows)
    return x


def align_ids(ids: Sequence[str], reference: Sequence[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Where each of ``ids`` stands in ``reference``, and the ids either list lacks.

    Returns ``(positions, not_in_reference, not_in_ids)``: ``positions[i]`` is
    the index of ``ids[i]`` in ``reference`` (-1 where it is absent); the two
    lists keep the order of ``ids`` and of ``reference``. With no duplicate
    in either input, they hold the same ids exactly when both lists are empty.
    """
    index_of = {item_id: k for k, item_id in enumerate(reference)}
    positions = np.fromiter((index_of.get(item_id, -1) for item_id in ids), np.int64, count=len(ids))
    not_in_reference = [ids[i] for i in np.flatnonzero(positions < 0).tolist()]
    in_ids = set(ids)
    not_in_ids = [item_id for item_id in reference if item_id not in in_ids]
    return positions, not_in_reference, not_in_ids


def dataset_from_embedding_rows(
    matrix: np.ndarray,
    embedding_ids: Sequence[str],
    file_rows: np.ndarray,
    *,
    embeddings_path: Path,
    ids: Sequence[str],
    texts: Sequence[str] | None,
    y: np.ndarray,
    split: np.ndarray,
    label_names: tuple[str, ...],
    max_train: int | None,
    seed: int,
    name: str,
    source: str,
    files: Mapping[str, str],
) -> Dataset:
    """The validated :class:`Dataset` of rows whose embeddings are ``matrix[file_rows]``.

    Row ``i`` (id ``ids[i]``, ``texts[i]``, ``y[i]``, ``split[i]``) is embedded
    by row ``file_rows[i]`` of the memory-mapped ``matrix`` (whose rows are
    ``embedding_ids``). The pool is subsampled to ``max_train`` rows with
    ``seed`` first, so only the embedding rows kept are read.
    """
    keep = subsample_pool(split, max_train, seed)
    x = read_embedding_rows(matrix, np.asarray(file_rows, dtype=np.int64)[keep], embedding_ids,
                            file=embeddings_path)
    ds = Dataset(
        ids=np.asarray(ids)[keep],
        texts=None if texts is None else [texts[i] for i in keep.tolist()],
        x=x,
        y=y[keep],
        label_names=label_names,
        split=split[keep],
        name=name,
        source=source,
        files=files,
    )
    return validate_dataset(ds)


def read_ids_for(matrix: np.ndarray, ids_path: Path, embeddings_path: Path) -> list[str]:
    """The ids file, checked unique and one per embedding row."""
    ids = read_id_lines(ids_path)
    check_unique_ids(ids, file=str(ids_path), positions=[f"line {i + 1}" for i in range(len(ids))])
    if len(ids) != matrix.shape[0]:
        raise AlbandError(
            f"mismatched lengths: {embeddings_path} has {matrix.shape[0]} embedding rows but "
            f"{ids_path} lists {len(ids)} ids"
        )
    return ids


def load_npy(
    embeddings: str | Path,
    ids: str | Path,
    labels: str | Path | None = None,
    *,
    id_column: str = "id",
    label_column: str = "label",
    split_column: str | None = None,
    text_column: str | None = None,
    label_names: Sequence[str] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_train: int | None = None,
) -> Dataset:
    """Load precomputed embeddings, their ids and (optionally) a labels table."""
    emb_path, ids_path = Path(embeddings), Path(ids)
    matrix = open_npy(emb_path)
    item_ids = read_ids_for(matrix, ids_path, emb_path)
    n = len(item_ids)
    texts: list[str] | None = None

    if labels is None:
        if label_names is None:
            raise AlbandError(
                f"{emb_path}: without a labels file the classes are unknown; give label_names "
                f"(or a labels file with columns {id_column!r} and {label_column!r})"
            )
        names = check_label_names(label_names, where=f"{emb_path}: label_names")
        y = np.full(n, UNLABELED, dtype=np.int32)
        split = np.full(n, TRAIN, dtype="<U5")
        labels_file = str(ids_path)
    else:
        labels_path = Path(labels)
        labels_file = str(labels_path)
        records = read_records(labels_path)
        label_ids = read_id_column(records, id_column, file=labels_path)
        order, unknown, missing = align_ids(label_ids, item_ids)  # labels-table row -> embedding row
        if unknown:
            raise AlbandError(
                f"{labels_path}: {len(unknown)} ids are not in {ids_path}: {quote_list(unknown)}"
            )
        if missing:
            raise AlbandError(
                f"{ids_path}: {len(missing)} ids have no row in {labels_path}: {quote_list(missing)} "
                f"(leave the {label_column!r} cell empty for an unlabeled item)"
            )
        records = [records[k] for k in np.argsort(order).tolist()]  # now in embedding-row order
        positions = [f"{r.position}" for r in records]
        y, names = encode_labels([r.get(label_column, file=labels_path) for r in records], positions,
                                 file=labels_file, column=label_column, label_names=label_names)
        if split_column:
            split = read_split_column(records, split_column, file=labels_path)
            bad = np.flatnonzero((split != TRAIN) & (y == UNLABELED))
            if bad.size:
                raise AlbandError(
                    f"{labels_path}, {positions[int(bad[0])]}, column {label_column!r}: a test row needs a "
                    f"gold label ({bad.size} unlabeled test rows)"
                )
        else:
            split = stratified_split(y, test_fraction, seed)
        if text_column:
            texts = []
            for r in records:
                text = r.get(text_column, file=labels_path)
                if not isinstance(text, str) or not text.strip():
                    raise AlbandError(f"{labels_path}, {r.position}, column {text_column!r}: empty text")
                texts.append(text)

    return dataset_from_embedding_rows(
        matrix, item_ids, np.arange(n), embeddings_path=emb_path, ids=item_ids, texts=texts, y=y, split=split,
        label_names=names, max_train=max_train, seed=seed, name=emb_path.stem, source=str(emb_path),
        files={"embeddings": str(emb_path), "ids": str(ids_path), "labels": labels_file,
               "split": labels_file, "texts": labels_file},
    )
