"""Reading user tables (CSV, TSV, JSONL, Hugging Face datasets saved to disk) and id lists, with positions for errors.

Every record comes with its position: the 1-based line of the file it starts
on, or for a dataset folder its 1-based row, so that each later complaint can
say ``items.csv, line 18, column 'label': ...`` or ``reviews/, row 18, ...``.
Files are read as UTF-8 (a leading byte-order mark is skipped); anything
else is an :class:`~alband.errors.AlbandError` naming the file and byte.

A folder written by ``datasets.Dataset.save_to_disk`` (or
``DatasetDict.save_to_disk``) is read with the ``datasets`` library
(``datasets.load_from_disk``, an optional dependency: ``pip install
'alband[hf]'``). Its columns are the record's fields; a ``DatasetDict``'s
rows are read split after split, each with a ``split`` field holding its
split's name (so ``split_column = "split"`` keeps its train / test splits)
unless the rows already have a ``split`` column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alband.errors import AlbandError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}


@dataclass(frozen=True)
class Record:
    """One row of a table: its fields, the line it starts on, the column names it has."""

    fields: dict[str, Any]
    line: int  # 1-based line of a text file, or row of a dataset folder
    unit: str = "line"

    @property
    def position(self) -> str:
        """Where the record is, for messages: ``"line 18"`` or ``"row 18"``."""
        return f"{self.unit} {self.line}"

    def get(self, column: str, *, file: Path, required: bool = True) -> Any:
        """The value in ``column``; a missing column lists the columns there are."""
        if column in self.fields:
            return self.fields[column]
        if not required:
            return None
        there = ", ".join(repr(c) for c in self.fields) or "none"
        raise AlbandError(f"{file}, {self.position}: no column {column!r} (columns there: {there})")


def _decode_error(path: Path, e: UnicodeDecodeError) -> AlbandError:
    return AlbandError(f"{path}: not valid UTF-8 text (byte {e.start} cannot be decoded); save the file as UTF-8")


def read_text(path: Path) -> str:
    """The file's text as UTF-8 (BOM skipped); missing or undecodable files are AlbandErrors."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AlbandError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise AlbandError(f"{path}: is a folder, expected a file") from None
    except OSError as e:
        raise AlbandError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _decode_error(path, e) from None


def _jsonl_records(path: Path, text: str) -> Iterator[Record]:
    for line_no, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON may hold U+2028
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise AlbandError(f"{path}, line {line_no}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise AlbandError(f"{path}, line {line_no}: expected a JSON object, got {type(obj).__name__}")
        yield Record(obj, line_no)


def _csv_records(path: Path, text: str, delimiter: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise AlbandError(f"{path}: the file is empty (expected a header line naming the columns)")
        header = [h.strip() for h in header]
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise AlbandError(f"{path}, line 1: repeated column names in the header: {repeated}")
        start = reader.line_num + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise AlbandError(
                    f"{path}, line {start}: {len(row)} fields but the header has {len(header)} "
                    f"({', '.join(repr(h) for h in header)})"
                )
            yield Record(dict(zip(header, row)), start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise AlbandError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None


# Files a ``save_to_disk`` folder holds: a Dataset's, or a DatasetDict's.
HF_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def is_saved_dataset(path: Path) -> bool:
    """True for a folder written by ``datasets``' ``save_to_disk``."""
    return path.is_dir() and any((path / marker).is_file() for marker in HF_DATASET_MARKERS)


def _saved_dataset_records(path: Path) -> list[Record]:
    try:
        import datasets
    except ImportError:
        raise AlbandError(f"{path}: a Hugging Face dataset folder needs the 'datasets' library: "
                          f"pip install 'alband[hf]'") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # the library's own errors: a damaged or foreign folder
        raise AlbandError(f"{path}: not a readable save_to_disk dataset ({type(e).__name__}: {e})") from None
    if isinstance(loaded, datasets.DatasetDict):
        parts = list(loaded.items())
    else:
        parts = [(None, loaded)]
    records = []
    for split_name, part in parts:
        for fields in part:
            fields = dict(fields)
            if split_name is not None and "split" not in fields:
                fields["split"] = split_name
            records.append(Record(fields, len(records) + 1, "row"))
    if not records:
        raise AlbandError(f"{path}: no rows")
    return records


def read_records(path: Path) -> list[Record]:
    """All records of a ``.csv``, ``.tsv`` or ``.jsonl`` file (blank lines skipped) or a dataset folder."""
    if is_saved_dataset(path):
        return _saved_dataset_records(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        folder = " or a folder saved by datasets' save_to_disk" if path.is_dir() else ""
        raise AlbandError(
            f"{path}: unknown table format {suffix or '(no extension)'!r}; expected one of "
            f"{', '.join(TABLE_SUFFIXES)}{folder}"
        )
    text = read_text(path)
    delimiter = TABLE_SUFFIXES[suffix]
    records = list(_jsonl_records(path, text) if delimiter is None else _csv_records(path, text, delimiter))
    if not records:
        raise AlbandError(f"{path}: no rows")
    return records


def read_id_lines(path: Path) -> list[str]:
    """One id per line (surrounding whitespace stripped); a blank line inside is an error."""
    lines = read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    ids = [line.strip() for line in lines]
    for line_no, item_id in enumerate(ids, start=1):
        if not item_id:
            raise AlbandError(f"{path}, line {line_no}: empty id")
    if not ids:
        raise AlbandError(f"{path}: no ids")
    return ids
