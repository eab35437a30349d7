"""Generated texts embedded by the pool's own embedder (shell).

A generated item is only comparable with the pool (novelty, duplicates) and
usable by the learner if it lives in the pool's embedding space:

* ``embedder = "minilm"`` embeds each text on its own
  (:func:`alband.data.minilm.embed_minilm`): new texts are embedded directly;
* ``embedder = "tfidf"`` (``table`` and ``bbc_news`` sources) is fitted on the
  corpus: the fit is made again on the dataset's texts with the same ``dims``
  and ``seed`` (:func:`alband.data.embed.fit_tfidf_svd`), checked to give the
  pool's very embedding (largest absolute difference below
  ``REFIT_TOLERANCE``, else the run is refused), and new texts are projected
  into it (:func:`alband.data.embed.project_texts`);
* sources of precomputed embeddings (``folder``, ``npy``) have no embedder to
  place a new text: ``[generator]`` is refused with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from alband.errors import AlbandError

REFIT_TOLERANCE = 1e-4
TEXT_SOURCES = ("table", "bbc_news")


def pool_text_embedder(data: dict, base_dir: Path, *, where: str = "") -> Callable[[Sequence[str]], np.ndarray]:
    """A function embedding new texts in the space of the pool described by ``[data]`` ``data``."""
    source = data.get("source")
    if source not in TEXT_SOURCES:
        raise AlbandError(f"{where}[generator] needs a [data] source that embeds texts ({', '.join(TEXT_SOURCES)}): "
                          f"source {source!r} holds precomputed embeddings, with no embedder for a generated text")
    if data.get("embedder") == "minilm":
        from alband.data.minilm import embed_minilm

        return lambda texts: np.asarray(embed_minilm(list(texts), progress=False), np.float32)
    from alband.data.embed import fit_tfidf_svd, project_texts
    from alband.data.spec import load_dataset

    dataset = load_dataset(data, base_dir=base_dir, progress=False)
    dims = int(dataset.x.shape[1])
    model, x = fit_tfidf_svd(dataset.texts, dims, int(data.get("seed", 0)))
    gap = float(np.max(np.abs(x - dataset.x))) if x.shape == dataset.x.shape else float("inf")
    if not gap < REFIT_TOLERANCE:
        raise AlbandError(f"{where}[generator]: the embedder fitted again on {dataset.source} does not give the "
                          f"pool's embedding (largest difference {gap:.3g}): generated items would not live in the "
                          "pool's space")
    return lambda texts: project_texts(model, texts, dims)
