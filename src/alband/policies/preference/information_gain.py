r"""Information gain (BALD) on the Bradley-Terry posterior.

BALD (Houlsby, Huszar, Ghahramani and Lengyel 2011, "Bayesian active learning
for classification and preference learning") asks the pair whose answer ``Y``
carries the most information about ``theta``:

    I(Y; theta) = H(E_theta[p(theta)]) - E_theta[H(p(theta))],   p(theta) = sigmoid(theta' z),

with ``H`` the binary entropy. Under the Laplace posterior
``theta ~ N(theta_hat, V^{-1})`` the margin ``f = theta' z`` is Gaussian with
mean ``m = theta_hat' z`` and variance ``s^2 = z' V^{-1} z``, so the mutual
information depends on the pair only through ``(m, s^2)``.

Two ways to compute it:

* ``method="probit"`` (default): the closed form of Houlsby et al. (their
  eq. 4) for the probit link ``Phi``, applied to the logistic link through
  ``sigmoid(f) ~ Phi(kappa f)``, ``kappa = sqrt(pi / 8)`` (MacKay 1992): with
  ``m' = kappa m``, ``s'^2 = kappa^2 s^2`` and ``C = sqrt(pi ln 2 / 2)``,

      I ~ h(Phi(m' / sqrt(1 + s'^2))) - C / sqrt(s'^2 + C^2) exp(-m'^2 / (2 (s'^2 + C^2)))

  in bits (``h`` the binary entropy in bits), times ``ln 2`` for nats. One
  pass of posterior variances (``O(N d^2)``), deterministic.
* ``method="samples"``: Monte Carlo over ``S`` posterior draws
  (``O(N d S)``), exact for the logistic link as ``S`` grows.

The test checks that the two agree to a few hundredths of a nat on random
posteriors, and that the closed form is the Monte-Carlo limit for the probit
link. Pairs the model is sure about (``|m|`` large) and pairs whose margin
``theta`` already pins down (``s^2`` small) both score low: BALD asks where
the *model* could learn, not where the pair is a coin flip.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from alband.models.bradley_terry import GaussianPosterior, sample_posterior
from alband.policies.base import QueryPolicy, score_policy
from alband.policies.preference._posterior import posterior_variances, require_posterior
from alband.policies.registry import register_policy

Array = jax.Array

_KAPPA = math.sqrt(math.pi / 8.0)
_C = math.sqrt(math.pi * math.log(2.0) / 2.0)


def _binary_entropy_bits(p: Array) -> Array:
    p = jnp.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * jnp.log2(p) + (1.0 - p) * jnp.log2(1.0 - p))


def _binary_entropy_nats(p: Array) -> Array:
    p = jnp.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * jnp.log(p) + (1.0 - p) * jnp.log1p(-p))


def probit_mutual_information(mean: Array, variance: Array) -> Array:
    """Houlsby et al.'s closed form for a probit link ``Phi(f)``, ``f ~ N(mean, variance)``, in nats."""
    p = jax.scipy.stats.norm.cdf(mean / jnp.sqrt(1.0 + variance))
    expected = _C / jnp.sqrt(variance + _C**2) * jnp.exp(-mean**2 / (2.0 * (variance + _C**2)))
    return (_binary_entropy_bits(p) - expected) * math.log(2.0)


def bald_scores_probit(z: Array, posterior: GaussianPosterior) -> Array:
    """BALD of each pair by the closed form for the logistic link (module docstring), nats."""
    m = z @ posterior.mean
    s2 = posterior_variances(z, posterior.precision)
    return probit_mutual_information(_KAPPA * m, _KAPPA**2 * s2)


def bald_scores_samples(z: Array, posterior: GaussianPosterior, key: Array, n_samples: int = 64) -> Array:
    """BALD of each pair by Monte Carlo over ``n_samples`` posterior draws, nats."""
    thetas = sample_posterior(key, posterior, n_samples)  # (S, d)
    p = jax.nn.sigmoid(z @ thetas.T)  # (N, S)
    return _binary_entropy_nats(jnp.mean(p, axis=1)) - jnp.mean(_binary_entropy_nats(p), axis=1)


@register_policy("pair_bald")
def pair_bald(method: str = "probit", n_samples: int = 64) -> QueryPolicy:
    """BALD on the Bradley-Terry posterior; ``method`` is ``"probit"`` or ``"samples"``."""
    if method not in ("probit", "samples"):
        raise ValueError(f"method must be 'probit' or 'samples', got {method!r}")

    def score(ctx, key):
        posterior = require_posterior(ctx, "pair_bald")
        if method == "probit":
            return bald_scores_probit(ctx.x, posterior)
        return bald_scores_samples(ctx.x, posterior, key, n_samples)

    return score_policy("pair_bald", score)
