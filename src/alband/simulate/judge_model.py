r"""Simulated preference judges: gold through a flip rate or Bradley-Terry noise, position bias, ties.

A judge sees a pair (response ``A`` shown first, ``B`` second; gold label
``g = 0`` if ``A`` is better, ``1`` if ``B`` is) and answers ``0`` ("first"),
``1`` ("second") or ``-1`` (a tie or refusal: an invalid answer, paid but
not a label). The noise model, per pair ``i`` with true reward margin ``m_i``:

    s_i = sigmoid(beta |m_i|)                (1 when beta = inf: margin-free)
    c_i = (1 - f) s_i + f (1 - s_i)          P(the judge's unbiased answer is right)
    P(answer "first" | gold g) = b + (1 - b) (c_i if g = 0 else 1 - c_i)
    P(tie) = t, drawn independently; a tie replaces the answer by -1.

* ``f`` (``flip_rate``): symmetric label noise.
* ``beta``: Bradley-Terry noise; with ``beta = 1`` and ``f = 0`` the judge
  samples from the Bradley-Terry model of the true rewards
  (``P(A preferred) = sigmoid(m)``), the assumption of every BT learner here;
  a larger ``beta`` is a more decisive judge; close calls stay noisy.
* ``b`` (``position_bias``): with probability ``b`` the judge answers
  "first" whatever is shown (LLM judges' documented preference for the
  first position: Zheng et al. 2023, "Judging LLM-as-a-judge with MT-Bench
  and Chatbot Arena"; Wang et al. 2023, "Large language models are not fair
  evaluators").

Relation to :class:`~alband.simulate.annotator_model.SimulatedAnnotator`.
With ``beta = inf`` the answer distribution is one 2x2 confusion matrix for
every pair,

    K = (1 - b) [[1 - f, f], [f, 1 - f]] + b [[1, 0], [1, 0]],

an *asymmetric* matrix when ``b > 0`` (:func:`judge_confusion`): the judge is a
2-class ``SimulatedAnnotator`` and the existing simulator buys pairs
unchanged, priced from tokens as any annotator. :func:`judge_answers` then
returns exactly the simulator's answers (:func:`noisy_labels` with the same
``fold_in(key, i)`` draws; tested). Two things cannot be expressed by a
confusion matrix and are the only additions here: the margin-dependent
noise (``beta < inf``: a per-pair matrix, so the draw needs the true margin,
known in a synthetic world) and ties (a third, invalid outcome, drawn from
``fold_in(fold_in(key, i), 1)`` so it does not disturb the answer draw). A
tie is billed like any answer. Every draw depends only on ``(key, i)``, so an
answer does not depend on when or in which batch the pair is asked.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from alband.costs.prices import Price
from alband.errors import AlbandError
from alband.simulate.annotator_model import SimulatedAnnotator, make_simulated_annotator, noisy_labels

Array = jax.Array


class PairJudge(NamedTuple):
    """A simulated judge: a 2-class annotator (confusion at ``beta = inf``, price) plus what it cannot hold."""

    annotator: SimulatedAnnotator
    flip_rate: Array  # () f
    position_bias: Array  # () b
    beta: Array  # () Bradley-Terry sharpness; inf = margin-free
    tie_rate: Array  # () t


def judge_confusion(flip_rate: float, position_bias: float) -> np.ndarray:
    """``K = (1 - b) [[1 - f, f], [f, 1 - f]] + b [[1, 0], [1, 0]]`` (module docstring)."""
    for name, value in (("flip_rate", flip_rate), ("position_bias", position_bias)):
        if not 0.0 <= value <= 1.0:
            raise AlbandError(f"{name} must be in [0, 1], got {value}")
    f, b = flip_rate, position_bias
    return ((1 - b) * np.array([[1 - f, f], [f, 1 - f]]) + b * np.array([[1.0, 0.0], [1.0, 0.0]])).astype(np.float32)


def make_pair_judge(price: Price, *, flip_rate: float = 0.0, position_bias: float = 0.0,
                    beta: float = float("inf"), tie_rate: float = 0.0, **annotator_options) -> PairJudge:
    """A judge with the module docstring's noise; ``annotator_options`` go to the token pricing."""
    if not beta > 0:
        raise AlbandError(f"beta must be > 0 (inf for margin-free noise), got {beta}")
    if not 0.0 <= tie_rate < 1.0:
        raise AlbandError(f"tie_rate must be in [0, 1), got {tie_rate}")
    annotator = make_simulated_annotator(2, price, confusion=judge_confusion(flip_rate, position_bias),
                                         **annotator_options)
    return PairJudge(annotator, jnp.float32(flip_rate), jnp.float32(position_bias), jnp.float32(beta),
                     jnp.float32(tie_rate))


def answer_probabilities(judge: PairJudge, gold: Array, true_margin: Array | None = None) -> Array:
    """``P(answer "first")`` of each pair before ties (module docstring), shape (n,)."""
    if true_margin is None:
        return judge.annotator.confusion[gold, 0]
    s = jnp.where(jnp.isinf(judge.beta), 1.0, jax.nn.sigmoid(judge.beta * jnp.abs(true_margin)))
    c = (1.0 - judge.flip_rate) * s + judge.flip_rate * (1.0 - s)
    right_is_first = gold == 0
    return judge.position_bias + (1.0 - judge.position_bias) * jnp.where(right_is_first, c, 1.0 - c)


def judge_answers(judge: PairJudge, key: Array, pair_index: Array, gold: Array,
                  true_margin: Array | None = None) -> Array:
    """The judge's answers (0 first, 1 second, -1 tie) to pairs ``pair_index`` (order-independent).

    Without ``true_margin`` (or with ``beta = inf``) the answers are the
    2-class annotator's (:func:`noisy_labels`) before ties.
    """
    if true_margin is None:
        answers = noisy_labels(judge.annotator, key, pair_index, gold)
    else:
        p_first = answer_probabilities(judge, gold, true_margin)
        logits = jnp.log(jnp.stack([p_first, 1.0 - p_first], axis=-1))
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(pair_index)
        answers = jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)
    tie_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), 1))(pair_index)
    ties = jax.vmap(lambda k: jax.random.uniform(k))(tie_keys) < judge.tie_rate
    return jnp.where(ties, -1, answers).astype(jnp.int32)
