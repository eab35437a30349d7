"""Per-round metrics of a run: an append-only JSON Lines file, one line per round.

Each line is a JSON object with at least ``round``, ``n_labeled``,
``spent_usd`` and ``test_accuracy`` (``null`` when not measured); any other
JSON-serialisable keys are kept. A line is written with a single ``write``,
then flushed and ``fsync``-ed before :meth:`MetricsWriter.append` returns.

A run killed mid-write can leave a last line without its newline. Such a
line is incomplete by definition: :func:`read_metrics` ignores it and
:class:`MetricsWriter` truncates the file back to the last complete line
before appending, so the round is simply written again on resume. Any other
unreadable line is corruption, reported with the file and line number.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from alband.errors import AlbandError
from alband.store.durable import fsync_directory

METRICS_FILENAME = "metrics.jsonl"
REQUIRED_KEYS = ("round", "n_labeled", "spent_usd", "test_accuracy")


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data; non-finite floats become ``None``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AlbandError(f"{where}: keys must be strings, got {key!r}")
            out[key] = _jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy / jax scalars and arrays
        return _jsonable(value.tolist(), where)
    raise AlbandError(f"{where}: {type(value).__name__} value {value!r} cannot be written as JSON")


def _check_record(record: Mapping[str, Any], where: str) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise AlbandError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("round", "n_labeled"):
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AlbandError(f"{where}: {key} must be an integer >= 0, got {value!r}")
    spent = record["spent_usd"]
    if isinstance(spent, bool) or not isinstance(spent, (int, float)) or not math.isfinite(spent) or spent < 0:
        raise AlbandError(f"{where}: spent_usd must be a finite number >= 0, got {spent!r}")
    accuracy = record["test_accuracy"]
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                 or not 0.0 <= accuracy <= 1.0):
        raise AlbandError(f"{where}: test_accuracy must be in [0, 1] or null, got {accuracy!r}")


def _scan(path: Path) -> tuple[list[dict], int]:
    """Complete records of ``path`` and the byte length they occupy."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AlbandError(f"metrics file {path} is missing") from None
    except OSError as exc:
        raise AlbandError(f"metrics file {path} cannot be read: {exc}") from exc
    complete = data.rfind(b"\n") + 1  # bytes up to and including the last newline
    records = []
    for number, line in enumerate(data[:complete].split(b"\n")[:-1], start=1):
        where = f"{path}, line {number}"
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AlbandError(f"{where}: corrupted metrics line ({exc})") from None
        if not isinstance(record, dict):
            raise AlbandError(f"{where}: expected a JSON object, got {type(record).__name__}")
        _check_record(record, where)
        records.append(record)
    return records, complete


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Every complete record of ``path`` in order (an incomplete last line is ignored)."""
    return _scan(Path(path))[0]


def repair_metrics(path: str | os.PathLike) -> int:
    """Truncate ``path`` to its last complete line; returns the number of bytes dropped."""
    path = Path(path)
    _, complete = _scan(path)
    dropped = path.stat().st_size - complete
    if dropped:
        with open(path, "r+b") as handle:
            handle.truncate(complete)
            handle.flush()
            os.fsync(handle.fileno())
    return dropped


class MetricsWriter:
    """Appends one durable line per round to a metrics file.

    Opening an existing file validates it and drops an incomplete last line.
    Rounds must be strictly increasing; :attr:`last_round` tells a resumed
    run where the file stops.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        if self._path.exists():
            repair_metrics(self._path)
            records = read_metrics(self._path)
            self._last_round: int | None = records[-1]["round"] if records else None
            self._handle = open(self._path, "ab")
        else:
            if not self._path.parent.is_dir():
                raise AlbandError(f"cannot create metrics file {self._path}: "
                                  f"directory {self._path.parent} does not exist")
            self._last_round = None
            self._handle = open(self._path, "ab")
            os.fsync(self._handle.fileno())
            fsync_directory(self._path.parent)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def last_round(self) -> int | None:
        """The round of the last complete line, ``None`` for an empty file."""
        return self._last_round

    def append(self, record: Mapping[str, Any]) -> dict:
        """Write ``record`` as one line, flushed and fsync-ed; returns what was written."""
        if not isinstance(record, Mapping):
            raise AlbandError(f"{self._path}: a metrics record must be a mapping, got {type(record).__name__}")
        clean = _jsonable(dict(record), "metrics record")
        _check_record(clean, f"{self._path}: new metrics record")
        line = (json.dumps(clean, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if self._handle is None:
                raise AlbandError(f"metrics file {self._path} is closed")
            if self._last_round is not None and clean["round"] <= self._last_round:
                raise AlbandError(
                    f"{self._path}: round {clean['round']} is not after the last recorded round {self._last_round}"
                )
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._last_round = clean["round"]
        return clean

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
