r"""Linear Bradley-Terry reward model on pair features, fitted by penalised maximum likelihood.

Model (Bradley and Terry 1952; the reward model of RLHF, Christiano et al.
2017, Ouyang et al. 2022). A response ``y`` to a prompt ``x`` has reward
``r(x, y) = theta' phi(x, y)``; of two responses ``a`` (shown first) and ``b``

    P(a preferred to b) = sigmoid(r(x, a) - r(x, b)) = sigmoid(theta' z),
    z = phi(x, a) - phi(x, b).

The pool rows of a pairwise task are the differences ``z`` and the model is a
2-class learner: column 0 of :meth:`BradleyTerry.predict_proba` is
``P(first preferred) = sigmoid(theta' z)``, column 1 its complement; label 0
means the first response was preferred, 1 the second, -1 no valid answer.

Fit. With ``s_i = +1`` for label 0 and ``-1`` for label 1, weights ``w_i``
(0 = ignore) and margins ``m_i = theta' z_i``, the penalised negative
log-likelihood is

    L(theta) = sum_i w_i log(1 + exp(-s_i m_i)) + (lambda / 2) ||theta||^2.

This is scikit-learn's ``LogisticRegression(fit_intercept=False, C=1/lambda)``
on the rows ``z_i`` with class 1 = "first preferred" (scikit-learn minimises
``C sum_i loss_i + ||theta||^2 / 2``; divide by ``C``). ``L`` is strictly
convex; it is minimised by Newton's method with a backtracking (Armijo) line
search, warm-started from the previous parameters:

    g = -Z' (w * (t - mu)) + lambda theta,       t_i = 1[label_i = 0], mu_i = sigmoid(m_i)
    H = Z' diag(w mu (1 - mu)) Z + lambda I,     theta <- theta - eta H^{-1} g,

one ``O(M d^2)`` Hessian and a Cholesky solve per step (cheap at ``d = 384``).
Newton converges quadratically near the optimum, so a warm start from the last
round takes one or two steps.

Laplace posterior (MacKay 1992; Chu and Ghahramani 2005 for preferences). The
Gaussian approximation of the posterior under the prior
``theta ~ N(0, lambda^{-1} I)`` has mean the penalised ML estimate and
precision the Hessian there, i.e. the *Fisher-weighted* design matrix

    V = lambda I + sum_i w_i mu_i (1 - mu_i) z_i z_i'.

Pairs whose outcome the model already predicts with certainty
(``mu_i (1 - mu_i) -> 0``) add almost no information, which the unweighted
``lambda I + sum z z'`` would ignore; every uncertainty-aware preference
policy here reads this ``V``.

Quality on held-out pairs: :func:`pairwise_accuracy` (share of pairs whose
preferred response gets the larger reward; a zero margin counts one half) and
:func:`pairwise_log_loss` (mean ``-log P(observed preference)``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.models.base import GaussianPosterior
from alband.models.registry import register_learner

Array = jax.Array


class BradleyTerryParams(NamedTuple):
    """Reward weights ``theta`` (d,): ``r = theta' phi``."""

    theta: Array


def _signs_and_weights(y: Array, weight: Array) -> tuple[Array, Array]:
    """``t_i = 1[first preferred]`` and the weights with invalid labels (-1) zeroed."""
    valid = (y == 0) | (y == 1)
    return (y == 0).astype(jnp.float32), jnp.where(valid, weight.astype(jnp.float32), 0.0)


def penalised_nll(theta: Array, z: Array, y: Array, weight: Array, l2: float | Array) -> Array:
    """``L(theta)`` of the module docstring."""
    t, w = _signs_and_weights(y, weight)
    m = z @ theta
    s = 2.0 * t - 1.0
    return jnp.sum(w * jax.nn.softplus(-s * m)) + 0.5 * l2 * jnp.sum(theta * theta)


def fisher_information(theta: Array, z: Array, weight: Array, l2: float | Array) -> Array:
    """``V = lambda I + sum_i w_i mu_i (1 - mu_i) z_i z_i'`` at ``theta``."""
    mu = jax.nn.sigmoid(z @ theta)
    c = weight.astype(z.dtype) * mu * (1.0 - mu)
    d = z.shape[1]
    return (z * c[:, None]).T @ z + l2 * jnp.eye(d, dtype=z.dtype)


@partial(jax.jit, static_argnames=("max_iter",))
def newton_fit(theta0: Array, z: Array, y: Array, weight: Array, l2: float | Array,
               max_iter: int = 50, tol: float | Array = 1e-6) -> Array:
    """Minimise ``L`` by damped Newton from ``theta0`` (module docstring).

    Stops when the Newton decrement ``g' H^{-1} g / 2`` falls below ``tol``
    times ``max(sum w, 1)`` or after ``max_iter`` steps.
    """
    t, w = _signs_and_weights(y, weight)
    scale = jnp.maximum(jnp.sum(w), 1.0)
    l2 = jnp.asarray(l2, z.dtype)

    def objective(theta):
        return penalised_nll(theta, z, y, w, l2)

    def step(state):
        theta, _, it = state
        mu = jax.nn.sigmoid(z @ theta)
        g = -(z.T @ (w * (t - mu))) + l2 * theta
        H = fisher_information(theta, z, w, l2)
        direction = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(H), True), g)
        decrement = 0.5 * g @ direction
        f0 = objective(theta)

        def shrink(s):
            return s[0] * 0.5, s[1] + 1

        def too_high(s):
            eta, k = s
            return (objective(theta - eta * direction) > f0 - 0.25 * eta * g @ direction) & (k < 30)

        eta, _ = jax.lax.while_loop(too_high, shrink, (jnp.asarray(1.0, z.dtype), 0))
        return theta - eta * direction, decrement, it + 1

    def keep_going(state):
        _, decrement, it = state
        return (decrement > tol * scale) & (it < max_iter)

    theta, _, _ = jax.lax.while_loop(keep_going, step, (theta0, jnp.asarray(jnp.inf, z.dtype), 0))
    return theta


class BradleyTerry(NamedTuple):
    """Hyper-parameters (static): the L2 strength ``lambda`` (= 1 / scikit-learn's ``C``).

    Implements the learner protocol: ``init``, ``fit``, ``predict_proba``,
    ``posterior``; ``n_classes`` is 2 (label 0 = first preferred).
    """

    l2: float = 1.0
    max_iter: int = 50
    tol: float = 1e-6

    @property
    def n_classes(self) -> int:
        return 2

    def init(self, n_features: int) -> BradleyTerryParams:
        """``theta = 0``: every pair a coin flip."""
        return BradleyTerryParams(jnp.zeros((n_features,), jnp.float32))

    def fit(self, params: BradleyTerryParams, x: Array, y: Array, weight: Array) -> BradleyTerryParams:
        """Penalised ML from the warm start ``params`` on pairs ``x`` (M, d), labels ``y``."""
        return BradleyTerryParams(newton_fit(params.theta, x, y, weight, self.l2, self.max_iter, self.tol))

    def predict_proba(self, params: BradleyTerryParams, x: Array) -> Array:
        """``[P(first preferred), P(second preferred)]`` of every pair, shape (N, 2)."""
        p_first = jax.nn.sigmoid(x @ params.theta)
        return jnp.stack([p_first, 1.0 - p_first], axis=-1)

    def posterior(self, params: BradleyTerryParams, x: Array, y: Array, weight: Array) -> GaussianPosterior:
        """Laplace posterior ``N(theta_hat, V^{-1})`` with the Fisher-weighted ``V``."""
        _, w = _signs_and_weights(y, weight)
        return GaussianPosterior(params.theta, fisher_information(params.theta, x, w, self.l2))


def pairwise_accuracy(params: BradleyTerryParams, z: Array, y: Array) -> Array:
    """Share of valid pairs whose preferred response has the larger reward (ties 1/2)."""
    m = z @ params.theta
    valid = (y == 0) | (y == 1)
    s = jnp.where(y == 0, 1.0, -1.0)
    right = jnp.where(s * m > 0, 1.0, jnp.where(m == 0, 0.5, 0.0))
    return jnp.sum(jnp.where(valid, right, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def pairwise_log_loss(params: BradleyTerryParams, z: Array, y: Array) -> Array:
    """Mean ``-log P(observed preference)`` over valid pairs (nats)."""
    m = z @ params.theta
    valid = (y == 0) | (y == 1)
    s = jnp.where(y == 0, 1.0, -1.0)
    return jnp.sum(jnp.where(valid, jax.nn.softplus(-s * m), 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def sample_posterior(key: Array, posterior: GaussianPosterior, n_samples: int) -> Array:
    """``n_samples`` draws ``theta ~ N(mean, precision^{-1})``, shape (S, p).

    With ``precision = L L'`` (Cholesky), ``theta = mean + L'^{-1} e``,
    ``e ~ N(0, I)``: its covariance is ``L'^{-1} L^{-1} = precision^{-1}``.
    """
    L = jnp.linalg.cholesky(posterior.precision)
    e = jax.random.normal(key, (posterior.mean.shape[0], n_samples), posterior.mean.dtype)
    return (posterior.mean[:, None] + jax.scipy.linalg.solve_triangular(L.T, e, lower=False)).T


@register_learner("bradley_terry")
def bradley_terry(c: float | None = None, l2: float | None = None, max_iter: int = 50,
                  tol: float = 1e-6) -> BradleyTerry:
    """The Bradley-Terry reward model of a preference task: L2 strength ``l2``, or ``c`` = 1 / l2 (scikit-learn's C).

    Default ``l2 = 1`` (``c = 1``, as the softmax regression's default).
    """
    if c is not None and l2 is not None:
        raise AlbandError("bradley_terry takes c (= 1 / l2) or l2, not both")
    strength = 1.0 if c is None and l2 is None else (1.0 / float(c) if c is not None else float(l2))
    if not (strength > 0 and strength < float("inf")):
        raise AlbandError(f"bradley_terry needs c > 0 (or l2 > 0), got c={c!r}, l2={l2!r}")
    return BradleyTerry(strength, int(max_iter), float(tol))
