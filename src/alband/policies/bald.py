r"""BALD: Bayesian active learning by disagreement (Houlsby et al. 2011, arXiv 1112.5745; Gal et al. 2017, ICML).

Score each item by the mutual information between its label and the model
parameters,

    I(y; W | x, D) = H[ E_W p(y | x, W) ] - E_W H[ p(y | x, W) ],

estimated with ``S`` posterior samples ``W_s``: the entropy of the mean
predictive minus the mean entropy. It is high where posterior samples disagree
confidently (epistemic uncertainty), unlike the plain entropy, which is also
high where every sample is unsure (aleatoric noise).

**Posterior: Laplace approximation** (MacKay 1992) of the softmax regression
``p(y | x) = softmax(W' x + b)`` around the current fit (``(W, b) = ctx.head``,
the learner's linear head). The
negative log posterior is the learner's objective,
``sum_i CE_i + ||W||_F^2 / (2 c)``; its Hessian in ``W`` is

    H = sum_{i in L} (diag(p_i) - p_i p_i') (x) x_i x_i' + I / c.

Two tractable approximations (``hessian=``):

* ``"block"`` (default): the per-class diagonal blocks
  ``H_c = sum_{i in L} p_ic (1 - p_ic) x_i x_i' + I / c``, a ``(C, d, d)``
  stack; samples ``w_c = w_c* + L_c^{-T} z`` with ``H_c = L_c L_c'`` (Cholesky)
  and ``z ~ N(0, I)``.
* ``"diag"``: the diagonal ``sum_{i in L} p_ic (1 - p_ic) x_ik^2 + 1 / c``;
  samples ``w = w* + z / sqrt(H_diag)``.

The posterior is the learner's own when the round context carries one
(``ctx.posterior``, :meth:`alband.models.SoftmaxRegression.posterior`: the
blocks ``H_c`` over the training buffer with each label's weight, prior
strength the learner's ``c``). A context without one (built by hand) gets the
same blocks over the queried items, ``L = ctx.x[ctx.queried]``, each with
weight 1, at ``ctx.probs``, with prior strength ``prior_c``. The GLM Hessian needs no labels, only ``p_i`` at the current
fit. The block Hessian is accumulated over the labelled rows, O(|L| d^2 C).
``prior_c`` (used only without a learner posterior) should equal the
learner's ``c`` (the inverse L2 strength; default 1.0 like
:class:`~alband.models.SoftmaxRegression`). The
intercept is unpenalised (a flat prior): it is kept at its fitted value, not
sampled. Samples are drawn with the round key, so a seed reproduces them.

Scoring all items is one ``(N, d) x (d, S C)`` product; memory O(N S C).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.models.softmax_regression import SoftmaxParams, diagonal_blocks
from alband.policies.base import QueryPolicy, RoundContext, score_policy
from alband.policies.registry import register_policy
from alband.policies._chunked import fold_masked_rows

Array = jax.Array
Hessian = Literal["block", "diag"]
HESSIANS = ("block", "diag")


def laplace_precision_diag(x: Array, probs: Array, labelled: Array, prior_c: float) -> Array:
    """Diagonal of the Laplace precision of ``W``, shape (d, C) (module docstring)."""
    curvature = jnp.where(labelled[:, None], probs * (1.0 - probs), 0.0)
    x = x.astype(jnp.float32)
    return (x * x).T @ curvature + 1.0 / prior_c


def laplace_precision_blocks(x: Array, probs: Array, labelled: Array, prior_c: float, *, block_rows: int = 256) -> Array:
    """Per-class blocks ``H_c`` of the Laplace precision of ``W``, shape (C, d, d)."""
    n, d = x.shape
    c = probs.shape[1]
    x = x.astype(jnp.float32)
    curvature = probs * (1.0 - probs)

    def fold(H, rows, valid):
        xb = x[rows]
        wb = jnp.where(valid[:, None], curvature[rows], 0.0)
        weighted = wb.T[:, :, None] * xb[None]  # (C, block, d)
        return H + jnp.matmul(jnp.swapaxes(weighted, 1, 2), xb)  # one batched GEMM

    H = fold_masked_rows(fold, jnp.zeros((c, d, d), jnp.float32), labelled, block_rows)
    return H + jnp.eye(d, dtype=jnp.float32)[None] / prior_c


@partial(jax.jit, static_argnames=("n_samples", "hessian"))
def laplace_weight_samples(
    params: SoftmaxParams,
    x: Array,
    probs: Array,
    labelled: Array,
    key: Array,
    n_samples: int,
    *,
    prior_c: float = 1.0,
    hessian: Hessian = "block",
) -> Array:
    """``n_samples`` draws of ``W`` (S, d, C) from the Laplace posterior of the ``labelled`` pool rows around ``params``."""
    if hessian == "diag":
        precision = laplace_precision_diag(x, probs, labelled, prior_c)
    else:
        precision = laplace_precision_blocks(x, probs, labelled, prior_c)
    return weight_samples(params.w, precision, key, n_samples)


def weight_samples(w: Array, precision: Array, key: Array, n_samples: int) -> Array:
    """``n_samples`` draws of ``W`` (S, d, C) around ``w`` given blocks ``H_c`` (C, d, d) or a diagonal (d, C)."""
    w = w.astype(jnp.float32)
    d, c = w.shape
    z = jax.random.normal(key, (n_samples, d, c), jnp.float32)
    if precision.ndim == 2:
        return w[None] + z / jnp.sqrt(precision)[None]
    L = jnp.linalg.cholesky(precision)  # (C, d, d), H_c = L_c L_c'

    def per_class(L_c, z_c):  # z_c: (d, S) -> L_c^{-T} z_c
        return jax.scipy.linalg.solve_triangular(L_c, z_c, lower=True, trans="T")

    noise = jax.vmap(per_class)(L, jnp.transpose(z, (2, 1, 0)))  # (C, d, S)
    return w[None] + jnp.transpose(noise, (2, 1, 0))


def sample_probabilities(x: Array, weight_samples: Array, bias: Array) -> Array:
    """Predictive probabilities under every sample, shape (S, N, C)."""
    s, d, c = weight_samples.shape
    logits = x.astype(jnp.float32) @ jnp.transpose(weight_samples, (1, 0, 2)).reshape(d, s * c)
    logits = logits.reshape(x.shape[0], s, c) + bias
    return jnp.transpose(jax.nn.softmax(logits, axis=-1), (1, 0, 2))


def _entropy(p: Array) -> Array:
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def mutual_information(sample_probs: Array) -> Array:
    """``H[mean_s p_s] - mean_s H[p_s]`` per item from (S, N, C) probabilities, clamped at 0."""
    return jnp.maximum(_entropy(jnp.mean(sample_probs, axis=0)) - jnp.mean(_entropy(sample_probs), axis=0), 0.0)


@partial(jax.jit, static_argnames=("n_samples", "hessian"))
def bald_scores(
    ctx: RoundContext, key: Array, *, n_samples: int = 20, prior_c: float = 1.0, hessian: Hessian = "block"
) -> Array:
    """BALD mutual information of every pool item under the Laplace posterior (module docstring)."""
    if ctx.head is None:
        raise AlbandError("bald needs a learner whose probabilities are softmax(x W + b) (a linear head)")
    w, b = ctx.head
    if ctx.posterior is None:
        samples = laplace_weight_samples(
            SoftmaxParams(w, b), ctx.x, ctx.probs, ctx.queried, key, n_samples, prior_c=prior_c, hessian=hessian
        )
    else:
        blocks = ctx.posterior.blocks  # (C, d, d)
        if blocks is None:
            blocks = diagonal_blocks(ctx.posterior.precision, w.shape[1])
        precision = jnp.diagonal(blocks, axis1=1, axis2=2).T if hessian == "diag" else blocks
        samples = weight_samples(w, precision, key, n_samples)
    return mutual_information(sample_probabilities(ctx.x, samples, b.astype(jnp.float32)))


def check_bald_options(n_samples: int, prior_c: float, hessian: str) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise AlbandError(f"bald: n_samples must be an integer >= 2, got {n_samples!r}")
    if not (isinstance(prior_c, (int, float)) and prior_c > 0):
        raise AlbandError(f"bald: prior_c (the learner's inverse L2 strength) must be > 0, got {prior_c!r}")
    if hessian not in HESSIANS:
        raise AlbandError(f"bald: hessian must be one of {', '.join(HESSIANS)}, got {hessian!r}")


@register_policy("bald")
def bald(n_samples: int = 20, prior_c: float = 1.0, hessian: Hessian = "block") -> QueryPolicy:
    """Top-``B`` mutual information under a Laplace posterior of the softmax regression."""
    check_bald_options(n_samples, prior_c, hessian)
    return score_policy(
        "bald", lambda ctx, key: bald_scores(ctx, key, n_samples=n_samples, prior_c=float(prior_c), hessian=hessian)
    )
