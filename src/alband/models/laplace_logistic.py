r"""Bayesian logistic regression with an online Laplace posterior (Chapelle and Li 2011; Russo et al. 2018, 5.2).

Binary model ``P(y = 1 | x) = sigmoid(phi' theta)`` over ``phi = [x, 1]``
(``bias=True``) or ``phi = x``, dimension ``D``, with the prior
``theta ~ N(0, I / ridge)``. The posterior is kept as a Gaussian
``N(m, H^{-1})`` (params: ``mean`` and ``cov = H^{-1}``) and updated one batch
at a time: the new mean is the MAP of the previous posterior times the batch's
weighted likelihood (cross-entropy with targets ``r`` in ``[0, 1]``), found by
``newton_steps`` Newton (IRLS) steps from ``m``, and the precision grows by
the batch's Hessian at the new mean::

    m'  = argmin_theta (theta - m)' H (theta - m) / 2 - sum_j w_j [r_j log p_j + (1 - r_j) log(1 - p_j)]
    H'  = H + sum_j w_j p_j (1 - p_j) phi_j phi_j',   p_j = sigmoid(phi_j' m')

(the assumed-density-filtering form of the Laplace approximation: refitting
all past rows would need them stored). With ``C = H^{-1}``, ``U = C Phi'``,
``G = Phi U`` and ``s = w p (1 - p)``, a Newton step from ``theta``
(``delta = theta - m``) is::

    theta' = m + Hess^{-1} Phi' (s * Phi delta + w (r - p)),
    Hess^{-1} Phi' y = U (y - sqrt(s) * K^{-1} (sqrt(s) * G y)),  K = I + sqrt(s) G sqrt(s)

so every step is ``O(B^3 + B D)``; the covariance update is Woodbury
(:mod:`alband.models.woodbury`), never ``O(D^3)``.

As a :class:`alband.models.base.Learner`: ``fit(params, x, y, weight)`` is one
such batch update with hard targets ``r = [y == 1]`` (rows with ``y < 0`` or
weight 0 are ignored), warm-started from (and taking as prior) the current
posterior ``params``; ``predict_proba`` gives ``[1 - p, p]`` at the mean;
``posterior`` is ``N(m, C^{-1})``. The linear bandits' Thompson sampling on a
logistic reward (:func:`alband.policies.linear_bandits.lints_laplace`) calls
:func:`laplace_step` with soft targets.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.models.base import GaussianPosterior
from alband.models.registry import register_learner
from alband.models.woodbury import woodbury

Array = jax.Array


class LaplaceLogisticParams(NamedTuple):
    """The Gaussian posterior of ``theta``."""

    mean: Array  # (D,)
    cov: Array  # (D, D)  H^{-1}


def features(x: Array, bias: bool) -> Array:
    """``phi = [x, 1]`` (``bias``) or ``x``, row by row."""
    if not bias:
        return x
    return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)


def prior(n_features: int, ridge: float, bias: bool, dtype=jnp.float32) -> LaplaceLogisticParams:
    """``N(0, I / ridge)``."""
    D = n_features + int(bias)
    return LaplaceLogisticParams(jnp.zeros((D,), dtype), jnp.eye(D, dtype=dtype) / ridge)


def laplace_step(params: LaplaceLogisticParams, Phi: Array, r: Array, weight: Array,
                 newton_steps: int) -> LaplaceLogisticParams:
    """One online Laplace update with feature rows ``Phi`` (B, D), targets ``r`` in [0, 1], ``weight`` (B,)."""
    weight = weight.astype(Phi.dtype)
    Phi = Phi * weight[:, None]
    r = r * weight
    m, C = params.mean, params.cov
    U = C @ Phi.T  # (D, B)
    G = Phi @ U  # (B, B)
    eye = jnp.eye(Phi.shape[0], dtype=Phi.dtype)

    def newton(_, theta):
        p = jax.nn.sigmoid(Phi @ theta)
        s = p * (1.0 - p) * weight
        y = s * (Phi @ (theta - m)) + (r - p) * weight
        root = jnp.sqrt(s)
        K = eye + root[:, None] * G * root[None, :]
        t = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(K), True), root * (G @ y))
        return m + U @ (y - root * t)

    theta = jax.lax.fori_loop(0, newton_steps, newton, m)
    p = jax.nn.sigmoid(Phi @ theta)
    cov, _ = woodbury(C, Phi, p * (1.0 - p) * weight)
    return LaplaceLogisticParams(theta, cov)


class LaplaceLogistic(NamedTuple):
    """Hyper-parameters (static) of the learner (module docstring).

    ``weight`` must be 0 or 1 per row (the step scales the feature rows by it,
    exact for a 0/1 mask).
    """

    ridge: float = 1.0
    newton_steps: int = 5
    bias: bool = True
    n_classes: int = 2

    def init(self, n_features: int) -> LaplaceLogisticParams:
        return prior(n_features, self.ridge, self.bias)

    def fit(self, params: LaplaceLogisticParams, x: Array, y: Array, weight: Array) -> LaplaceLogisticParams:
        use = (jnp.asarray(weight) > 0) & (y >= 0)
        r = (y == 1).astype(jnp.float32)
        return laplace_step(params, features(x.astype(jnp.float32), self.bias), r, use.astype(jnp.float32),
                            self.newton_steps)

    def predict_proba(self, params: LaplaceLogisticParams, x: Array) -> Array:
        p = jax.nn.sigmoid(features(x.astype(jnp.float32), self.bias) @ params.mean)
        return jnp.stack([1.0 - p, p], axis=-1)

    def posterior(self, params: LaplaceLogisticParams, x: Array, y: Array, weight: Array) -> GaussianPosterior:
        """``N(m, C^{-1})``: the rows were folded in by ``fit`` already."""
        return GaussianPosterior(params.mean, jnp.linalg.inv(params.cov))


@register_learner("laplace_logistic")
def laplace_logistic(ridge: float = 1.0, newton_steps: int = 5, bias: bool = True) -> LaplaceLogistic:
    if not (isinstance(ridge, (int, float)) and ridge > 0):
        raise AlbandError(f"learner 'laplace_logistic': ridge must be > 0, got {ridge!r}")
    if isinstance(newton_steps, bool) or not isinstance(newton_steps, int) or newton_steps < 1:
        raise AlbandError(f"learner 'laplace_logistic': newton_steps must be an integer >= 1, got {newton_steps!r}")
    if not isinstance(bias, bool):
        raise AlbandError(f"learner 'laplace_logistic': bias must be True or False, got {bias!r}")
    return LaplaceLogistic(float(ridge), newton_steps, bias)
