"""The one signature of every learner, in optax's spirit: pure, jittable functions of a params pytree.

A learner is a *hashable* object (a ``NamedTuple`` of hyper-parameters, usable
as a ``jax.jit`` static argument) with::

    params = learner.init(n_features)
    params = learner.fit(params, x, y, weight)          # warm-started from params
    probs  = learner.predict_proba(params, x)           # (N, n_classes)
    post   = learner.posterior(params, x, y, weight)    # GaussianPosterior or None

* ``x`` is ``(M, d)`` float32, ``y`` ``(M,)`` int32 with ``-1`` for an invalid
  answer, ``weight`` ``(M,)`` float32 with ``0`` for a row to ignore (the
  training buffer of :class:`alband.pool.LabelState` has exactly this form:
  empty slots weigh 0). ``fit`` minimises the learner's weighted objective
  starting from ``params``; rows of weight 0 change nothing.
* ``predict_proba`` returns class probabilities. A pairwise preference learner
  (Bradley-Terry) is a 2-class learner whose pool rows are pair features and
  whose column 0 is ``P(first response preferred)``.
* ``posterior`` is the Laplace approximation ``N(theta*, H^{-1})`` of the
  parameter posterior around the fit, where the learner has one (MacKay
  1992): ``H`` is the Hessian of the negative log posterior (the objective
  with its prior) at ``theta*``. Learners without one return ``None``.
* ``linear_head(params)`` (optional): ``(W, b)`` with
  ``predict_proba(params, x) == softmax(x W + b)`` for learners whose
  probabilities are a softmax of a linear map of ``x``, else ``None``.
  Policies that exploit that structure (the fused native uncertainty pass,
  BALD's weight samples) read it from the round context, never a params type.

The round (:mod:`alband.rounds`) only ever calls these methods, so a new
learner is one module implementing them (and, to be named in a config,
:func:`alband.models.registry.register_learner`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any  # a pytree of arrays


class GaussianPosterior(NamedTuple):
    """``N(mean, precision^{-1})`` over a flat parameter vector of length ``p``.

    The ordering of the vector is the learner's (documented with its
    ``posterior``); for the softmax regression it is ``W`` class by class.
    """

    mean: Array  # (p,)
    precision: Array  # (p, p), symmetric positive definite
    # (k, p/k, p/k) the diagonal blocks when ``precision`` is block diagonal (else None): a
    # policy that reads only these leaves the (p, p) matrix to dead-code elimination under jit
    blocks: Array | None = None

    def sample(self, key: Array, n_samples: int) -> Array:
        """``n_samples`` draws ``mean + L^{-T} z`` with ``precision = L L'`` (Cholesky), ``z ~ N(0, I)``: (S, p)."""
        z = jax.random.normal(key, (self.mean.shape[0], n_samples), jnp.float32)
        chol = jnp.linalg.cholesky(self.precision)
        noise = jax.scipy.linalg.solve_triangular(chol, z, lower=True, trans="T")
        return self.mean[None, :] + noise.T


@runtime_checkable
class Learner(Protocol):
    """What the round needs from a learner (module docstring). Implementations must be hashable."""

    n_classes: int

    def init(self, n_features: int) -> Params:
        """Parameters before any label (a pytree)."""
        ...

    def fit(self, params: Params, x: Array, y: Array, weight: Array) -> Params:
        """Minimise the weighted objective on ``(x, y, weight)`` warm-started from ``params``."""
        ...

    def predict_proba(self, params: Params, x: Array) -> Array:
        """Class probabilities of the rows of ``x``, ``(N, n_classes)``."""
        ...

    def posterior(self, params: Params, x: Array, y: Array, weight: Array) -> GaussianPosterior | None:
        """The Laplace posterior around ``params`` given the training rows, or None."""
        ...


def linear_head(learner: Learner, params: Params) -> tuple[Array, Array] | None:
    """The learner's ``(W, b)`` when its probabilities are ``softmax(x W + b)`` (module docstring), else None."""
    head = getattr(learner, "linear_head", None)
    return None if head is None else head(params)


def predict(learner: Learner, params: Params, x: Array) -> Array:
    """Most probable class per row (int32): the learner's own ``predict`` if it has one, else argmax of the probabilities."""
    own = getattr(learner, "predict", None)
    if own is not None:
        return own(params, x)
    return jnp.argmax(learner.predict_proba(params, x), axis=-1).astype(jnp.int32)


def accuracy(learner: Learner, params: Params, x: Array, y: Array) -> Array:
    """``mean(argmax predict_proba(params, x) == y)``."""
    return jnp.mean((predict(learner, params, x) == y).astype(jnp.float32))
