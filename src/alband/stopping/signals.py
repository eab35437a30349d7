"""What a round reveals to a stopping rule: agreement of successive models on a stop set, confidence, uncertainty.

The **stop set** (Bloodgood and Vijay-Shanker 2009) is a fixed random subset
of the pool (``min(size, N)`` items, drawn once per run from the key
:func:`stop_set_key`), on which every round's model predicts. Between the
models of rounds ``r - 1`` and ``r`` the signals are:

* **Cohen's kappa** of the two prediction vectors ``a`` and ``b`` over ``C``
  classes::

      p_o = mean(a == b),   p_e = sum_c P(a = c) P(b = c),
      kappa = (p_o - p_e) / (1 - p_e)

  When ``p_e = 1`` (both models predict one and the same class for every
  item) the ratio is 0/0; kappa is then 1 (the models agree perfectly) -- and
  0 if ``p_o < 1``, which cannot happen with ``p_e = 1`` but keeps the
  function total.
* **change rate**: ``1 - p_o``, the share of stop-set items whose predicted
  class changed (Zhu et al. 2008's "classification change");
* **mean confidence**: ``mean_i max_c p_c(x_i)`` of the round's model on the
  stop set; ``1 - mean confidence`` is the model's own estimate of its error
  rate (exact if the model is calibrated; Zhu et al. 2010's "overall
  uncertainty");
* **batch uncertainty**: ``max_i (1 - max_c p_c(x_i))`` over the items the
  policy proposed in the round, under the model that proposed them (Zhu et
  al. 2010's "maximum uncertainty").

The signals are computed by the same jitted functions in the simulator
(:func:`alband.simulate.simulate`, inside its ``lax.scan``) and in the live
loop, so a stopping rule sees the same history in both.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.models.softmax_regression import SoftmaxParams, accuracy, predict_proba

Array = jax.Array

# ``fold_in`` constant that derives the stop-set key from a run's init key.
STOP_SET_STREAM = 0x5709


def stop_set_key(init_key: Array) -> Array:
    """The key of a run's stop set, derived from its init key (:func:`alband.rounds.run_keys`)."""
    return jax.random.fold_in(init_key, STOP_SET_STREAM)


@partial(jax.jit, static_argnums=(1, 2))
def stop_set_indices(key: Array, n_items: int, size: int) -> Array:
    """``min(size, n_items)`` distinct pool indices drawn uniformly at random."""
    size = min(int(size), int(n_items))
    return jax.lax.top_k(jax.random.uniform(key, (n_items,)), size)[1].astype(jnp.int32)


def cohens_kappa(a: Array, b: Array, n_classes: int) -> Array:
    """Cohen's kappa of two label vectors (module docstring); float32 scalar."""
    a = jnp.asarray(a, jnp.int32)
    b = jnp.asarray(b, jnp.int32)
    classes = jnp.arange(n_classes)
    share_a = jnp.mean((a[:, None] == classes).astype(jnp.float32), axis=0)
    share_b = jnp.mean((b[:, None] == classes).astype(jnp.float32), axis=0)
    p_o = jnp.mean((a == b).astype(jnp.float32))
    p_e = jnp.sum(share_a * share_b)
    degenerate = p_e >= 1.0 - 1e-7
    safe = jnp.where(degenerate, 0.5, 1.0 - p_e)
    return jnp.where(degenerate, jnp.where(p_o >= 1.0 - 1e-7, 1.0, 0.0), (p_o - p_e) / safe).astype(jnp.float32)


@jax.jit
def stop_set_signals(params: SoftmaxParams, x_stop: Array, previous: Array, has_previous: Array):
    """:func:`prediction_signals` of a softmax regression's ``params`` on the stop set ``x_stop``."""
    return prediction_signals(predict_proba(params, x_stop), previous, has_previous)


def prediction_signals(probs: Array, previous: Array, has_previous: Array):
    """Predictions on the stop set (its probabilities ``probs``) and the signals against ``previous``.

    Returns ``(predictions (S,) int32, kappa, change_rate, mean_confidence)``;
    kappa and change rate are NaN when ``has_previous`` is False (round 0).
    Any learner: the round (:func:`alband.rounds.after_buy`) passes its
    ``predict_proba`` on the stop set.
    """
    pred = jnp.argmax(probs, axis=-1).astype(jnp.int32)
    kappa = cohens_kappa(previous, pred, probs.shape[-1])
    change = jnp.mean((previous != pred).astype(jnp.float32))
    nan = jnp.float32(jnp.nan)
    return (
        pred,
        jnp.where(has_previous, kappa, nan),
        jnp.where(has_previous, change, nan),
        jnp.mean(jnp.max(probs, axis=-1)),
    )


def batch_uncertainty(probs_of_batch: Array) -> Array:
    """Largest least-confidence ``1 - max_c p_c`` among the proposed items (rows)."""
    return jnp.max(1.0 - jnp.max(probs_of_batch, axis=-1))


@jax.jit
def batch_uncertainty_of(params: SoftmaxParams, x_batch: Array) -> Array:
    """:func:`batch_uncertainty` of the items ``x_batch`` under ``params`` (the live loop's form)."""
    return batch_uncertainty(predict_proba(params, x_batch))


@jax.jit
def validation_accuracy(params: SoftmaxParams, x_val: Array, y_val: Array) -> Array:
    """Accuracy on a labelled validation set."""
    return accuracy(params, x_val, y_val)
