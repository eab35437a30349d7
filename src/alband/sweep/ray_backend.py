"""The Ray backend: one Ray task per cell, for sweeps that outgrow one machine (shell).

``alband sweep SPEC --ray`` (or with ``RAY_ADDRESS`` set) connects to the Ray
cluster at ``RAY_ADDRESS`` -- or starts a local Ray instance without it -- and
submits every cell as a task of one CPU. Rows stream back as tasks finish
(:func:`ray.wait`) and the driver writes each one, so a killed driver keeps
every row it received. A task whose worker dies (a lost node, out of memory)
is retried by Ray up to ``retries`` times; past that, or for any error the
cell raises itself (deterministic: running it again here would fail again),
the cell is recorded as a failed row with its error and the next sweep runs
it again. Nothing is silently lost: every submitted cell ends as a row.

Every node needs alband (``pip install 'alband[ray]'``) and the data at the
paths the configs name. On one machine the local backend is the faster path:
seeds inside a cell already run in one compiled call.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from alband.errors import AlbandError
from alband.sweep.cells import Cell
from alband.sweep.failure import failed_row
from alband.sweep.worker import run_cell


def ray_requested(flag: bool) -> bool:
    """``--ray`` given, or ``RAY_ADDRESS`` set in the environment."""
    return flag or bool(os.environ.get("RAY_ADDRESS"))


class RayBackend:
    """Submits cells as Ray tasks (``num_cpus`` each) with ``retries`` retries on system failures."""

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 2, num_cpus: float = 1.0):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.retries = int(retries)
        self.num_cpus = num_cpus

    def describe(self) -> str:
        return f"Ray at {self.address}" if self.address else "Ray (this machine)"

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise AlbandError("the Ray backend needs ray: pip install 'alband[ray]'") from None
        if not ray.is_initialized():
            # Local workers inherit this environment; on a cluster, these two follow the tasks.
            env = {k: os.environ[k] for k in ("JAX_PLATFORMS", "ALBAND_NATIVE_KERNELS") if k in os.environ}
            options: dict[str, Any] = {"log_to_driver": False}
            if self.address is None:
                options["include_dashboard"] = False
            ray.init(address=self.address, runtime_env={"env_vars": env} if env else None, **options)
        return ray

    def run(self, cells: Sequence[Cell], on_row: Callable[[dict[str, Any]], None]) -> None:
        ray = self._ray()
        task = ray.remote(num_cpus=self.num_cpus, max_retries=self.retries, retry_exceptions=False)(run_cell)
        pending = {task.remote(cell, self.name): cell for cell in cells}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    cell = pending.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as err:  # the task's worker died more than `retries` times
                        row = failed_row(cell, err, self.name, attempts=self.retries + 1)
                    on_row(row)
        except BaseException:  # interrupted: cancel what is left (not stored; the next run does it)
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
