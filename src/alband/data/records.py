"""Reading user tables (CSV, TSV, JSONL) and id lists, with positions for errors.

Every record comes with the 1-based line of the file it starts on, so that
each later complaint can say ``items.csv, line 18, column 'label': ...``.
Files are read as UTF-8 (a leading byte-order mark is skipped); anything
else is an :class:`~alband.errors.AlbandError` naming the file and byte.
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
    line: int

    def get(self, column: str, *, file: Path, required: bool = True) -> Any:
        """The value in ``column``; a missing column lists the columns there are."""
        if column in self.fields:
            return self.fields[column]
        if not required:
            return None
        there = ", ".join(repr(c) for c in self.fields) or "none"
        raise AlbandError(f"{file}, line {self.line}: no column {column!r} (columns there: {there})")


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


def read_records(path: Path) -> list[Record]:
    """All records of a ``.csv``, ``.tsv`` or ``.jsonl`` file; blank lines are skipped."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise AlbandError(
            f"{path}: unknown table format {suffix or '(no extension)'!r}; expected one of "
            f"{', '.join(TABLE_SUFFIXES)}"
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
