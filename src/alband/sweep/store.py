"""A sweep's results store: one gzip-compressed JSON file per cell in ``DIR/cells/`` (shell).

A row holds every seed's curves, so it is mostly numbers: ``<cell id>.json.gz``
is about a ninth of the plain JSON (a 40-seed stopping cell: 574 KB -> 63 KB).
Plain ``<cell id>.json`` rows, as earlier versions wrote them, are still read.

A row is written to a temporary file in the same folder, flushed to disk and
moved over its final name with :func:`os.replace` (atomic on POSIX), so a
sweep killed at any instant -- SIGKILL included -- leaves every cell either
stored whole or not at all, never half a row. A cell is *done* when its file
holds ``"status": "done"``; a failed cell's row (``"status": "failed"``, with
the error) is kept for the report but is run again by the next sweep.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from alband.errors import AlbandError

DONE = "done"
FAILED = "failed"


class ResultStore:
    """The rows of the sweep in ``root`` (``root/cells/<cell id>.json``) and its ``sweep.json`` description."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    def path(self, cell_id: str) -> Path:
        """Where the row of ``cell_id`` is written."""
        return self.cells_dir / f"{cell_id}{ROW_SUFFIX}"

    def read(self, cell_id: str) -> dict[str, Any] | None:
        """The stored row of a cell, or None when there is none (or it cannot be read: it is then run again)."""
        for path in (self.path(cell_id), self.cells_dir / f"{cell_id}.json"):
            try:
                return read_row(path)
            except FileNotFoundError:
                continue
            except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError):
                return None
        return None

    def status(self, cell_id: str) -> str | None:
        row = self.read(cell_id)
        return None if row is None else row.get("status")

    def is_done(self, cell_id: str) -> bool:
        return self.status(cell_id) == DONE

    def write(self, row: dict[str, Any]) -> Path:
        """Store ``row`` (its ``cell`` names the file) atomically."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        return write_json_atomically(self.path(row["cell"]), row)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row (done and failed), in file-name order."""
        if not self.cells_dir.is_dir():
            raise AlbandError(f"{self.root}: not a sweep results folder (no cells/ inside)")
        paths = {p.name[: -len(ROW_SUFFIX)]: p for p in self.cells_dir.glob(f"*{ROW_SUFFIX}")}
        for path in self.cells_dir.glob("*.json"):  # rows of earlier versions, unless rewritten since
            paths.setdefault(path.stem, path)
        for _, path in sorted(paths.items()):
            try:
                yield read_row(path)
            except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
                raise AlbandError(f"{path}: corrupted result row ({err}); delete it to run the cell again") from None

    def write_description(self, description: dict[str, Any]) -> None:
        """``sweep.json``: the spec's name, axes, seeds and report defaults (rewritten by every run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self.root / "sweep.json", description)

    def description(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "sweep.json").read_text())
        except FileNotFoundError:
            return {}


#: A row's file name after its cell id.
ROW_SUFFIX = ".json.gz"


def read_row(path: Path) -> dict[str, Any]:
    """A stored row, gzip-compressed (``.json.gz``) or plain (``.json``)."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    return json.loads(path.read_text())


def write_json_atomically(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as JSON to ``path`` through a temporary file, fsync and :func:`os.replace`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            text = json.dumps(payload, allow_nan=True).encode("utf-8")
            # mtime=0: the same row gives the same bytes (a rerun does not churn a committed file)
            raw.write(gzip.compress(text, mtime=0) if path.name.endswith(".gz") else text)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
