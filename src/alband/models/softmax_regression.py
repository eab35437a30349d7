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

Everything is jittable and vmappable; the model hyper-parameters are a
hashable :class:`SoftmaxRegression` passed as a static argument.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class SoftmaxRegression(NamedTuple):
    """Hyper-parameters (static): classes, inverse L2 strength ``c`` as scikit-learn."""

    n_classes: int
    c: float = 1.0
    max_iter: int = 200
    tol: float = 1e-5


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


def predict_proba(params: SoftmaxParams, x: Array) -> Array:
    """Class probabilities ``softmax(x W + b)``, shape (n, C)."""
    return jax.nn.softmax(x @ params.w + params.b, axis=-1)


def predict(params: SoftmaxParams, x: Array) -> Array:
    """Most probable class per row."""
    return jnp.argmax(x @ params.w + params.b, axis=-1).astype(jnp.int32)


def accuracy(params: SoftmaxParams, x: Array, y: Array) -> Array:
    """Share of rows whose most probable class equals ``y``."""
    return jnp.mean((predict(params, x) == y).astype(jnp.float32))


def _objective(params: SoftmaxParams, x: Array, y: Array, weight: Array, c: float) -> Array:
    logits = x @ params.w + params.b
    safe_y = jnp.clip(y, 0, logits.shape[-1] - 1)
    cross_entropy = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(
        logits, safe_y[:, None], axis=-1
    )[:, 0]
    total = jnp.sum(weight * cross_entropy) + 0.5 / c * jnp.sum(params.w**2)
    return total / jnp.maximum(jnp.sum(weight), 1.0)


@partial(jax.jit, static_argnums=0)
def fit(
    model: SoftmaxRegression, params: SoftmaxParams, x: Array, y: Array, weight: Array
) -> SoftmaxParams:
    """Minimise the objective from ``params`` (warm start); rows with weight 0 are ignored."""
    weight = weight.astype(jnp.float32)

    def objective(p):
        return _objective(p, x, y, weight, model.c)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        p, opt_state, it = carry
        value, grad = value_and_grad(p, state=opt_state)
        updates, opt_state = solver.update(grad, opt_state, p, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(p, updates), opt_state, it + 1

    def keep_going(carry):
        p, opt_state, it = carry
        grad = optax.tree.get(opt_state, "grad")
        grad_norm = optax.tree.norm(grad, ord=jnp.inf)
        return (it == 0) | ((it < model.max_iter) & (grad_norm >= model.tol))

    params, _, _ = jax.lax.while_loop(keep_going, step, (params, solver.init(params), 0))
    return params
