"""A sweep's cells: the grid's product plus ``[[cells]]``, each a resolved config and its identity.

A cell is one ``simulate`` call: the base config with the cell's values set,
run for the spec's seeds. Its identity is the SHA-256 of the canonical JSON
(sorted keys) of the resolved config, the seed range and the simulate options,
so it is stable across runs and independent of the order in which the spec
lists axes, values or keys: a grown grid keeps the identities of the cells it
already had, and a result file is found again by its cell's id. The code's
version is recorded in each row but is not part of the identity.

Every cell's config is parsed by :func:`alband.config.parse_config` and its
policy, stopping rule and annotators are checked before anything runs, so an
unknown key or policy is one line naming the spec and the cell.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alband.errors import AlbandError
from alband.sweep.spec import AxisValue, SweepSpec
from alband.sweep.toml_text import toml_text

#: Characters of the hex digest used as a cell's id (and its result file's name).
CELL_ID_CHARS = 16


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: what a worker needs to run it, and how the report names it."""

    id: str
    name: str
    coordinates: dict[str, str]
    config: dict[str, Any]
    config_text: str
    base_dir: str
    seed_start: int
    seed_count: int
    simulate: dict[str, Any]

    @property
    def source(self) -> str:
        return f"cell '{self.name}'"


def cell_identity(config: dict[str, Any], seed_start: int, seed_count: int, simulate: dict[str, Any]) -> str:
    """The cell id: SHA-256 of the canonical JSON of (config, seeds, simulate options), first 16 hex digits."""
    canonical = json.dumps({"config": config, "seeds": [seed_start, seed_count], "simulate": simulate},
                           sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:CELL_ID_CHARS]


def set_dotted(config: dict[str, Any], key: str, value: Any, where: str) -> None:
    """``config["a"]["b"]["c"] = value`` for ``key = "a.b.c"``, creating tables on the way."""
    *path, leaf = key.split(".")
    table = config
    for i, part in enumerate(path):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            prefix = ".".join(path[: i + 1])
            raise AlbandError(f"{where}: cannot set '{key}': '{prefix}' is a value, not a table")
    table[leaf] = copy.deepcopy(value)


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of ``spec``, validated, in grid order (first axis slowest), then ``[[cells]]``; duplicates once."""
    points: list[tuple[tuple[str, AxisValue], ...]] = [
        tuple(zip((a.name for a in spec.axes), combo)) for combo in itertools.product(*(a.values for a in spec.axes))
    ] if spec.axes else []
    points.extend(spec.extra_cells)
    cells: dict[str, Cell] = {}
    for point in points:
        cell = _resolve(spec, point)
        cells.setdefault(cell.id, cell)
    return list(cells.values())


def _resolve(spec: SweepSpec, point: tuple[tuple[str, AxisValue], ...]) -> Cell:
    name = " ".join(f"{axis}={value.name}" for axis, value in point)
    where = f"{spec.path}: cell '{name}'"
    config = copy.deepcopy(spec.base)
    for _, value in point:
        for key, v in value.sets.items():
            set_dotted(config, key, v, where)
    config.setdefault("loop", {})
    if not isinstance(config["loop"], dict):
        raise AlbandError(f"{where}: [loop] must be a table")
    config["loop"]["seed"] = spec.seed_start
    text = toml_text(config, where)
    check_cell_config(text, where, Path(spec.base_dir))
    return Cell(id=cell_identity(config, spec.seed_start, spec.seed_count, spec.simulate), name=name,
                coordinates={axis: value.name for axis, value in point}, config=config, config_text=text,
                base_dir=str(spec.base_dir), seed_start=spec.seed_start, seed_count=spec.seed_count,
                simulate=dict(spec.simulate))


def check_cell_config(text: str, where: str, base_dir: Path) -> None:
    """Parse a cell's config and build its policy and stopping rule; its annotators must be simulated."""
    from alband.config import parse_config
    from alband.policies.registry import make_policy
    from alband.stopping import make_rule

    config = parse_config(text, source=where, base_dir=base_dir)
    try:
        make_policy(config.policy_name, **config.policy_params)
        if config.stopping is not None:
            make_rule(config.stopping.rule, **config.stopping.params)
    except AlbandError as err:
        raise AlbandError(f"{where}: {err}") from None
    names = (config.loop.annotator,) if config.routing is None else config.routing.annotators
    for name in names:
        kind = config.annotators[name].get("kind", "simulated")
        if kind != "simulated":
            raise AlbandError(f"{where}: a sweep simulates, so its annotators must be simulated; "
                              f"'{name}' is of kind '{kind}'")
