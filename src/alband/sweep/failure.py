"""The row of a cell whose worker did not return one (a dead process, a lost Ray task)."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from datetime import datetime, timezone
from typing import Any

from alband.sweep.cells import Cell
from alband.sweep.store import FAILED
from alband.sweep.worker import ROW_SCHEMA, versions


def failed_row(cell: Cell, err: BaseException, backend: str, attempts: int | None = None) -> dict[str, Any]:
    """A ``failed`` row for ``cell`` written by the driver: the error as the backend reported it."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    message = str(err).strip().splitlines()
    return {
        "schema": ROW_SCHEMA,
        "cell": cell.id,
        "name": cell.name,
        "coordinates": cell.coordinates,
        "seeds": list(range(cell.seed_start, cell.seed_start + cell.seed_count)),
        "simulate_options": cell.simulate,
        "config": cell.config,
        "config_text": cell.config_text,
        "config_sha256": hashlib.sha256(cell.config_text.encode()).hexdigest(),
        "status": FAILED,
        "error": {"type": type(err).__name__, "message": message[-1] if message else repr(err),
                  "traceback": str(err), "attempts": attempts, "raised_in": "backend"},
        "timings": {"compile_seconds": None, "simulate_seconds": None, "cell_seconds": None, "started_at": None,
                    "finished_at": now},
        "versions": versions(),
        "machine": {"hostname": socket.gethostname(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "pid": os.getpid(), "backend": backend},
    }
