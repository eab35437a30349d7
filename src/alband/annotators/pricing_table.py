"""Loading a versioned price table (TOML) into :class:`alband.costs.Price` values.

The bundled table ``alband/resources/prices.toml`` lists the providers' list
prices on the date it states (``version``, ``date``); list prices change, so a
run that spends real money should pass its own, checked table. Format::

    schema_version = 1
    version = "2026.11.23"
    date = "2026-11-23"
    currency = "USD"

    [models."claude-haiku-5-5"]
    input_usd_per_mtok = 0.10
    output_usd_per_mtok = 0.50
    cache_write_multiplier = 1.25   # optional, default 1.25
    cache_read_multiplier = 0.1     # optional, default 0.1
    usd_per_label = 0.0             # optional, default 0
    provider = "anthropic"          # optional, documentation only
    source = "https://..."          # optional, documentation only
    notes = "..."                   # optional, documentation only

Every error names the file and the key at fault.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

from alband.costs.prices import Price
from alband.errors import AlbandError

SCHEMA_VERSION = 1
_TOP_KEYS = {"schema_version", "version", "date", "currency", "models"}
_PRICE_KEYS = {"input_usd_per_mtok", "output_usd_per_mtok", "usd_per_label",
               "cache_write_multiplier", "cache_read_multiplier"}
_REQUIRED_PRICE_KEYS = {"input_usd_per_mtok", "output_usd_per_mtok"}
_DOC_KEYS = {"provider", "source", "notes"}


@dataclass(frozen=True)
class PriceTable:
    """A loaded table: ``prices[model]`` plus the table's version and date."""

    prices: Mapping[str, Price]
    version: str
    date: str
    path: str


def default_price_table_path() -> Path:
    """Path of the table bundled with alband."""
    return Path(str(resources.files("alband").joinpath("resources", "prices.toml")))


def load_price_table(path: str | os.PathLike | None = None) -> dict[str, Price]:
    """``{model: Price}`` from ``path`` (the bundled table when ``None``)."""
    return dict(read_price_table(path).prices)


def read_price_table(path: str | os.PathLike | None = None) -> PriceTable:
    """The table at ``path`` with its version and date (bundled table when ``None``)."""
    source = Path(path) if path is not None else default_price_table_path()
    try:
        with open(source, "rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError as err:
        raise AlbandError(f"price table {source}: file not found") from err
    except OSError as err:
        raise AlbandError(f"price table {source}: cannot read it ({err})") from err
    except tomllib.TOMLDecodeError as err:
        raise AlbandError(f"price table {source}: not valid TOML ({err})") from err

    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise AlbandError(f"price table {source}: unknown top-level key(s) {unknown!r}; "
                          f"expected {sorted(_TOP_KEYS)!r}")
    schema = document.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise AlbandError(f"price table {source}, key 'schema_version': expected {SCHEMA_VERSION}, got {schema!r}")
    for key in ("version", "date"):
        if not isinstance(document.get(key), str) or not document[key].strip():
            raise AlbandError(f"price table {source}, key '{key}': required text, got {document.get(key)!r}")
    currency = document.get("currency", "USD")
    if currency != "USD":
        raise AlbandError(f"price table {source}, key 'currency': only 'USD' is supported, got {currency!r}")
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        raise AlbandError(f"price table {source}, key 'models': needs at least one [models.\"<name>\"] table")

    prices: dict[str, Price] = {}
    for model, fields in models.items():
        where = f"price table {source}, key 'models.\"{model}\"'"
        if not isinstance(fields, dict):
            raise AlbandError(f"{where}: expected a table of prices, got {fields!r}")
        unknown = sorted(set(fields) - _PRICE_KEYS - _DOC_KEYS)
        if unknown:
            raise AlbandError(f"{where}: unknown key(s) {unknown!r}; expected some of "
                              f"{sorted(_PRICE_KEYS | _DOC_KEYS)!r}")
        missing = sorted(_REQUIRED_PRICE_KEYS - set(fields))
        if missing:
            raise AlbandError(f"{where}: missing required key(s) {missing!r}")
        values = {}
        for key in _PRICE_KEYS & set(fields):
            value = fields[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AlbandError(f"{where}, field '{key}': expected a number, got {value!r}")
            values[key] = float(value)
        try:
            prices[model] = Price(**values)
        except AlbandError as err:
            raise AlbandError(f"{where}: {err}") from err
    return PriceTable(prices=prices, version=document["version"], date=document["date"], path=str(source))


def price_for(model: str, table: Mapping[str, Price] | None = None) -> Price:
    """The price of ``model`` in ``table`` (bundled table when ``None``), with a clear error."""
    where = f"the price table {default_price_table_path()}" if table is None else "the price table given"
    table = load_price_table() if table is None else table
    try:
        return table[model]
    except KeyError:
        raise AlbandError(
            f"no price for model {model!r} in {where}; known models: {sorted(table)!r}. "
            "Pass a Price explicitly or add the model to your own price table."
        ) from None
