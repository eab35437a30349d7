"""A run configuration (nested dicts of TOML values) written back as TOML text.

:func:`alband.config.parse_config` validates TOML *text* (and keeps it as the
run's record), so a sweep cell -- the base config with the cell's values set --
is written out as text and parsed like any config file. Only what a config
holds is supported: tables (sections, ``[annotators.NAME]``), strings,
booleans, integers, floats and (nested) lists of these. Keys are sorted, so the
text of a cell does not depend on the order the spec named its values in.
"""

from __future__ import annotations

import json
import math
from typing import Any

from alband.errors import AlbandError


def toml_value(value: Any, where: str = "") -> str:
    """One TOML value: ``"text"``, ``true``, ``3``, ``0.25``, ``[1, [2, 3]]``, ``{ a = 1 }``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v, where) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v, where)}" for k, v in sorted(value.items())) + " }"
    raise AlbandError(f"{where}: {value!r} is not a TOML value")


def toml_key(key: str) -> str:
    """A bare key when it is one (``A-Za-z0-9_-``), else a quoted key."""
    if key and all(c.isalnum() and c.isascii() or c in "_-" for c in key):
        return key
    return json.dumps(key)


def toml_text(config: dict[str, Any], where: str = "") -> str:
    """The TOML document of ``config``: scalars of a table first, then its sub-tables as ``[a.b]`` sections."""
    lines: list[str] = []
    _table(lines, [], config, where)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: list[str], table: dict[str, Any], where: str) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append(f"[{'.'.join(toml_key(p) for p in path)}]")
    for key in sorted(scalars):
        lines.append(f"{toml_key(key)} = {toml_value(scalars[key], where)}")
    if path and (scalars or not tables):
        lines.append("")
    for key in sorted(tables):
        _table(lines, [*path, key], tables[key], where)
