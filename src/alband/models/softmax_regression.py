"""L2-regularised multinomial logistic regression on embeddings, fitted with optax L-BFGS.

Objective (the one scikit-learn's ``LogisticRegression(C=c)`` minimises, with
per-example weights ``w_i`` and an unpenalised intercept)::

    L(W, b) = sum_i w_i * CE(softmax(W' x_i + b), y_i) + ||W||_F^2 / (2 c)

It is minimised by L-BFGS (``optax.lbfgs`` with its zoom line search) inside a
``lax.while_loop`` that stops when the gradient's infinity norm falls below
``tol`` (on the objective divided by ``max(sum w, 1)``, which leaves the minimiser
unchanged and keeps the scale independent of the number of labels) or after
``max_iter`` iterations. Fitting is warm-started from the previous round's
parameters, so later rounds take a handful of iterations.

With two classes the model keeps one weight vector per class, and the
penalty on both makes it scikit-learn's binary ``LogisticRegression(C=2c)``
(the binary weight is ``w_1 - w_0`` with ``w_0 = -w_1`` at the optimum):
use ``c = C / 2`` to match a binary ``C``; with three or more classes ``c = C``.

Gradient. With ``P = softmax(X W + b)`` and ``G = diag(w) (P - Y) / sum(w)``
(``Y`` one-hot), ``dL/dW = X' G + W / (c sum w)`` and ``dL/db = 1' G``. The
objective carries this gradient as a hand-written VJP that multiplies by an
explicitly transposed copy of ``X`` (made once per fit): reverse-mode autodiff of
``X @ W`` produces a contraction over the rows of ``X`` that the CPU backend
runs about 6x slower than the same product on ``X'``, and one fit evaluates
the gradient dozens of times.

Posterior. :meth:`SoftmaxRegression.posterior` is the Laplace approximation
(MacKay 1992) around the fit. The negative log posterior is the objective
times ``sum w`` (a Gaussian prior ``N(0, c I)`` on ``W``, a flat one on the
intercept); its Hessian in ``W`` is
``H = sum_i w_i (diag(p_i) - p_i p_i') (x) x_i x_i' + I / c``. The posterior
keeps its per-class diagonal blocks
``H_c = sum_i w_i p_ic (1 - p_ic) x_i x_i' + I / c`` (the cross-class blocks
are dropped, as in BALD's usual Laplace: :mod:`alband.policies.bald`), over
``vec(W)`` class by class (entry ``c d + k`` is ``W[k, c]``); the intercept is
kept at its fitted value.

Everything is jittable and vmappable; the model hyper-parameters are a
hashable :class:`SoftmaxRegression` passed as a static argument, and it is a
:class:`alband.models.base.Learner` (``init``, ``fit``, ``predict_proba``,
``posterior``, ``linear_head``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from alband.errors import AlbandError
from alband.kernels import narrow_matmul
from alband.models.base import GaussianPosterior
from alband.models.registry import register_learner

Array = jax.Array


class SoftmaxRegression(NamedTuple):
    """Hyper-parameters (static): classes, inverse L2 strength ``c`` as scikit-learn.

    A :class:`alband.models.base.Learner`: the methods call this module's functions.
    """

    n_classes: int
    c: float = 1.0
    max_iter: int = 200
    tol: float = 1e-5

    def init(self, n_features: int) -> "SoftmaxParams":
        return init_params(self, n_features)

    def fit(self, params: "SoftmaxParams", x: Array, y: Array, weight: Array) -> "SoftmaxParams":
        return fit(self, params, x, y, weight)

    def predict_proba(self, params: "SoftmaxParams", x: Array) -> Array:
        return predict_proba(params, x)

    def predict(self, params: "SoftmaxParams", x: Array) -> Array:
        """Most probable class per row, from the logits (:func:`predict`)."""
        return predict(params, x)

    def posterior(self, params: "SoftmaxParams", x: Array, y: Array, weight: Array) -> GaussianPosterior:
        """The block-diagonal Laplace posterior of ``vec(W)`` (module docstring)."""
        return laplace_posterior(params, x, weight, self.c)

    def linear_head(self, params: "SoftmaxParams") -> tuple[Array, Array]:
        """``(W, b)``: the probabilities are ``softmax(x W + b)``."""
        return params.w, params.b


class SoftmaxParams(NamedTuple):
    """Weights ``w`` (d, C) and intercept ``b`` (C,)."""

    w: Array
    b: Array


def init_params(model: SoftmaxRegression, n_features: int) -> SoftmaxParams:
    """All-zero parameters: the uniform predictive distribution."""
    return SoftmaxParams(
        jnp.zeros((n_features, model.n_classes), jnp.float32),
        jnp.zeros((model.n_classes,), jnp.float32),
    )


def logits(params: SoftmaxParams, x: Array) -> Array:
    """``x W + b``, shape (n, C); large pools go through the native narrow product
    (:func:`alband.kernels.narrow_matmul`, XLA's ``x @ W`` otherwise)."""
    return narrow_matmul(x, params.w) + params.b


def predict_proba(params: SoftmaxParams, x: Array) -> Array:
    """Class probabilities ``softmax(x W + b)``, shape (n, C)."""
    return jax.nn.softmax(logits(params, x), axis=-1)


def predict(params: SoftmaxParams, x: Array) -> Array:
    """Most probable class per row."""
    return jnp.argmax(logits(params, x), axis=-1).astype(jnp.int32)


@jax.jit
def accuracy(params: SoftmaxParams, x: Array, y: Array) -> Array:
    """Share of rows whose most probable class equals ``y``."""
    return jnp.mean((predict(params, x) == y).astype(jnp.float32))


def _objective(params: SoftmaxParams, x: Array, y: Array, weight: Array, c: float) -> Array:
    """The objective (module docstring) by plain autodiff-able ops: the reference for :func:`objective_fn`."""
    logits = x @ params.w + params.b
    safe_y = jnp.clip(y, 0, logits.shape[-1] - 1)
    cross_entropy = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(
        logits, safe_y[:, None], axis=-1
    )[:, 0]
    total = jnp.sum(weight * cross_entropy) + 0.5 / c * jnp.sum(params.w**2)
    return total / jnp.maximum(jnp.sum(weight), 1.0)


def objective_fn(x: Array, y: Array, weight: Array, c: float):
    """``params -> L(params) / max(sum w, 1)`` with the hand-written gradient of the module docstring.

    Rows with weight 0 do not contribute. The value equals :func:`_objective`;
    the gradient equals its autodiff gradient up to float rounding, at a
    fraction of the cost. Only ``params`` is differentiated.
    """
    weight = weight.astype(jnp.float32)
    # One explicit copy of X' per fit; the barrier keeps XLA from folding the
    # transpose back into a row-contracting product.
    x_t = jax.lax.optimization_barrier(jnp.transpose(x))
    return partial(_loss, x=x, x_t=x_t, y=y, weight=weight, c=c)


def _loss_parts(params: SoftmaxParams, x: Array, y: Array, weight: Array, c: float):
    scale = 1.0 / jnp.maximum(jnp.sum(weight), 1.0)
    logits = x @ params.w + params.b
    n_classes = logits.shape[-1]
    safe_y = jnp.clip(y, 0, n_classes - 1)
    top = jnp.max(logits, axis=-1, keepdims=True)
    exp = jnp.exp(logits - top)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    cross_entropy = (jnp.log(total) + top)[:, 0] - jnp.take_along_axis(logits, safe_y[:, None], axis=-1)[:, 0]
    value = (jnp.sum(weight * cross_entropy) + 0.5 / c * jnp.sum(params.w**2)) * scale
    residual = (weight * scale)[:, None] * (exp / total - jax.nn.one_hot(safe_y, n_classes, dtype=exp.dtype))
    return value, residual, scale


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _loss(params: SoftmaxParams, x: Array, x_t: Array, y: Array, weight: Array, c: float) -> Array:
    return _loss_parts(params, x, y, weight, c)[0]


def _loss_forward(params, x, x_t, y, weight, c):
    value, residual, scale = _loss_parts(params, x, y, weight, c)
    return value, (residual, scale, params.w, x, x_t, y, weight)


def _loss_backward(c, saved, cotangent):
    residual, scale, w, x, x_t, y, weight = saved
    grad = SoftmaxParams(x_t @ residual + w * (scale / c), jnp.sum(residual, axis=0))
    # The data are not differentiated: zero cotangents (removed by XLA when unused).
    return (jax.tree.map(lambda g: cotangent * g, grad), jnp.zeros_like(x), jnp.zeros_like(x_t),
            jnp.zeros_like(y, dtype=jax.dtypes.float0) if jnp.issubdtype(y.dtype, jnp.integer) else jnp.zeros_like(y),
            jnp.zeros_like(weight))


_loss.defvjp(_loss_forward, _loss_backward)


@partial(jax.jit, static_argnums=0)
def fit(
    model: SoftmaxRegression, params: SoftmaxParams, x: Array, y: Array, weight: Array
) -> SoftmaxParams:
    """Minimise the objective from ``params`` (warm start); rows with weight 0 are ignored."""
    objective = objective_fn(x, y, weight, model.c)
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        p, opt_state, it = carry
        value, grad = value_and_grad(p, state=opt_state)
        updates, opt_state = solver.update(grad, opt_state, p, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(p, updates), opt_state, it + 1

    def keep_going(carry):
        p, opt_state, it = carry
        grad_norm = optax.tree.norm(optax.tree.get(opt_state, "grad"), ord=jnp.inf)
        return (it < model.max_iter) & (grad_norm >= model.tol)

    # The first gradient is computed here and handed to the solver's state, so an
    # already converged warm start costs one evaluation and no step.
    value, grad = jax.value_and_grad(objective)(params)
    opt_state = optax.tree.set(solver.init(params), value=value, grad=grad)
    params, _, _ = jax.lax.while_loop(keep_going, step, (params, opt_state, 0))
    return params


def laplace_precision_blocks(params: SoftmaxParams, x: Array, weight: Array, c: float) -> Array:
    """The blocks ``H_c = sum_i w_i p_ic (1 - p_ic) x_i x_i' + I / c``, shape (C, d, d) (module docstring)."""
    x = x.astype(jnp.float32)
    probs = predict_proba(params, x)
    curvature = weight.astype(jnp.float32)[:, None] * probs * (1.0 - probs)  # (M, C)
    weighted = curvature.T[:, :, None] * x[None]  # (C, M, d)
    blocks = jnp.matmul(jnp.swapaxes(weighted, 1, 2), x)  # one batched GEMM
    return blocks + jnp.eye(x.shape[1], dtype=jnp.float32)[None] / c


def block_diagonal(blocks: Array) -> Array:
    """``(C, d, d)`` blocks as one ``(C d, C d)`` block-diagonal matrix."""
    n_blocks, d, _ = blocks.shape
    eye = jnp.eye(n_blocks, dtype=blocks.dtype)
    return (eye[:, None, :, None] * blocks[:, :, None, :]).reshape(n_blocks * d, n_blocks * d)


def diagonal_blocks(precision: Array, n_blocks: int) -> Array:
    """The ``(C, d, d)`` diagonal blocks of a ``(C d, C d)`` matrix (inverse of :func:`block_diagonal`)."""
    d = precision.shape[0] // n_blocks
    grid = precision.reshape(n_blocks, d, n_blocks, d)
    return jax.vmap(lambda k: grid[k, :, k, :])(jnp.arange(n_blocks))


def laplace_posterior(params: SoftmaxParams, x: Array, weight: Array, c: float) -> GaussianPosterior:
    """``N(vec(W*), blockdiag(H_1..H_C)^{-1})`` over ``W`` class by class (module docstring)."""
    blocks = laplace_precision_blocks(params, x, weight, c)
    return GaussianPosterior(jnp.transpose(params.w).reshape(-1).astype(jnp.float32), block_diagonal(blocks), blocks)


@register_learner("softmax_regression")
def softmax_regression(n_classes: int, c: float = 1.0, max_iter: int = 200, tol: float = 1e-5) -> SoftmaxRegression:
    """L2-regularised multinomial logistic regression (scikit-learn's objective), fitted with L-BFGS under jit.

    The registered factory: checks the hyper-parameters, returns the hashable learner.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise AlbandError(f"learner 'softmax_regression': n_classes must be an integer >= 2, got {n_classes!r}")
    if not (isinstance(c, (int, float)) and c > 0):
        raise AlbandError(f"learner 'softmax_regression': c must be > 0, got {c!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise AlbandError(f"learner 'softmax_regression': max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise AlbandError(f"learner 'softmax_regression': tol must be > 0, got {tol!r}")
    return SoftmaxRegression(n_classes, float(c), max_iter, float(tol))
