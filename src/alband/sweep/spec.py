"""A sweep spec: a base run configuration, a grid over its keys, a seed range (shell).

The spec is a TOML file (README, "Sweeps")::

    base = "base.toml"             # a config file, relative to the spec; or an inline [base] table
    out = "runs/my-sweep"          # results folder (optional; default <spec stem>.sweep beside the spec)

    [seeds]                        # every cell runs seeds start, start + 1, ..., start + count - 1
    start = 0
    count = 20

    [grid]                         # the product of the axes; an axis is a dotted config key ...
    "policy.name" = ["random", "margin"]
    "budget.usd" = [0.5, 2.0]
    "learner.c" = [{ name = "weak-l2", value = 10.0 }, { name = "strong-l2", value = 0.1 }]
    dataset = [                    # ... or a name without a dot: each value sets several keys
      { name = "trec", "data.path" = "../shared/data/trec", "data.max_train" = 2000 },
      { name = "subj", "data.path" = "../shared/data/subj" },
    ]

    [[cells]]                      # optional cells beyond the product (one value per axis named)
    "policy.name" = "badge"
    dataset = { name = "trec", "data.path" = "../shared/data/trec", "data.max_train" = 2000 }

    [simulate]                     # optional: the options of `alband simulate`
    cost_per_error = 0.1
    n_future = 10000
    vmap_width = 1
    cost_models = [[0.01, 1000], [1.0, 100000]]  # more (cost_per_error, n_future) pairs for every rule

    [report]                       # optional defaults of `alband sweep report`
    baseline = "policy.name=random"
    target = 0.8
    rule = "stabilizing_predictions"

A value is named by its ``name`` (a table ``{ name, value }``, or the ``name``
of a joint axis's table), else by itself (``0.5``, ``margin``); a cell's name
joins its axes' value names (``policy.name=margin dataset=trec``). Relative
paths set by the grid are relative to the base config's folder, as the base
config's own paths are. Every error is one line naming the spec and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alband.errors import AlbandError

#: The config's sections (alband.config): the first part of every dotted grid key.
CONFIG_SECTIONS = ("data", "learner", "policy", "loop", "budget", "annotators", "stopping", "routing")
_SPEC_KEYS = {"name", "base", "out", "seeds", "grid", "cells", "simulate", "report"}
_SIMULATE_KEYS: dict[str, tuple[type, ...]] = {"cost_per_error": (int, float), "n_future": (int, float),
                                                "vmap_width": (int,), "cost_models": (list,)}
_REPORT_KEYS: dict[str, tuple[type, ...]] = {"baseline": (str,), "target": (int, float), "rule": (str,),
                                              "panel": (str,)}
SIMULATE_DEFAULTS = {"cost_per_error": 0.1, "n_future": 10_000.0, "vmap_width": 1}


@dataclass(frozen=True)
class AxisValue:
    """One value of an axis: its readable name and the config keys it sets (dotted key -> value)."""

    name: str
    sets: dict[str, Any]


@dataclass(frozen=True)
class Axis:
    """A grid axis: a dotted config key (``policy.name``) or a joint axis's name (``dataset``)."""

    name: str
    values: tuple[AxisValue, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec; ``base`` is the base config as parsed TOML."""

    path: Path
    name: str
    base: dict[str, Any]
    base_dir: Path
    base_source: str
    out: Path
    seed_start: int
    seed_count: int
    axes: tuple[Axis, ...]
    extra_cells: tuple[tuple[tuple[str, AxisValue], ...], ...]
    simulate: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed_start, self.seed_start + self.seed_count))


def load_spec(path: str | Path, out: str | Path | None = None) -> SweepSpec:
    """Read and validate the sweep spec at ``path`` (``out`` overrides the spec's results folder)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AlbandError(f"{path}: no such sweep spec") from None
    except OSError as err:
        raise AlbandError(f"{path}: cannot read the sweep spec ({err.strerror})") from None
    return parse_spec(text, path=path, out=out)


def parse_spec(text: str, *, path: Path, out: str | Path | None = None) -> SweepSpec:
    """Validate the TOML ``text`` of a sweep spec read from ``path``."""
    where = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AlbandError(f"{where}: not valid TOML: {err}") from None
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise AlbandError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_SPEC_KEYS))})")

    base, base_dir, base_source = _base(raw.get("base"), path)
    seed_start, seed_count = _seeds(raw.get("seeds"), where)
    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise AlbandError(f"{where}: [grid] must be a table of axes")
    axes = tuple(_axis(name, values, where) for name, values in grid.items())
    cells = raw.get("cells", [])
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise AlbandError(f"{where}: cells must be an array of tables ([[cells]])")
    extra = tuple(_extra_cell(i, cell, where) for i, cell in enumerate(cells))
    if not axes and not extra:
        raise AlbandError(f"{where}: empty grid: give [grid] at least one axis, or add [[cells]]")
    keys_of_axes = {}
    for axis in axes:
        for key in {k for v in axis.values for k in v.sets}:
            if key in keys_of_axes:
                raise AlbandError(f"{where}: [grid] axes '{keys_of_axes[key]}' and '{axis.name}' both set '{key}'")
            keys_of_axes[key] = axis.name

    simulate = {**SIMULATE_DEFAULTS, **_options(raw.get("simulate", {}), _SIMULATE_KEYS, where, "simulate")}
    if not (simulate["cost_per_error"] >= 0 and simulate["n_future"] >= 0
            and math.isfinite(simulate["cost_per_error"]) and math.isfinite(simulate["n_future"])):
        raise AlbandError(f"{where}: [simulate] cost_per_error and n_future must be finite numbers >= 0")
    if simulate["vmap_width"] < 1:
        raise AlbandError(f"{where}: [simulate] vmap_width must be >= 1, got {simulate['vmap_width']}")
    if "cost_models" in simulate:
        simulate["cost_models"] = _cost_models(simulate["cost_models"], where)
    report = _options(raw.get("report", {}), _REPORT_KEYS, where, "report")

    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise AlbandError(f"{where}: name must be a non-empty string")
    if out is None:
        spec_out = raw.get("out")
        if spec_out is not None and not isinstance(spec_out, str):
            raise AlbandError(f"{where}: out must be a folder path (string), got {spec_out!r}")
        out = path.parent / spec_out if spec_out else path.parent / f"{path.stem}.sweep"
    return SweepSpec(path=path, name=name, base=base, base_dir=base_dir, base_source=base_source, out=Path(out),
                     seed_start=seed_start, seed_count=seed_count, axes=axes, extra_cells=extra,
                     simulate=simulate, report=report)


def _base(base: Any, path: Path) -> tuple[dict[str, Any], Path, str]:
    where = str(path)
    if base is None:
        raise AlbandError(f"{where}: base is required: a config file (base = \"run.toml\") or an inline [base] table")
    if isinstance(base, dict):
        return base, path.parent.resolve(), f"{where}: [base]"
    if not isinstance(base, str):
        raise AlbandError(f"{where}: base must be a config file path or a table, got {base!r}")
    base_path = (path.parent / base)
    try:
        text = base_path.read_text()
    except OSError:
        raise AlbandError(f"{where}: base: no such config file '{base_path}'") from None
    try:
        return tomllib.loads(text), base_path.parent.resolve(), str(base_path)
    except tomllib.TOMLDecodeError as err:
        raise AlbandError(f"{base_path}: not valid TOML: {err}") from None


def _seeds(seeds: Any, where: str) -> tuple[int, int]:
    if not isinstance(seeds, dict):
        raise AlbandError(f"{where}: [seeds] is required: start (>= 0) and count (>= 1)")
    unknown = sorted(set(seeds) - {"start", "count"})
    if unknown:
        raise AlbandError(f"{where}: [seeds] unknown key '{unknown[0]}' (allowed: count, start)")
    start, count = seeds.get("start", 0), seeds.get("count")
    for key, value in (("start", start), ("count", count)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AlbandError(f"{where}: [seeds] {key} must be an integer, got {value!r}")
    if start < 0 or count < 1 or start + count > 2**32:
        raise AlbandError(f"{where}: [seeds] bad seed range: start = {start}, count = {count} "
                          "(need start >= 0, count >= 1, start + count <= 2^32)")
    return start, count


def _options(table: Any, allowed: dict[str, tuple[type, ...]], where: str, section: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise AlbandError(f"{where}: [{section}] must be a table")
    for key, value in table.items():
        if key not in allowed:
            raise AlbandError(f"{where}: [{section}] unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        if isinstance(value, bool) or not isinstance(value, allowed[key]):
            raise AlbandError(f"{where}: [{section}] {key} must be "
                              f"{'/'.join(t.__name__ for t in allowed[key])}, got {value!r}")
    return dict(table)


def _cost_models(pairs: list, where: str) -> list[list[float]]:
    """``[simulate] cost_models``: a list of ``[cost_per_error, n_future]`` pairs of finite numbers >= 0."""
    out = []
    for i, pair in enumerate(pairs):
        ok = (isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair))
        if not ok or not all(math.isfinite(v) and v >= 0 for v in pair):
            raise AlbandError(f"{where}: [simulate] cost_models number {i + 1} must be [cost_per_error, n_future] "
                              f"(finite numbers >= 0), got {pair!r}")
        out.append([float(pair[0]), float(pair[1])])
    return out


def check_config_key(key: str, where: str) -> None:
    """A dotted key must name a key inside a config section (``policy.name``, ``annotators.cheap.flip_rate``)."""
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise AlbandError(f"{where}: '{key}' is not a dotted config key (section.key, e.g. policy.name)")
    if parts[0] not in CONFIG_SECTIONS:
        raise AlbandError(f"{where}: unknown config key '{key}': no section [{parts[0]}] "
                          f"(sections: {', '.join(CONFIG_SECTIONS)})")
    if key == "loop.seed":
        raise AlbandError(f"{where}: 'loop.seed' is set by [seeds] (start, count), not by the grid")


def _value_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, (bool, int)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    from alband.sweep.toml_text import toml_value

    return toml_value(value)


def _axis_value(axis: str, value: Any, where: str) -> AxisValue:
    """One axis value: ``v`` or ``{ name, value }`` for a dotted key; ``{ name, "a.b" = v, ... }`` for a joint axis."""
    if "." in axis:
        check_config_key(axis, where)
        if isinstance(value, dict) and set(value) == {"name", "value"}:
            if not isinstance(value["name"], str) or not value["name"]:
                raise AlbandError(f"{where}: [grid] {axis}: a value's name must be a non-empty string")
            return AxisValue(value["name"], {axis: value["value"]})
        return AxisValue(_value_name(value), {axis: value})
    if not isinstance(value, dict):
        raise AlbandError(f"{where}: [grid] {axis}: '{axis}' has no dot, so it is a joint axis whose values are "
                          f"tables of dotted config keys with a name, got {value!r}")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise AlbandError(f"{where}: [grid] {axis}: every value of a joint axis needs a name (a non-empty string)")
    sets = {k: v for k, v in value.items() if k != "name"}
    if not sets:
        raise AlbandError(f"{where}: [grid] {axis}: value '{name}' sets no config key")
    for key in sets:
        check_config_key(key, f"{where}: [grid] {axis} value '{name}'")
    return AxisValue(name, sets)


def _axis(name: str, values: Any, where: str) -> Axis:
    if isinstance(values, dict):
        raise AlbandError(f"{where}: [grid] {name} is a table: quote dotted keys (\"{name}.{next(iter(values), '')}\" "
                          "= [...]), or TOML reads them as nested tables")
    if not isinstance(values, list):
        raise AlbandError(f"{where}: [grid] {name} must be a list of values, got {values!r}")
    if not values:
        raise AlbandError(f"{where}: empty grid: axis '{name}' has no values")
    parsed = tuple(_axis_value(name, v, where) for v in values)
    names = [v.name for v in parsed]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise AlbandError(f"{where}: [grid] {name}: two values are named '{duplicate}' (give each a distinct name)")
    return Axis(name, parsed)


def _extra_cell(index: int, cell: dict, where: str) -> tuple[tuple[str, AxisValue], ...]:
    if not cell:
        raise AlbandError(f"{where}: [[cells]] number {index + 1} sets nothing")
    return tuple((axis, _axis_value(axis, value, f"{where}: [[cells]] number {index + 1}"))
                 for axis, value in cell.items())
