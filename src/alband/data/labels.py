"""Turning the labels users write (names or integers) into class indices.

A label cell may hold a class *name* (``"sport"``) or a class *index*
(``3``, or ``"3"`` in a CSV); an empty cell or JSON ``null`` means the row
is unlabeled (index ``-1``).

* With ``label_names`` given, a string is looked up as a name first, then
  read as an index in ``0..C-1``; anything else is an unknown label.
* Without it, the classes are inferred: if every label is an integer the
  classes are ``0..max`` (named ``"0"``, ``"1"``, ...); otherwise they are
  the distinct strings, sorted.

An inferred label set is checked for typos, since a misspelt cell would
otherwise become a class of its own, silently:

* two names that differ only in case, spaces or punctuation (``"Sport"``,
  ``"sport "``, ``"sport."``) are refused: they are one class written two
  ways;
* a label found in a single row while another class has at least
  :data:`SINGLETON_OUTLIER_ROWS` rows is refused as a probable typo (a
  class of one row can neither be learnt nor be tested on, and in a table
  whose classes have tens of rows a lone one is almost always a slip).

The error names the file, the row, the label and the class it most resembles;
a rare class that is real is accepted once ``label_names`` lists it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from alband.data.dataset import UNLABELED, check_label_names
from alband.errors import AlbandError

_INTEGER = re.compile(r"[+-]?\d+")
_NOT_WORD = re.compile(r"[\W_]+")

#: Without ``label_names``, a label in one row only is refused when another class has at least this many rows.
SINGLETON_OUTLIER_ROWS = 10


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_int(value: Any) -> int | None:
    """The integer a label cell spells, or ``None`` if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _as_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool):
        return str(value)
    return None


def encode_labels(
    values: Sequence[Any],
    positions: Sequence[str],
    *,
    file: str,
    column: str,
    label_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(y, label_names)``: int32 class indices (``-1`` = unlabeled) and the class names.

    ``positions[i]`` says where ``values[i]`` was read (``"line 12"``); errors
    name ``file``, that position, ``column`` and the offending label.
    """

    def unknown(i: int, names: tuple[str, ...], why: str = "is not in the label set") -> AlbandError:
        shown = ", ".join(names) if len(", ".join(names)) <= 200 else ", ".join(names)[:197] + "..."
        return AlbandError(
            f"{file}, {positions[i]}, column {column!r}: label {values[i]!r} {why} "
            f"(classes 0..{len(names) - 1}: {shown})"
        )

    y = np.full(len(values), UNLABELED, dtype=np.int32)
    labeled = [i for i, v in enumerate(values) if not _is_missing(v)]

    if label_names is not None:
        names = check_label_names(label_names, where=f"{file}: label_names")
        index = {name: k for k, name in enumerate(names)}
        for i in labeled:
            value = values[i]
            if isinstance(value, str) and value.strip() in index:
                y[i] = index[value.strip()]
                continue
            k = _as_int(value)
            if k is None or not 0 <= k < len(names):
                raise unknown(i, names)
            y[i] = k
        return y, names

    if not labeled:
        raise AlbandError(
            f"{file}: column {column!r} holds no labels, so the classes are unknown; "
            f"give label_names to load an unlabeled pool"
        )
    as_ints = [_as_int(values[i]) for i in labeled]
    if all(k is not None for k in as_ints):
        for i, k in zip(labeled, as_ints):
            if k < 0:
                raise AlbandError(
                    f"{file}, {positions[i]}, column {column!r}: label {values[i]!r} is negative; "
                    f"class indices start at 0 (leave the cell empty for an unlabeled row)"
                )
            y[i] = k
        names = tuple(str(k) for k in range(max(as_ints) + 1))  # type: ignore[type-var]
    else:
        as_names = [_as_name(values[i]) for i in labeled]
        for i, name in zip(labeled, as_names):
            if name is None:
                raise AlbandError(
                    f"{file}, {positions[i]}, column {column!r}: label {values[i]!r} is neither a class "
                    f"name nor a class index"
                )
        names = tuple(sorted(set(as_names)))  # type: ignore[arg-type]
        index = {name: k for k, name in enumerate(names)}
        for i, name in zip(labeled, as_names):
            y[i] = index[name]  # type: ignore[index]
        _refuse_variant_spellings(as_names, labeled, values, positions, file=file, column=column)
    _refuse_singleton_outliers(y, labeled, values, positions, names, file=file, column=column)
    return y, check_label_names(names, where=f"{file}, column {column!r}")


def _folded(name: str) -> str:
    return _NOT_WORD.sub("", name.casefold())


def _refuse_variant_spellings(names: Sequence[str], rows: Sequence[int], values: Sequence[Any],
                              positions: Sequence[str], *, file: str, column: str) -> None:
    """Raise if two inferred class names differ only in case, spaces or punctuation."""
    counts = Counter(names)
    first_spelling: dict[str, str] = {}
    for name in sorted(counts, key=lambda n: (-counts[n], n)):  # the commonest spelling is taken as meant
        other = first_spelling.setdefault(_folded(name), name)
        if other != name:
            i = rows[names.index(name)]
            raise AlbandError(
                f"{file}, {positions[i]}, column {column!r}: label {values[i]!r} differs from label {other!r} "
                f"({counts[other]} rows) only in case, spaces or punctuation; write the class one way "
                f"(without label_names the classes are inferred from the labels as written)"
            )


def _refuse_singleton_outliers(y: np.ndarray, rows: Sequence[int], values: Sequence[Any],
                               positions: Sequence[str], names: Sequence[str], *, file: str, column: str) -> None:
    """Raise on a class of one row when another class has >= :data:`SINGLETON_OUTLIER_ROWS` rows."""
    counts = np.bincount(y[np.asarray(rows, dtype=np.int64)], minlength=len(names))
    if counts.max() < SINGLETON_OUTLIER_ROWS:
        return
    for i in rows:
        if counts[y[i]] == 1:
            frequent = [name for name, n in zip(names, counts) if n > 1]
            close = difflib.get_close_matches(str(names[y[i]]), frequent, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r} ({int(counts[names.index(close[0])])} rows)? " if close else ""
            raise AlbandError(
                f"{file}, {positions[i]}, column {column!r}: label {values[i]!r} occurs in this row only, "
                f"while class {names[int(np.argmax(counts))]!r} has {int(counts.max())} rows: a typo? {hint}"
                f"Without label_names the classes are inferred from the labels; fix the row, or list the "
                f"classes in label_names if {values[i]!r} is one"
            )
