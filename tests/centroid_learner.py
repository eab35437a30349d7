"""A learner defined outside ``src/``: soft nearest centroids (the extension-point test's learner).

``P(y = c | x) = softmax_c(-||x - mu_c||^2 / T)`` with ``mu_c`` the weighted
mean of the rows labelled ``c`` (shrunk towards the origin by a prior weight
``s``: ``mu_c = sum_i w_i [y_i = c] x_i / (s + sum_i w_i [y_i = c])``). The fit
is closed-form, so the warm start is ignored; no posterior, no linear head.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.models.registry import register_learner


class CentroidParams(NamedTuple):
    centroids: jax.Array  # (C, d)


class SoftCentroids(NamedTuple):
    n_classes: int
    temperature: float = 1.0
    shrink: float = 1.0

    def init(self, n_features: int) -> CentroidParams:
        return CentroidParams(jnp.zeros((self.n_classes, n_features), jnp.float32))

    def fit(self, params: CentroidParams, x, y, weight) -> CentroidParams:
        onehot = jax.nn.one_hot(jnp.where(y >= 0, y, self.n_classes), self.n_classes, dtype=jnp.float32)
        mass = onehot * weight.astype(jnp.float32)[:, None]  # (M, C)
        sums = mass.T @ x.astype(jnp.float32)  # (C, d)
        return CentroidParams(sums / (self.shrink + jnp.sum(mass, axis=0))[:, None])

    def predict_proba(self, params: CentroidParams, x):
        d2 = jnp.sum((x[:, None, :] - params.centroids[None]) ** 2, axis=-1)
        return jax.nn.softmax(-d2 / self.temperature, axis=-1)

    def posterior(self, params, x, y, weight):
        return None


@register_learner("test_soft_centroids")
def soft_centroids(n_classes: int, temperature: float = 1.0, shrink: float = 1.0) -> SoftCentroids:
    return SoftCentroids(n_classes, float(temperature), float(shrink))
