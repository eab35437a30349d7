"""The local backend: cells in this process (``--jobs 1``) or in a pool of worker processes (shell).

Workers are started with the ``spawn`` method (JAX's threads do not survive
``fork``) and live for the whole sweep, so each keeps its jit cache across the
cells it runs. Rows come back to the driver as cells finish; the driver writes
them. A worker that dies (out of memory, a crash) fails the cells it took and
those still queued: they are recorded as failed rows and run again by the next
sweep, never lost.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

from alband.sweep.cells import Cell
from alband.sweep.failure import failed_row
from alband.sweep.worker import run_cell


class LocalBackend:
    """Runs cells with ``jobs`` processes; ``jobs == 1`` runs them in the driver itself (no start-up cost)."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = int(jobs)

    def describe(self) -> str:
        return "this process" if self.jobs == 1 else f"{self.jobs} local worker processes"

    def run(self, cells: Sequence[Cell], on_row: Callable[[dict[str, Any]], None]) -> None:
        if self.jobs == 1:
            for cell in cells:
                on_row(run_cell(cell, self.name))
            return
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, max(len(cells), 1)), mp_context=context)
        try:
            pending = {pool.submit(run_cell, cell, self.name): cell for cell in cells}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = pending.pop(future)
                    try:
                        row = future.result()
                    except Exception as err:  # the worker process died: BrokenProcessPool
                        row = failed_row(cell, err, self.name)
                    on_row(row)
        except BaseException:  # interrupted: queued cells are dropped (not stored), the next run does them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
