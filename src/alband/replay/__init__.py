"""Offline replay of annotator routers over real multi-LLM outcome matrices (shell).

* :mod:`alband.replay.data`: read and validate ``wide.csv`` + ``items.csv`` (+ embeddings);
* :mod:`alband.replay.features`: item features (embeddings, or TF-IDF + SVD);
* :mod:`alband.replay.runner`: run every router over seeds x a budget grid;
* :mod:`alband.replay.report`, :mod:`alband.replay.plot`: JSON report and frontier plot;
* :mod:`alband.replay.cli`: :func:`replay_main`, behind ``alband route replay``.

The routing rules themselves are pure functions in :mod:`alband.routing`.
"""

from alband.replay.cli import replay_main

__all__ = ["replay_main"]
