r"""Information density (Settles and Craven 2008, EMNLP; Settles 2009, section 5.1).

Uncertainty sampling favours outliers; information density weighs an item's
uncertainty ``phi(x_i)`` by how representative it is of the unlabelled pool
``U``:

    score_i = phi(x_i) * ( (1/|U|) sum_{u in U} sim(x_i, x_u) )^beta,

with cosine similarity. For L2-normalised rows ``xh_i = x_i / ||x_i||`` the mean
similarity is a single dot product,

    (1/|U|) sum_u xh_i' xh_u = xh_i' m,   m = (1/|U|) sum_{u in U} xh_u,

so the whole score is one O(N d) pass, never an ``N x N`` matrix. ``U`` is the
unqueried items (the whole pool when none is left); the sum includes ``i``
itself, as in the paper. Embeddings, unlike the paper's non-negative
term-frequency vectors, can have negative cosine similarity: the mean
similarity is clamped at 0 before the power (an item dissimilar to the pool on
average is not representative). Rows of zero norm have similarity 0.

``phi`` (``measure=``): ``"entropy"`` (default), ``"least_confidence"`` or
``"margin"`` as ``1 - (p_(1) - p_(2))`` -- all non-negative, so the product
orders items sensibly. ``beta = 0`` is plain uncertainty sampling.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.policies.base import QueryPolicy, score_policy
from alband.policies.registry import register_policy
from alband.policies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

Array = jax.Array
Measure = Literal["entropy", "least_confidence", "margin"]
MEASURES = ("entropy", "least_confidence", "margin")


def uncertainty(probs: Array, measure: Measure = "entropy") -> Array:
    """A non-negative uncertainty of every item: entropy, ``1 - max p`` or ``1 - margin``."""
    if measure == "entropy":
        return entropy_scores(probs)
    if measure == "least_confidence":
        return least_confidence_scores(probs)
    if measure == "margin":
        return 1.0 + margin_scores(probs)
    raise AlbandError(f"unknown uncertainty measure {measure!r}; choose one of {', '.join(MEASURES)}")


def mean_cosine_similarity(x: Array, over: Array) -> Array:
    """``(1/|U|) sum_{u in U} cos(x_i, x_u)`` for every row, ``U`` = rows where ``over`` (all rows if none)."""
    x = x.astype(jnp.float32)
    norms = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True))
    unit = jnp.where(norms > 0, x / jnp.where(norms > 0, norms, 1.0), 0.0)
    over = jnp.where(jnp.any(over), over, jnp.ones_like(over))
    weights = over.astype(jnp.float32) / jnp.sum(over)
    return unit @ (weights @ unit)


@partial(jax.jit, static_argnames=("measure",))
def information_density_scores(
    probs: Array, x: Array, queried: Array, *, beta: float = 1.0, measure: Measure = "entropy"
) -> Array:
    """``phi(x_i) * max(mean cosine similarity to the unqueried pool, 0)^beta`` (module docstring)."""
    density = jnp.maximum(mean_cosine_similarity(x, ~queried), 0.0)
    return uncertainty(probs, measure) * density ** jnp.float32(beta)


def check_density_options(beta: float, measure: str) -> None:
    if not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta >= 0):
        raise AlbandError(f"information_density: beta must be a number >= 0, got {beta!r}")
    if measure not in MEASURES:
        raise AlbandError(f"information_density: measure must be one of {', '.join(MEASURES)}, got {measure!r}")


@register_policy("information_density")
def information_density(beta: float = 1.0, measure: Measure = "entropy") -> QueryPolicy:
    """Top-``B`` of uncertainty x representativeness (module docstring)."""
    check_density_options(beta, measure)
    return score_policy(
        "information_density",
        lambda ctx, key: information_density_scores(ctx.probs, ctx.x, ctx.queried, beta=float(beta), measure=measure),
    )
