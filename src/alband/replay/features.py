"""Item features for the learned routers: embeddings, or TF-IDF + SVD of the item text.

``x = [z, onehot(task), 1]`` where ``z`` is

* the given embeddings, reduced to ``dim`` principal components when wider
  (centred SVD) — the posterior's cost grows as ``dim^2`` per arm and step;
* otherwise the item text's TF-IDF (word 1-2 grams, sublinear tf, ``min_df=2``)
  reduced by truncated SVD to ``dim`` components (latent semantic analysis;
  scikit-learn, imported lazily).

``z`` rows are scaled to unit L2 norm, then the whole row ``x`` is (so the
routers' prior on ``x' theta`` has the same scale for every item). The task
one-hot (when items carry a ``task``) lets a linear correctness model learn
per-task accuracies, and the constant its intercept. Features are computed once from the item text or
embeddings only: no label, answer or outcome enters them.
"""

from __future__ import annotations

import numpy as np


def _unit_rows(z: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norm > 0, norm, 1.0)


def _pca(emb: np.ndarray, dim: int) -> np.ndarray:
    if emb.shape[1] <= dim:
        return emb
    centred = emb - emb.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dim].T


def _tfidf_svd(texts: list[str], dim: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=100_000,
                            dtype=np.float32)
    try:
        m = tfidf.fit_transform(texts)
    except ValueError:  # empty vocabulary (tiny or empty texts)
        return np.zeros((len(texts), 0))
    k = min(dim, m.shape[1] - 1, m.shape[0] - 1)
    if k < 1:
        return np.asarray(m.todense(), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # explained_variance_ratio_ of a flat corpus
        z = TruncatedSVD(n_components=k, random_state=seed).fit_transform(m)
    return z.astype(np.float64)


def item_features(texts: list[str], tasks: list[str], embeddings: np.ndarray | None = None,
                  dim: int = 32, seed: int = 0) -> tuple[np.ndarray, str]:
    """(features (n, d) float32, a one-line description of how they were made)."""
    if embeddings is not None:
        z = _pca(np.asarray(embeddings, np.float64), dim)
        how = f"embeddings ({embeddings.shape[1]}-d" + (f", PCA to {z.shape[1]})" if z.shape[1] < embeddings.shape[1] else ")")
    else:
        z = _tfidf_svd(texts, dim, seed)
        how = f"TF-IDF (1-2 grams) + truncated SVD to {z.shape[1]} dims"
    parts = [_unit_rows(z)] if z.shape[1] else []
    names = sorted({t for t in tasks if t})
    if len(names) > 1:
        index = {t: j for j, t in enumerate(names)}
        onehot = np.zeros((len(tasks), len(names)))
        for i, t in enumerate(tasks):
            if t:
                onehot[i, index[t]] = 1.0
        parts.append(onehot)
        how += f" + one-hot of {len(names)} tasks"
    parts.append(np.ones((len(texts), 1)))
    x = _unit_rows(np.concatenate(parts, 1))
    return x.astype(np.float32), how + " + intercept, rows scaled to unit norm"
