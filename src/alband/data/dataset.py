"""A labelled (or partly labelled) pool of items with fixed embeddings.

A :class:`Dataset` is what every loader in :mod:`alband.data` returns and what
the loop and the simulator consume: row ``i`` is pool index ``i`` everywhere
(one index space; ids are looked up only at the shell's edges). It holds

* ``ids``    -- unique string ids, shape ``(n,)``;
* ``texts``  -- the raw texts (``None`` when only embeddings were given);
* ``x``      -- float32 embeddings, shape ``(n, d)``;
* ``y``      -- int32 gold labels in ``0..C-1``, ``-1`` where unknown
  (an unlabeled pool row, to be labelled by an annotator);
* ``split``  -- ``"train"`` (the pool the learner queries) or ``"test"``
  (held-out gold rows, used only to evaluate);
* ``label_names`` -- ``C`` class names, index ``c`` is class ``c``.

:func:`validate_dataset` checks every invariant and raises
:class:`~alband.errors.AlbandError` naming the file (from ``Dataset.files``),
the row and the id at fault. Rows in these messages are pool indices
(0-based); loaders that read text files check their own input first and
name 1-based *lines* of those files instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from alband.errors import AlbandError

TRAIN = "train"
TEST = "test"
SPLITS = (TRAIN, TEST)
UNLABELED = -1


@dataclass(frozen=True, eq=False)
class Dataset:
    """Embedded items with gold labels and a train (pool) / test split.

    ``files`` maps a role (``"embeddings"``, ``"ids"``, ``"labels"``,
    ``"texts"``, ``"split"``) to the file it was read from, so that error
    messages can name it; roles that are absent fall back to ``source``.
    """

    ids: np.ndarray
    texts: list[str] | None
    x: np.ndarray
    y: np.ndarray
    label_names: tuple[str, ...]
    split: np.ndarray
    name: str
    source: str
    files: Mapping[str, str] = field(default_factory=dict)

    # -- sizes ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.x.shape[1])

    @property
    def train_mask(self) -> np.ndarray:
        return self.split == TRAIN

    @property
    def test_mask(self) -> np.ndarray:
        return self.split == TEST

    @property
    def n_train(self) -> int:
        return int(np.count_nonzero(self.train_mask))

    @property
    def n_test(self) -> int:
        return int(np.count_nonzero(self.test_mask))

    # -- views ---------------------------------------------------------------
    def subset(self, rows: np.ndarray | Sequence[int]) -> "Dataset":
        """The rows ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        texts = None if self.texts is None else [self.texts[i] for i in rows.tolist()]
        return replace(
            self,
            ids=self.ids[rows],
            texts=texts,
            x=np.ascontiguousarray(self.x[rows]),
            y=self.y[rows],
            split=self.split[rows],
        )

    def train(self) -> "Dataset":
        """The pool: the rows the learner may query (labels may be ``-1``)."""
        return self.subset(self.train_mask)

    def test(self) -> "Dataset":
        """The held-out rows with gold labels, for evaluation only."""
        return self.subset(self.test_mask)

    def split_arrays(
        self,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
        """``(x_train, y_train, x_test, y_test, ids_train, texts_train)``."""
        train, test = self.train(), self.test()
        return train.x, train.y, test.x, test.y, train.ids, train.texts

    def file_for(self, role: str) -> str:
        """The file that ``role`` came from, for error messages."""
        return self.files.get(role) or self.source


# ---------------------------------------------------------------------------
# checks shared by the loaders (they name positions in the raw files)
# ---------------------------------------------------------------------------
def quote_list(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(str(v)) for v in list(values)[:limit])
    more = len(values) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def check_embedding_matrix(
    x: np.ndarray,
    *,
    file: str,
    ids: Sequence[str] | np.ndarray | None = None,
    file_rows: np.ndarray | None = None,
) -> None:
    """``x`` must be a 2-D array of finite numbers, one row per item.

    The message names ``file`` and the first bad row (and its id when
    ``ids`` lists the ids of the rows of ``x``). When ``x`` holds selected
    rows of the file, ``file_rows[i]`` is the file row of ``x[i]``.
    """
    if x.ndim != 2:
        raise AlbandError(
            f"{file}: embeddings must be a 2-D array (items x dimensions), got shape {tuple(x.shape)}"
        )
    if x.shape[1] == 0:
        raise AlbandError(f"{file}: embeddings have 0 dimensions (shape {tuple(x.shape)})")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise AlbandError(f"{file}: embeddings must be numbers, got dtype {x.dtype}")
    finite_rows = np.isfinite(x).all(axis=1)
    if not finite_rows.all():
        bad = np.flatnonzero(~finite_rows)
        row = int(bad[0])
        values = np.asarray(x[row])
        kind = "NaN" if np.isnan(values).any() else "an infinite value"
        who = f" (id {str(ids[row])!r})" if ids is not None and row < len(ids) else ""
        file_row = int(file_rows[row]) if file_rows is not None else row
        raise AlbandError(
            f"{file}, row {file_row}{who}: embedding contains {kind}"
            + (f"; {bad.size} rows are not finite in all" if bad.size > 1 else "")
        )


def check_unique_ids(ids: Sequence[str] | np.ndarray, *, file: str, positions: Sequence[str] | None = None) -> None:
    """Ids must be unique; the message names the id and both of its positions.

    ``positions[i]`` describes where id ``i`` was read (e.g. ``"line 7"``);
    by default ``"row i"``.
    """
    first_seen: dict[str, int] = {}
    for i, item_id in enumerate(np.asarray(ids).tolist()):
        j = first_seen.setdefault(item_id, i)
        if j != i:
            a, b = (positions[j], positions[i]) if positions is not None else (f"row {j}", f"row {i}")
            raise AlbandError(f"{file}: duplicate id {item_id!r} at {a} and {b}")


def check_label_names(label_names: Sequence[str], *, where: str) -> tuple[str, ...]:
    """At least two distinct, non-empty class names."""
    if isinstance(label_names, str) or not isinstance(label_names, Sequence):
        raise AlbandError(f"{where}: label names must be a list of strings, got {label_names!r}")
    names = tuple(label_names)
    for k, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise AlbandError(f"{where}: label name {k} must be a non-empty string, got {name!r}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AlbandError(f"{where}: label names must be distinct; repeated: {quote_list(duplicated)}")
    if len(names) < 2:
        raise AlbandError(f"{where}: a classification task needs at least 2 classes, got {list(names)}")
    return names


# ---------------------------------------------------------------------------
# the whole-dataset check
# ---------------------------------------------------------------------------
def validate_dataset(ds: Dataset) -> Dataset:
    """Check every invariant of ``ds``; return it unchanged or raise AlbandError.

    Checked: 2-D finite float32 embeddings; one id, embedding, label, split
    (and text) per row; unique ids; labels in ``0..C-1`` or ``-1``; gold
    labels on every test row; splits in ``{"train", "test"}``; a non-empty
    pool; at least two class names.
    """
    emb_file, ids_file = ds.file_for("embeddings"), ds.file_for("ids")
    labels_file, split_file = ds.file_for("labels"), ds.file_for("split")
    where = f"dataset {ds.name!r}"

    x, ids, y, split = (np.asarray(a) for a in (ds.x, ds.ids, ds.y, ds.split))
    if x.ndim != 2:
        raise AlbandError(
            f"{emb_file}: embeddings must be a 2-D array (items x dimensions), got shape {tuple(x.shape)}"
        )
    for name, arr in (("ids", ids), ("labels", y), ("split", split)):
        if arr.ndim != 1:
            raise AlbandError(f"{where}: {name} must be 1-D, got shape {tuple(arr.shape)}")

    lengths = {
        f"embeddings ({emb_file})": x.shape[0],
        f"ids ({ids_file})": ids.shape[0],
        f"labels ({labels_file})": y.shape[0],
        f"split ({split_file})": split.shape[0],
    }
    if ds.texts is not None:
        lengths[f"texts ({ds.file_for('texts')})"] = len(ds.texts)
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise AlbandError(f"{where}: mismatched lengths -- {detail}")

    if x.dtype != np.float32:
        raise AlbandError(f"{emb_file}: embeddings must be float32 in a Dataset, got {x.dtype}")
    check_embedding_matrix(x, file=emb_file, ids=ids)
    check_unique_ids(ids.astype(str), file=ids_file)

    if not np.issubdtype(y.dtype, np.integer):
        raise AlbandError(f"{labels_file}: labels must be integers, got dtype {y.dtype}")
    names = check_label_names(ds.label_names, where=where)
    bad = np.flatnonzero((y < UNLABELED) | (y >= len(names)))
    if bad.size:
        row = int(bad[0])
        raise AlbandError(
            f"{labels_file}, row {row} (id {str(ids[row])!r}): label {int(y[row])} is not in the label set "
            f"(0..{len(names) - 1}: {', '.join(names)}; -1 = unlabeled)"
        )

    bad = np.flatnonzero(~np.isin(split, SPLITS))
    if bad.size:
        row = int(bad[0])
        raise AlbandError(
            f"{split_file}, row {row} (id {str(ids[row])!r}): split {str(split[row])!r} is neither 'train' nor 'test'"
        )
    bad = np.flatnonzero((split == TEST) & (y == UNLABELED))
    if bad.size:
        row = int(bad[0])
        raise AlbandError(
            f"{labels_file}, row {row} (id {str(ids[row])!r}): a test row needs a gold label "
            f"({bad.size} unlabeled test rows)"
        )
    if not np.any(split == TRAIN):
        raise AlbandError(f"{where} ({ds.source}): the pool is empty: no 'train' rows among {len(ids)} rows")
    return ds


def describe(ds: Dataset) -> str:
    """A one-line summary, e.g. for the CLI and run logs."""
    n_unlabeled = int(np.count_nonzero(ds.y[ds.train_mask] == UNLABELED))
    classes = ", ".join(ds.label_names)
    if len(classes) > 60:
        classes = classes[:57] + "..."
    pool = f"{ds.n_train:,} pool" + (f" ({n_unlabeled:,} unlabeled)" if n_unlabeled else "")
    return (
        f"{ds.name}: {len(ds):,} items ({pool} / {ds.n_test:,} test), "
        f"{ds.n_classes} classes ({classes}), {ds.dim}-d embeddings, from {ds.source}"
    )
