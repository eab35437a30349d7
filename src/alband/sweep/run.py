"""Run a sweep: the cells not yet stored, on a backend, each row written as it comes back (shell).

What resumes: a cell whose row is stored as ``done`` is skipped, so a killed
sweep run again computes only the cells it had not finished, and a grown grid
computes only its new cells. Failed rows are run again. Rows are written by
this driver, one atomic file per cell (:mod:`alband.sweep.store`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from alband.sweep.cells import Cell, expand_cells
from alband.sweep.spec import SweepSpec
from alband.sweep.store import DONE, FAILED, ResultStore


@dataclass
class SweepOutcome:
    """What a sweep run did: cells in the grid, skipped (already stored), run now, and the failed rows."""

    cells: int
    skipped: int
    ran: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def describe(spec: SweepSpec, cells: list[Cell]) -> dict[str, Any]:
    """The contents of ``sweep.json``: enough to name and order the rows in a report."""
    return {
        "name": spec.name,
        "spec": str(spec.path),
        "base": spec.base_source,
        "axes": [{"name": a.name, "values": [v.name for v in a.values]} for a in spec.axes],
        "seeds": {"start": spec.seed_start, "count": spec.seed_count},
        "simulate": spec.simulate,
        "report": spec.report,
        "cells": [{"cell": c.id, "name": c.name, "coordinates": c.coordinates} for c in cells],
    }


def dry_run_lines(spec: SweepSpec, cells: list[Cell], store: ResultStore) -> list[str]:
    """One line per cell: its id, whether it is stored (done / failed / to run) and its name."""
    lines = [f"{spec.path}: {len(cells)} cells x {spec.seed_count} seeds "
             f"({spec.seed_start}..{spec.seed_start + spec.seed_count - 1}) -> {spec.out}"]
    for cell in cells:
        status = store.status(cell.id)
        label = {DONE: "stored", FAILED: "failed (will rerun)"}.get(status, "to run")
        lines.append(f"{cell.id}  {label:<19}  {cell.name}")
    return lines


def run_sweep(spec: SweepSpec, backend, *, dry_run: bool = False, progress: bool = True,
              stream: TextIO | None = None) -> SweepOutcome:
    """Expand and validate every cell, then run those without a ``done`` row on ``backend``."""
    cells = expand_cells(spec)
    store = ResultStore(spec.out)
    todo = [cell for cell in cells if not store.is_done(cell.id)]
    outcome = SweepOutcome(cells=len(cells), skipped=len(cells) - len(todo))
    if dry_run:
        print("\n".join(dry_run_lines(spec, cells, store)), file=stream or sys.stdout)
        return outcome
    store.write_description(describe(spec, cells))
    bar = _progress_bar(len(cells), outcome.skipped, progress, backend)

    def on_row(row: dict[str, Any]) -> None:
        store.write(row)
        outcome.ran += 1
        if row["status"] != DONE:
            outcome.failed.append(row)
        if bar is not None:
            bar.set_postfix(failed=len(outcome.failed), refresh=False)
            bar.update(1)

    t0 = time.perf_counter()
    try:
        if todo:
            backend.run(todo, on_row)
    finally:
        if bar is not None:
            bar.close()
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _progress_bar(total: int, initial: int, enabled: bool, backend):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="cell", desc=f"sweep ({backend.describe()})", file=sys.stderr)
