"""The text embedders a ``table`` source can choose: ``embedder = "tfidf"`` or ``"minilm"``.

* ``tfidf`` (the default): TF-IDF + truncated SVD fitted on the corpus
  (:mod:`alband.data.embed`), ``dims`` columns; transductive, so a new text
  cannot be placed in the same space later without refitting.
* ``minilm``: the all-MiniLM-L6-v2 sentence encoder run in JAX
  (:mod:`alband.data.minilm`), 384 columns; each text is embedded on its own,
  so generated items or preference responses can be embedded later into
  the same space with :func:`alband.data.minilm.embed_minilm`.

Both return float32 unit rows and cache them on disk by content hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alband.errors import AlbandError

TFIDF = "tfidf"
MINILM = "minilm"
EMBEDDERS = (TFIDF, MINILM)
DEFAULT_EMBEDDER = TFIDF


def check_embedder(embedder: str, dims: int | None) -> None:
    """An :class:`AlbandError` unless ``embedder`` is known and ``dims`` applies to it."""
    if embedder not in EMBEDDERS:
        raise AlbandError(f"'embedder' must be one of {', '.join(repr(e) for e in EMBEDDERS)}, got {embedder!r}")
    if embedder == MINILM and dims is not None:
        raise AlbandError("'dims' applies to the 'tfidf' embedder only: 'minilm' embeddings have 384 dimensions")


def embed_with(
    embedder: str,
    texts: Sequence[str],
    *,
    dims: int | None = None,
    seed: int = 0,
    directory: Path | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """``texts`` embedded by ``embedder`` as float32 unit rows (cached)."""
    check_embedder(embedder, dims)
    if embedder == MINILM:
        from alband.data.minilm import embed_minilm

        return embed_minilm(texts, directory=directory, progress=progress)
    from alband.data.embed import embed_texts

    return embed_texts(texts, dims=128 if dims is None else dims, seed=seed, directory=directory)


def describe_embedder(embedder: str, dims: int | None = None) -> str:
    """A short human name, e.g. ``"all-MiniLM-L6-v2"`` or ``"TF-IDF+SVD (128-d)"``."""
    if embedder == MINILM:
        return "all-MiniLM-L6-v2"
    return f"TF-IDF+SVD ({128 if dims is None else dims}-d)"


__all__ = ["DEFAULT_EMBEDDER", "EMBEDDERS", "MINILM", "TFIDF", "check_embedder", "describe_embedder", "embed_with"]
