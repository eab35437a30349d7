"""The candidates a selector is shown: ``n`` unqueried pool items, shuffled with the run's key.

Three ways to draw them (``[selector] shortlist``):

* ``"uniform"``: ``n`` distinct unqueried items, uniformly at random (ActiveLLM,
  Bayer et al. 2024, arXiv 2405.10808, shows 200 random unlabelled examples);
* a registered policy's name: that policy's batch of ``n`` on the round's
  context (its ``init`` then ``select`` with batch size ``n``), e.g. the
  ``n`` most uncertain items;
* ``"kmeans"``: SelectLLM (arXiv 2401.16553) clusters the unlabelled pool into
  ``n`` groups and shows one item per cluster: Lloyd's algorithm from ``n``
  random unqueried items (:data:`alband.cold_start.KMEANS_ITERATIONS` steps on the unqueried rows; distances as
  ``|x|^2 - 2 x c' + |c|^2``, an (N, n) array: 0.49 s for 200 clusters of 10,000 x 384 on two
  shared CPU cores, median of 3),
  then for each centroid the nearest unqueried item not already taken.

The list is then permuted uniformly at random, so a model's preference for the
first or last positions does not line up with the policy's ranking. All draws
come from the selection key of the round, :func:`selection_key`:
``fold_in(fold_in(query_key_stream, round), SELECTION_STREAM)``, so a resumed
run shows the same candidates in the same order.
"""

from __future__ import annotations

import jax
import numpy as np

from alband.cold_start import kmeans_representatives, uniform_candidates
from alband.errors import AlbandError
from alband.policies.base import QueryPolicy, RoundContext
from alband.rounds import RunKeys

SELECTION_STREAM = 0x5E1EC7
BUILT_IN_SHORTLISTS = ("uniform", "kmeans")


def selection_key(keys: RunKeys, round_index: int) -> jax.Array:
    """The key of round ``round_index``'s selection (module docstring)."""
    return jax.random.fold_in(jax.random.fold_in(keys.query, round_index), SELECTION_STREAM)


def kmeans_candidates(key: jax.Array, x: jax.Array, queried: jax.Array, n: int) -> jax.Array:
    """One unqueried item per k-means cluster, ``n`` clusters (:func:`alband.cold_start.kmeans_representatives`)."""
    return kmeans_representatives(key, x, queried, n)


def draw_candidates(shortlist: str | QueryPolicy, ctx: RoundContext, key: jax.Array, n: int) -> np.ndarray:
    """The round's ``n`` candidates as pool indices, in the order shown (module docstring)."""
    n_free = int(np.sum(~np.asarray(ctx.queried)))
    n = min(n, n_free)
    if n < 1:
        raise AlbandError("the pool has no unqueried item left to select from")
    k_draw, k_shuffle = jax.random.split(key)
    if shortlist == "uniform":
        index = uniform_candidates(k_draw, ctx.queried, n)
    elif shortlist == "kmeans":
        index = kmeans_candidates(k_draw, ctx.x, ctx.queried, n)
    elif isinstance(shortlist, QueryPolicy):
        index, _ = shortlist.select(shortlist.init(ctx), ctx, k_draw, n)
    else:
        raise AlbandError(f"unknown shortlist {shortlist!r} (uniform, kmeans or a policy)")
    index = np.asarray(index, np.int64)
    return index[np.asarray(jax.random.permutation(k_shuffle, n))]
