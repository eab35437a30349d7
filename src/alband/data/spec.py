"""One entry point from a config's ``[data]`` table to a :class:`Dataset`.

``source`` picks the loader; the other keys are that loader's options.
Paths are relative to ``base_dir`` (the config file's folder) unless
absolute; ``~`` is expanded.

=============  =====================================================================
source         keys (besides ``source``, ``name``, ``seed``, ``max_train``)
=============  =====================================================================
``bbc_news``   ``dims``, ``test_fraction``
``table``      ``path``, ``text_column``, ``label_column``, ``id_column``,
               ``split_column``, ``label_names``, ``test_fraction``, ``dims``,
               ``embedder`` (``"tfidf"``, the default, or ``"minilm"``)
``folder``     ``path``, ``embeddings``, ``ids``
``npy``        ``path`` (the ``.npy``), ``ids``, ``labels``, ``id_column``,
               ``label_column``, ``split_column``, ``text_column``,
               ``label_names``, ``test_fraction``
=============  =====================================================================

An unknown key or a value of the wrong type is an
:class:`~alband.errors.AlbandError` naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alband.data.dataset import Dataset
from alband.errors import AlbandError

_WHERE = "[data]"
_COMMON = ("source", "name", "seed", "max_train")
_KEYS: dict[str, tuple[str, ...]] = {
    "bbc_news": ("dims", "test_fraction"),
    "table": ("path", "text_column", "label_column", "id_column", "split_column", "label_names",
              "test_fraction", "dims", "embedder"),
    "folder": ("path", "embeddings", "ids"),
    "npy": ("path", "ids", "labels", "id_column", "label_column", "split_column", "text_column",
            "label_names", "test_fraction"),
}
_REQUIRED = {"bbc_news": (), "table": ("path",), "folder": ("path",), "npy": ("path", "ids")}
SOURCES = tuple(_KEYS)


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlbandError(f"{_WHERE}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _integer(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AlbandError(f"{_WHERE}: {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise AlbandError(f"{_WHERE}: {key!r} must be a number in [0, 1), got {value!r}")
    return float(value)


def _names(key: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise AlbandError(f"{_WHERE}: {key!r} must be a list of class names (strings), got {value!r}")
    return list(value)


def _embedder(key: str, value: Any) -> str:
    from alband.data.embedders import EMBEDDERS

    if value not in EMBEDDERS:
        raise AlbandError(f"{_WHERE}: {key!r} must be one of {', '.join(repr(e) for e in EMBEDDERS)}, got {value!r}")
    return value


_CHECK: dict[str, Callable[[str, Any], Any]] = {
    "name": _string,
    "seed": lambda k, v: _integer(k, v, 0),
    "max_train": lambda k, v: _integer(k, v, 1),
    "dims": lambda k, v: _integer(k, v, 1),
    "test_fraction": _fraction,
    "label_names": _names,
    "embedder": _embedder,
    **{k: _string for k in ("path", "embeddings", "ids", "labels", "text_column", "label_column",
                            "id_column", "split_column")},
}


def _resolve(base_dir: Path, key: str, value: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    if not path.exists():
        raise AlbandError(f"{_WHERE}: {key!r} = {value!r}: {path} not found")
    return path


def load_dataset(spec: Mapping[str, Any], *, base_dir: Path, progress: bool | None = None) -> Dataset:
    """The dataset ``spec`` describes (see the module docstring for the keys).

    ``progress`` shows or hides the progress bar of a slow embedder (``None``: on a terminal).
    """
    if not isinstance(spec, Mapping):
        raise AlbandError(f"{_WHERE}: expected a table of keys, got {type(spec).__name__}")
    source = spec.get("source")
    if source not in _KEYS:
        raise AlbandError(
            f"{_WHERE}: 'source' must be one of {', '.join(repr(s) for s in SOURCES)}, got {source!r}"
        )
    allowed = _COMMON + _KEYS[source]
    for key in spec:
        if key not in allowed:
            raise AlbandError(
                f"{_WHERE}: unknown key {key!r} for source {source!r}; allowed keys: {', '.join(allowed)}"
            )
    for key in _REQUIRED[source]:
        if key not in spec:
            raise AlbandError(f"{_WHERE}: source {source!r} needs the key {key!r}")
    opts = {k: _CHECK[k](k, v) for k, v in spec.items() if k != "source"}
    name = opts.pop("name", None)
    common = {k: opts.pop(k) for k in ("seed", "max_train") if k in opts}

    if source == "bbc_news":
        from alband.data.bbc_news import load_bbc_news

        ds = load_bbc_news(**opts, **common)
    elif source == "table":
        from alband.data.table import load_table

        if opts.get("embedder") == "minilm" and "dims" in opts:
            raise AlbandError(
                f"{_WHERE}: 'dims' applies to embedder = 'tfidf' only: 'minilm' embeddings have 384 dimensions"
            )
        ds = load_table(_resolve(base_dir, "path", opts.pop("path")), **opts, **common, progress=progress)
    elif source == "folder":
        from alband.data.folder import load_embedded_folder

        folder = _resolve(base_dir, "path", opts.pop("path"))
        for key in ("embeddings", "ids"):  # file names inside the folder
            if key in opts and Path(opts[key]).name != opts[key]:
                raise AlbandError(f"{_WHERE}: {key!r} is a file name inside the folder, got {opts[key]!r}")
        ds = load_embedded_folder(folder, **opts, **common)
    else:
        from alband.data.npy import load_npy

        embeddings = _resolve(base_dir, "path", opts.pop("path"))
        ids = _resolve(base_dir, "ids", opts.pop("ids"))
        labels = _resolve(base_dir, "labels", opts.pop("labels")) if "labels" in opts else None
        ds = load_npy(embeddings, ids, labels, **opts, **common)
    return dataclasses.replace(ds, name=name) if name else ds
