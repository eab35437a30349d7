"""Simulated annotators for research: gold labels through a noise model, priced from tokens.

A simulated annotator answers item ``i`` (gold class ``y_i``) with class ``j``
drawn from row ``y_i`` of a confusion matrix ``K`` (``K[a, b] = P(answer b |
gold a)``; a flip rate ``f`` is ``K = (1 - f) I + f / (C - 1) (1 - I)``). The
draw uses the key ``fold_in(key, i)``, so an item's answer does not depend on
when, or in which batch, it is asked: the jitted simulator and the live loop
(which calls these same functions through :mod:`alband.annotators.simulated`)
get the same label for the same seed.

Tokens follow the item's text length: ``input = prompt_tokens +
ceil(chars / chars_per_token)``, ``output = output_tokens``, so the dollar cost
is::

    cost_i = (input_i p_in + output p_out) / 1e6 + usd_per_label

and the amount reserved before the request is the byte bound used for real
LLMs (a byte-level BPE token is at least one UTF-8 byte)::

    reserve_i = ((prompt_tokens + bytes_i) p_in + max_output_tokens p_out) / 1e6 + usd_per_label

A human-like gold oracle is ``K = I`` with a price per label and no tokens.
All fields are arrays, so annotators stack and ``vmap`` over settings.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from alband.costs.prices import Price
from alband.errors import AlbandError

Array = jax.Array


class SimulatedAnnotator(NamedTuple):
    """Noise model and price of one simulated annotator (a pytree of arrays)."""

    confusion: Array  # (C, C) row-stochastic
    input_usd_per_mtok: Array  # ()
    output_usd_per_mtok: Array  # ()
    usd_per_label: Array  # ()
    prompt_tokens: Array  # () instructions + label set, per request
    output_tokens: Array  # () tokens of a typical answer
    max_output_tokens: Array  # () the request's max_tokens
    chars_per_token: Array  # ()
    label_weight: Array  # () the learner's weight of this annotator's labels


def flip_confusion(n_classes: int, flip_rate: float) -> np.ndarray:
    """Symmetric noise: the right class with prob ``1 - f``, each other with ``f / (C - 1)``."""
    if not 0.0 <= flip_rate <= 1.0:
        raise AlbandError(f"flip_rate must be in [0, 1], got {flip_rate}")
    if n_classes < 2:
        raise AlbandError(f"a classification task needs >= 2 classes, got {n_classes}")
    off = flip_rate / (n_classes - 1)
    return (np.full((n_classes, n_classes), off) + np.eye(n_classes) * (1.0 - flip_rate - off)).astype(np.float32)


def make_simulated_annotator(
    n_classes: int,
    price: Price,
    *,
    flip_rate: float = 0.0,
    confusion: np.ndarray | None = None,
    prompt_tokens: int = 0,
    output_tokens: int = 0,
    max_output_tokens: int | None = None,
    chars_per_token: float = 4.0,
    label_weight: float = 1.0,
) -> SimulatedAnnotator:
    """Build a simulated annotator; ``confusion`` overrides ``flip_rate``."""
    if confusion is None:
        matrix = flip_confusion(n_classes, flip_rate)
    else:
        matrix = np.asarray(confusion, np.float32)
        if matrix.shape != (n_classes, n_classes):
            raise AlbandError(f"confusion matrix must be {n_classes}x{n_classes}, got {matrix.shape}")
        if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5):
            raise AlbandError("confusion matrix rows must be probabilities summing to 1")
    max_output_tokens = output_tokens if max_output_tokens is None else max_output_tokens
    if min(prompt_tokens, output_tokens) < 0 or max_output_tokens < output_tokens:
        raise AlbandError("token counts must be >= 0 and max_output_tokens >= output_tokens")
    if chars_per_token < 1.0:
        raise AlbandError("chars_per_token must be >= 1 (a token is at least one byte)")
    return SimulatedAnnotator(
        confusion=jnp.asarray(matrix),
        input_usd_per_mtok=jnp.float32(price.input_usd_per_mtok),
        output_usd_per_mtok=jnp.float32(price.output_usd_per_mtok),
        usd_per_label=jnp.float32(price.usd_per_label),
        prompt_tokens=jnp.int32(prompt_tokens),
        output_tokens=jnp.int32(output_tokens),
        max_output_tokens=jnp.int32(max_output_tokens),
        chars_per_token=jnp.float32(chars_per_token),
        label_weight=jnp.float32(label_weight),
    )


def token_counts(annotator: SimulatedAnnotator, text_chars: Array) -> tuple[Array, Array]:
    """Input and output tokens of annotating items with ``text_chars`` characters."""
    text_tokens = jnp.ceil(text_chars.astype(jnp.float32) / annotator.chars_per_token).astype(jnp.int32)
    input_tokens = annotator.prompt_tokens + text_tokens
    return input_tokens, jnp.broadcast_to(annotator.output_tokens, input_tokens.shape)


def annotation_cost_usd(annotator: SimulatedAnnotator, text_chars: Array) -> Array:
    """Dollars billed for each item (module docstring)."""
    input_tokens, output_tokens = token_counts(annotator, text_chars)
    token_usd = (
        input_tokens.astype(jnp.float32) * annotator.input_usd_per_mtok
        + output_tokens.astype(jnp.float32) * annotator.output_usd_per_mtok
    ) / 1e6
    return token_usd + annotator.usd_per_label


def reserve_usd(annotator: SimulatedAnnotator, text_bytes: Array) -> Array:
    """The largest possible cost of each request: the UTF-8 byte bound on input tokens."""
    input_bound = (annotator.prompt_tokens + text_bytes.astype(jnp.int32)).astype(jnp.float32)
    token_usd = (
        input_bound * annotator.input_usd_per_mtok
        + annotator.max_output_tokens.astype(jnp.float32) * annotator.output_usd_per_mtok
    ) / 1e6
    # float32 rounding must never make the bound smaller than the actual cost.
    return (token_usd + annotator.usd_per_label) * (1.0 + 1e-6)


def noisy_labels(annotator: SimulatedAnnotator, key: Array, pool_index: Array, gold: Array) -> Array:
    """The answers to items ``pool_index`` with gold classes ``gold`` (order-independent)."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(pool_index)
    logits = jnp.log(annotator.confusion[gold])
    return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)
