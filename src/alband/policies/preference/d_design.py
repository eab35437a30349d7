r"""Fisher-weighted Bayesian D-optimal batches of pairs, by greedy rank-1 steps (design engine).

Why the design is over differences. A Bradley-Terry answer to the pair
``(a, b)`` depends on ``theta`` only through ``theta' z``, ``z = phi(a) - phi(b)``;
its Fisher information about ``theta`` is ``mu (1 - mu) z z'``
(``mu = sigmoid(theta' z)``, ``theory/preference.md`` section 1). The
information matrix of a set of answers is therefore that of a *linear* design
on the weighted rows ``sqrt(mu_i (1 - mu_i)) z_i``, and every result of linear
optimal design (Kiefer-Wolfowitz, greedy rank-1 batches) applies to those rows
-- at the current ``theta_hat``, as is usual for non-linear models (Chernoff
1953's locally optimal designs; Chaloner and Verdinelli 1995).

The batch: the regularised D-optimal batch of
:func:`alband.design.greedy_batch_design_kernel` on the rows
``x_i = sqrt(w_i) z_i``, conditioned on the judged pairs, i.e. it maximises

    log det(lambda I + sum_{j judged} w_j z_j z_j' + sum_{i in S} w_i z_i z_i')

(the Laplace precision ``V`` after the batch) by ``B`` greedy steps, each
taking the largest gain ``log(1 + w_i z_i' V^{-1} z_i)`` followed by a
Sherman-Morrison update. The ratio between ``lambda`` and the data is read off
the learner's posterior: ``lambda = (tr V - sum_{j judged} w_j ||z_j||^2) / d``.
The greedy batch has at least ``1 - 1/e`` of the best batch's gain (Nemhauser,
Wolsey and Fisher 1978; ``theory/design.md``).

The engine updates every pool row's gain after each pick (one ``O(N d)`` pass
per pick). The policy's default (``lazy=True``) computes the same batch from
the learner's Laplace precision by lazy greedy evaluation
(:func:`alband.policies.preference.apo.lazy_greedy_rank_one_batch`: gains only
shrink, so earlier gains bound the current ones, and only a candidate set is
updated per pick); the two agree pick for pick (tested), and the lazy one
reads the pool about once instead of ``B`` times.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.design import greedy_batch_design_kernel
from alband.policies.preference.apo import lazy_greedy_rank_one_batch
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update
from alband.policies.preference._posterior import fisher_weights, require_posterior
from alband.policies.registry import register_policy

Array = jax.Array


def prior_precision(precision: Array, z: Array, weight: Array, judged: Array) -> Array:
    """``lambda`` recovered from ``V = lambda I + sum_{judged} w z z'``: ``(tr V - sum w ||z||^2) / d``."""
    data = jnp.sum(jnp.where(judged, weight * jnp.sum(z * z, axis=1), 0.0))
    return jnp.maximum((jnp.trace(precision) - data) / precision.shape[0], 1e-12)


@partial(jax.jit, static_argnames=("batch_size",))
def fisher_d_design_batch(z: Array, p_first: Array, queried: Array, batch_size: int, l2: float | Array) -> Array:
    """The Bayesian D-optimal batch over the Fisher-weighted rows (module docstring); ``-1`` when exhausted."""
    w = fisher_weights(p_first)
    X = z * jnp.sqrt(w)[:, None]
    n, d = X.shape
    scale = jnp.sum(X * X) / (n * d)
    ridge = jnp.asarray(l2, X.dtype) / jnp.where(scale > 0, scale, 1.0)  # the engine's ridge is relative
    return greedy_batch_design_kernel(X, batch_size, queried, queried, ridge)


@register_policy("pair_d_design")
def pair_d_design(lazy: bool = True) -> QueryPolicy:
    """Fisher-weighted Bayesian D-optimal batches; ``lazy=False`` runs the design engine's eager greedy."""

    def select(state, ctx, key, batch_size):
        posterior = require_posterior(ctx, "pair_d_design")
        p_first = ctx.probs[:, 0]
        w = fisher_weights(p_first)
        if lazy:
            return lazy_greedy_rank_one_batch(ctx.x, posterior.precision, w, ~ctx.queried, batch_size, "d"), state
        lam = prior_precision(posterior.precision, ctx.x, w, ctx.queried)
        return fisher_d_design_batch(ctx.x, p_first, ctx.queried, batch_size, lam), state

    return QueryPolicy("pair_d_design", _stateless_init, select, _stateless_update)
