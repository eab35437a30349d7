"""The seed set of round 0, before any label: uniformly random, or one item per k-means cluster.

``[loop] initial`` chooses how the ``n_initial`` items of round 0 are drawn
(the same function in the simulator and the live loop, :func:`seed_set`):

* ``"random"`` (default): ``n_initial`` distinct items uniformly at random
  (the top ``n_initial`` of i.i.d. uniform scores);
* ``"kmeans"``: the classic cold-start baseline of the cold-start and LLM
  selection literature (SelectLLM, arXiv 2401.16553, shows one item per
  cluster; ActiveLLM, arXiv 2405.10808, compares against it): Lloyd's
  algorithm with ``n_initial`` clusters from ``n_initial`` random items
  (:data:`KMEANS_ITERATIONS` steps), then, centroid by centroid, the nearest
  item not yet taken. Distances are ``|x|^2 - 2 x c' + |c|^2``: an ``(N, k)``
  array, never ``(N, k, d)``.

Both are pure functions of the key and the pool, jittable, so a seed replays.
:func:`kmeans_representatives` also draws the candidates of an LLM selector's
``"kmeans"`` shortlist (:mod:`alband.selection.candidates`), there over the
unqueried items only.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.errors import AlbandError

Array = jax.Array
KMEANS_ITERATIONS = 10
SEED_SET_METHODS = ("random", "kmeans")


@partial(jax.jit, static_argnums=2)
def uniform_candidates(key: Array, queried: Array, n: int) -> Array:
    """``n`` distinct unqueried indices drawn uniformly (queried ones only when fewer than ``n`` remain)."""
    score = jnp.where(queried, -1.0, jax.random.uniform(key, queried.shape))
    return jax.lax.top_k(score, n)[1].astype(jnp.int32)


@partial(jax.jit, static_argnums=3)
def kmeans_representatives(key: Array, x: Array, queried: Array, n: int) -> Array:
    """One unqueried item per k-means cluster, ``n`` clusters (module docstring)."""
    free = ~queried
    start = uniform_candidates(key, queried, n)
    centroids = x[start]
    x_norm = jnp.sum(x * x, axis=1)

    def squared_distance(centroids):  # (N, n) = |x|^2 - 2 x c' + |c|^2, never an (N, n, d) array
        return x_norm[:, None] - 2.0 * x @ centroids.T + jnp.sum(centroids * centroids, axis=1)[None, :]

    def step(centroids, _):
        distance = squared_distance(centroids)
        nearest = jnp.argmin(distance, axis=1)
        member = jax.nn.one_hot(nearest, n, dtype=x.dtype) * free[:, None]
        counts = member.sum(axis=0)
        means = (member.T @ x) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centroids), None

    centroids, _ = jax.lax.scan(step, centroids, None, length=KMEANS_ITERATIONS)
    distance = squared_distance(centroids)
    distance = jnp.where(free[:, None], distance, jnp.inf)

    def pick(taken, column):
        d = jnp.where(taken, jnp.inf, column)
        i = jnp.argmin(d)
        return taken.at[i].set(True), i.astype(jnp.int32)

    _, chosen = jax.lax.scan(pick, queried, distance.T)
    return chosen


def check_seed_set_method(method: str) -> str:
    """``method`` if it is one of :data:`SEED_SET_METHODS`; one line naming them otherwise."""
    if method not in SEED_SET_METHODS:
        raise AlbandError(f"the seed set is drawn by one of {', '.join(SEED_SET_METHODS)}, got {method!r}")
    return method


def seed_set(key: Array, x: Array, n_initial: int, method: str = "random") -> Array:
    """Round 0's ``n_initial`` distinct pool indices, drawn by ``method`` (module docstring)."""
    if method == "random":
        return jax.lax.top_k(jax.random.uniform(key, (x.shape[0],)), n_initial)[1].astype(jnp.int32)
    check_seed_set_method(method)
    return kmeans_representatives(key, x, jnp.zeros(x.shape[0], bool), n_initial)


__all__ = ["KMEANS_ITERATIONS", "SEED_SET_METHODS", "check_seed_set_method", "kmeans_representatives", "seed_set",
           "uniform_candidates"]
