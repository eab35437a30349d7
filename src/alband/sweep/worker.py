"""Run one sweep cell: one ``simulate`` call for its seeds, returned as a result row.

This is the only code a backend runs remotely (in a worker process or a Ray
task); it writes nothing. Any exception becomes a *failed* row carrying the
error's type, message and traceback, so one bad cell never stops the others.
Compiled episodes stay in the process's jit cache (the episode settings are a
static argument), so a worker that runs several cells of the same shape
compiles once.
"""

from __future__ import annotations

import os
import platform
import socket
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from alband.sweep.cells import Cell
from alband.sweep.store import DONE, FAILED

ROW_SCHEMA = 1


def run_cell(cell: Cell, backend: str = "local") -> dict[str, Any]:
    """The result row of ``cell``: status ``done`` with its curves, or ``failed`` with its error."""
    started = time.time()
    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "schema": ROW_SCHEMA,
        "cell": cell.id,
        "name": cell.name,
        "coordinates": cell.coordinates,
        "seeds": list(range(cell.seed_start, cell.seed_start + cell.seed_count)),
        "simulate_options": cell.simulate,
        "config": cell.config,
        "config_text": cell.config_text,
    }
    try:
        result = simulate_cell(cell)
    except Exception as err:  # recorded, never raised: the other cells go on
        row.update(status=FAILED, error={"type": type(err).__name__, "message": str(err),
                                         "traceback": traceback.format_exc(limit=20)})
        result = None
    else:
        row.update(status=DONE, error=None)
    row["config_sha256"] = _sha256(cell.config_text)
    if result is not None:
        row["result"] = {
            "rounds": result["rounds"],
            "curves": result["per_seed_curves"],
            "stops": result["per_seed"],
            "stops_per_cost_model": result["per_cost_model"],
            "annotators": result["annotators"],
            "labels_per_arm": result["per_seed_labels_per_arm"],
            "rules": result["rules"],
            "validation_rows": result["validation_rows"],
            "routing": result["routing"],
            "cost_model": result["cost_model"],
        }
    row["timings"] = {
        "compile_seconds": None if result is None else result["compile_seconds"],
        "simulate_seconds": None if result is None else result["simulate_seconds"],
        "cell_seconds": time.perf_counter() - t0,
        "started_at": _iso(started),
        "finished_at": _iso(time.time()),
    }
    row["versions"] = versions()
    row["machine"] = {"hostname": socket.gethostname(), "platform": platform.platform(),
                      "cpu_count": os.cpu_count(), "pid": os.getpid(), "backend": backend}
    return row


def simulate_cell(cell: Cell) -> dict[str, Any]:
    """:func:`simulate_config` on the cell's config for its seeds (``loop.seed`` = the first seed)."""
    from pathlib import Path

    from alband.cli.simulate import simulate_config
    from alband.config import parse_config

    config = parse_config(cell.config_text, source=cell.source, base_dir=Path(cell.base_dir))
    return simulate_config(config, seeds=cell.seed_count, cost_per_error=float(cell.simulate["cost_per_error"]),
                           n_future=float(cell.simulate["n_future"]), vmap_width=int(cell.simulate["vmap_width"]),
                           cost_models=[tuple(pair) for pair in cell.simulate.get("cost_models", ())],
                           progress=False)  # the sweep draws its own bar over cells


def versions() -> dict[str, str]:
    import jax
    import jaxlib
    import numpy as np

    from alband import __version__

    return {"alband": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
