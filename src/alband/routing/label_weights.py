"""The learner's weight of a label bought from one of several annotators of different quality.

A label from annotator (arm) ``k`` is right with an unknown probability
``a_k``. Weighting its log-loss term by ``w_k`` in the learner's objective
(:func:`alband.models.softmax_regression.fit`: ``sum_j w_j log p(y_j | x_j) -
||W||^2 / 2c``) can be read as keeping the label only when it is right: the
expected loss of such a label is ``a_k * loss``, so ``w_k = a_k`` is the
expectation, under the arm's accuracy, of the weight a clean label gets (the
reliability weighting of crowdsourcing models; Dawid and Skene 1979, Raykar
et al. 2010, with the item's posterior replaced by its arm's mean accuracy).

Three modes (``label_weight``):

* ``"none"``: ``w_k = 1`` for every arm;
* ``"configured"``: ``w_k`` = the weight set for the annotator in its
  configuration (``label_weight``, default 1);
* ``"audited"``: ``w_k`` = the posterior mean accuracy of arm ``k`` learned
  from the audits so far. Each observed verdict (the arm's answer agrees with
  the auditor's, or with the gold label in the free-feedback setting) is a
  Bernoulli draw of ``a_k``; with a uniform prior ``a_k ~ Beta(1, 1)``, after
  ``A_k`` agreements and ``D_k`` disagreements::

      a_k | verdicts ~ Beta(1 + A_k, 1 + D_k),   w_k = E[a_k] = (1 + A_k) / (2 + A_k + D_k)

  The auditor is taken as truth: its weight is 1. An arm never audited has
  weight 1/2 (the prior mean).

The weights of *every* label bought so far are recomputed from the current
counts before each refit (:func:`refresh_weights`), so early labels get the
estimate of their arm that later audits made more precise. The simulator
(:mod:`alband.simulate.episode`) and the live loop (:mod:`alband.loop`) call
these same functions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.pool import LabelState

Array = jax.Array

LABEL_WEIGHT_MODES = ("none", "configured", "audited")


class VerdictCounts(NamedTuple):
    """Observed verdicts per arm: agreements and disagreements with the auditor (float32, (K,))."""

    agree: Array
    disagree: Array


def check_label_weight(mode: str) -> str:
    """``mode`` if it names a weighting mode, else :class:`AlbandError`."""
    if mode not in LABEL_WEIGHT_MODES:
        raise AlbandError(f"label_weight must be one of {', '.join(LABEL_WEIGHT_MODES)}, got {mode!r}")
    return mode


def empty_counts(n_arms: int) -> VerdictCounts:
    return VerdictCounts(jnp.zeros((n_arms,), jnp.float32), jnp.zeros((n_arms,), jnp.float32))


def record_verdicts(counts: VerdictCounts, observed: Array, verdict: Array) -> VerdictCounts:
    """Add one item's verdicts (``verdict`` 1 = agrees) where ``observed`` holds."""
    seen = observed.astype(jnp.float32)
    agree = (verdict > 0.5).astype(jnp.float32)
    return VerdictCounts(counts.agree + seen * agree, counts.disagree + seen * (1.0 - agree))


def audited_accuracy(counts: VerdictCounts, auditor: int | Array) -> Array:
    """(K,) posterior mean accuracy ``(1 + A_k) / (2 + A_k + D_k)``; 1 for the auditor."""
    mean = (1.0 + counts.agree) / (2.0 + counts.agree + counts.disagree)
    is_auditor = jnp.arange(mean.shape[0]) == auditor
    return jnp.where(is_auditor, 1.0, mean).astype(jnp.float32)


def arm_weights(mode: str, counts: VerdictCounts, configured: Array, auditor: int | Array) -> Array:
    """(K,) the learner's weight of a label from each arm under ``mode`` (module docstring)."""
    check_label_weight(mode)
    configured = jnp.asarray(configured, jnp.float32)
    if mode == "none":
        return jnp.ones_like(configured)
    if mode == "configured":
        return configured
    return audited_accuracy(counts, auditor)


def refresh_weights(state: LabelState, slot_arm: Array, weight: Array) -> LabelState:
    """``state`` with every bought label re-weighted: slot ``j`` gets ``weight[slot_arm[j]]``.

    Empty slots and invalid answers keep weight 0.
    """
    capacity = state.train_index.shape[0]
    filled = (jnp.arange(capacity) < state.n_train) & (state.train_label >= 0) & (slot_arm >= 0)
    per_slot = jnp.asarray(weight, jnp.float32)[jnp.clip(slot_arm, 0, weight.shape[0] - 1)]
    return state._replace(train_weight=jnp.where(filled, per_slot, 0.0).astype(jnp.float32))
