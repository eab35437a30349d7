"""A fixed annotator mix for the simulator: each item goes to arm ``k`` with probability ``shares[k]``.

``share_router(shares)`` is an :class:`alband.routing.Router` that ignores
prices, budget and feedback: the share of cheap-LLM, strong-LLM and human
labels is a property of the labelling plan, not learned. Because its choices
do not depend on prices, one simulation with a budget that never binds can
be re-priced for any price setting
(:func:`alband.simulate.episode.repriced_spend`). The routers of
:mod:`alband.routing` (cascade, contextual Thompson sampling, budgeted
bandits) plug into ``EpisodeConfig.router`` the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from alband.errors import AlbandError
from alband.routing.base import Decision, Router, RouterSetup, StepContext, one_hot_pay, stateless_update

Array = jax.Array


def share_router(shares, name: str = "shares") -> Router:
    """Arm ``k`` with probability ``shares[k]`` (non-negative, normalised here), drawn per item."""
    shares = np.asarray(shares, np.float64)
    if shares.ndim != 1 or shares.size < 1 or (shares < 0).any() or not np.isfinite(shares).all() or shares.sum() <= 0:
        raise AlbandError(f"annotator shares must be non-negative numbers with a positive sum, got {shares.tolist()}")
    logits = tuple(float(v) for v in np.log(np.where(shares > 0, shares / shares.sum(), 1e-300)))
    masked = tuple(bool(v > 0) for v in shares)

    def init(setup: RouterSetup):
        if setup.n_arms != len(logits):
            raise AlbandError(f"share_router has {len(logits)} shares for {setup.n_arms} annotators")
        return ()

    def decide(state, ctx: StepContext, key: Array) -> Decision:
        n_arms = ctx.available.shape[0]
        weights = jnp.where(jnp.asarray(masked), jnp.asarray(logits, jnp.float32), -jnp.inf)
        arm = jax.random.categorical(key, weights).astype(jnp.int32)
        values = dict(pay=one_hot_pay(arm, n_arms), label_arm=arm, audit_pay=jnp.zeros((n_arms,), bool),
                      audit=jnp.bool_(False), stop=jnp.bool_(False))
        return Decision(**{name: values[name] for name in Decision._fields})

    return Router(name, init, decide, stateless_update)
