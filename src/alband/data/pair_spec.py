"""From a config's ``[data]`` table with ``kind = "pairs"`` to a :class:`~alband.data.pair_task.PairTask`.

=========================  ===================================================================
``source``                 keys (besides ``kind``, ``source``, ``name``, ``seed``,
                           ``max_train``, ``test_fraction`` = 0.2)
=========================  ===================================================================
``hh_rlhf``                ``path`` (a folder with ``data.jsonl``, ``emb_ids.txt``, ``emb_*.npy``),
                           ``feature`` = ``"prompt_response"`` | ``"response"``
``trl``                    ``path`` (TRL ``prompt`` / ``chosen`` / ``rejected`` JSONL) and either
                           ``chosen_npy`` + ``rejected_npy`` (+ ``prompt_npy``) or
                           ``embedder`` = ``"minilm"`` | ``"tfidf"`` (+ ``dims`` for tfidf)
``candidates``             ``path`` (``prompt`` / ``responses`` JSONL, optional ``ranking``) and
                           either ``responses_npy`` (+ ``prompt_npy``) or ``embedder``
``synthetic_candidates``   ``n_prompts`` = 500, ``k`` = 4, ``dims`` = 16, ``theta_norm`` = 1.5
                           (:func:`alband.data.pairs.synthetic_candidates_world`; no texts)
=========================  ===================================================================

With ``embedder``, a response's feature is the embedding of
``prompt + "\\n\\n" + response`` (the reward model sees the response in its
context) and a prompt's the embedding of the prompt. The pool's A/B order and
the held-out prompts are drawn from ``seed`` (``[data] seed``, default 0).
Paths are relative to the config file's folder. A bad key or value is one
:class:`~alband.errors.AlbandError` naming ``[data]`` and the key; a bad file
names the file and line (:mod:`alband.data.pairs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from alband.data.pair_task import PairTask, split_pairs
from alband.errors import AlbandError

KIND = "pairs"
_WHERE = "[data]: "
_COMMON = ("kind", "source", "name", "seed", "max_train", "test_fraction")
_KEYS = {
    "hh_rlhf": ("path", "feature"),
    "trl": ("path", "chosen_npy", "rejected_npy", "prompt_npy", "embedder", "dims"),
    "candidates": ("path", "responses_npy", "prompt_npy", "embedder", "dims"),
    "synthetic_candidates": ("n_prompts", "k", "dims", "theta_norm"),
}
SOURCES = tuple(_KEYS)


def is_pair_spec(spec: Mapping[str, Any]) -> bool:
    """Whether a ``[data]`` table describes a preference task."""
    return isinstance(spec, Mapping) and spec.get("kind") == KIND


def _int(spec, key, default, minimum):
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AlbandError(f"{_WHERE}{key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(spec, key, default, low, high):
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
        raise AlbandError(f"{_WHERE}{key!r} must be a number in ({low:g}, {high:g}), got {value!r}")
    return float(value)


def _path(spec, key, base_dir: Path) -> Path:
    value = spec[key]
    if not isinstance(value, str) or not value.strip():
        raise AlbandError(f"{_WHERE}{key!r} must be a path (a string), got {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    if not path.exists():
        raise AlbandError(f"{_WHERE}{key!r} = {value!r}: {path} not found")
    return path


def _embed(spec, texts: list[str], progress: bool | None) -> np.ndarray:
    from alband.data.embedders import embed_with

    embedder = spec["embedder"]
    dims = spec.get("dims")
    try:
        return embed_with(embedder, texts, dims=dims, progress=progress)
    except AlbandError as err:
        raise AlbandError(f"{_WHERE}{err}") from None


def _embedding_mode(spec, npy_key: str, source: str) -> bool:
    """True to embed texts, False to read ``.npy`` files; exactly one of the two must be configured."""
    has_npy, has_embedder = npy_key in spec, "embedder" in spec
    if has_npy == has_embedder:
        raise AlbandError(f"{_WHERE}source {source!r} needs either {npy_key!r} (precomputed embeddings) or "
                          "'embedder' (\"minilm\" or \"tfidf\"), not both")
    if not has_embedder and "dims" in spec:
        raise AlbandError(f"{_WHERE}'dims' applies to embedder = 'tfidf' only")
    return has_embedder


def load_pair_task(spec: Mapping[str, Any], *, base_dir: Path, progress: bool | None = None) -> PairTask:
    """The preference task ``spec`` describes (module docstring)."""
    from alband.data import pairs
    from alband.data.records import read_records

    if not is_pair_spec(spec):
        raise AlbandError(f"{_WHERE}'kind' must be {KIND!r} for a preference task, got {spec.get('kind')!r}")
    source = spec.get("source")
    if source not in _KEYS:
        raise AlbandError(f"{_WHERE}'source' of a pairs task must be one of "
                          f"{', '.join(repr(s) for s in SOURCES)}, got {source!r}")
    allowed = _COMMON + _KEYS[source]
    unknown = [key for key in spec if key not in allowed]
    if unknown:
        raise AlbandError(f"{_WHERE}unknown key {unknown[0]!r} for source {source!r}; allowed keys: "
                          f"{', '.join(allowed)}")
    for key in ("name",) + tuple(k for k in ("feature", "embedder") if k in spec):
        if key in spec and (not isinstance(spec[key], str) or not spec[key].strip()):
            raise AlbandError(f"{_WHERE}{key!r} must be a non-empty string, got {spec[key]!r}")
    seed = _int(spec, "seed", 0, 0)
    test_fraction = _number(spec, "test_fraction", 0.2, 0.0, 1.0)
    max_train = _int(spec, "max_train", 1, 1) if "max_train" in spec else None
    key_pool, key_split = jax.random.split(jax.random.PRNGKey(seed))
    where = f"{_WHERE}source {source!r}: "
    prompt_texts = response_texts = None

    if source == "hh_rlhf":
        folder = _path(spec, "path", base_dir)
        pool = pairs.load_hh_rlhf_pairs(folder, key_pool, feature=spec.get("feature", "prompt_response"))
        records = read_records(folder / "data.jsonl")
        fields = [r.fields for r in records]
        prompt_texts = [str(f.get("prompt", "")) for f in fields]
        response_texts = [str(f.get("chosen", "")) for f in fields] + [str(f.get("rejected", "")) for f in fields]
        name = "hh_rlhf"
    elif source == "trl":
        path = _path(spec, "path", base_dir)
        rows = pairs.read_trl_rows(path)
        prompt_texts = [r[1] for r in rows]
        response_texts = [r[2] for r in rows] + [r[3] for r in rows]
        ids = [r[0] for r in rows]
        if _embedding_mode(spec, "chosen_npy", source):
            n = len(rows)
            x = _embed(spec, [f"{p}\n\n{y}" for p, y in zip(prompt_texts + prompt_texts, response_texts)] + prompt_texts,
                       progress)
            pool = pairs.pairs_pool(x[2 * n:], x[:n], x[n:2 * n], ids, key_pool)
        else:
            if "rejected_npy" not in spec:
                raise AlbandError(f"{where}'chosen_npy' needs 'rejected_npy'")
            prompt_npy = _path(spec, "prompt_npy", base_dir) if "prompt_npy" in spec else None
            pool = pairs.load_trl_pairs(path, key_pool, chosen_npy=_path(spec, "chosen_npy", base_dir),
                                        rejected_npy=_path(spec, "rejected_npy", base_dir), prompt_npy=prompt_npy)
        name = path.stem
    elif source == "candidates":
        path = _path(spec, "path", base_dir)
        rows = pairs.read_candidate_rows(path)
        prompt_texts = [r[1] for r in rows]
        response_texts = [text for r in rows for text in r[2]]
        if _embedding_mode(spec, "responses_npy", source):
            contexts = [f"{r[1]}\n\n{text}" for r in rows for text in r[2]]
            x = _embed(spec, contexts + prompt_texts, progress)
            pool = pairs.candidates_pool(rows, x[:len(contexts)], x[len(contexts):], key_pool)
        else:
            prompt_npy = _path(spec, "prompt_npy", base_dir) if "prompt_npy" in spec else None
            pool = pairs.load_candidates(path, key_pool, responses_npy=_path(spec, "responses_npy", base_dir),
                                         prompt_npy=prompt_npy)
        name = path.stem
    else:
        pool = pairs.synthetic_candidates_world(
            key_pool, n_prompts=_int(spec, "n_prompts", 500, 2), k=_int(spec, "k", 4, 2),
            d=_int(spec, "dims", 16, 1), theta_norm=_number(spec, "theta_norm", 1.5, 0.0, float("inf")))
        name = "synthetic_candidates"
    return split_pairs(pool, key_split, test_fraction, name=spec.get("name", name), where=where,
                       max_train=max_train, prompt_texts=prompt_texts, response_texts=response_texts)
