"""How often a learning router audits: a rate capped by a share of the spending pace.

Learning routers only see an arm's correctness when the auditor (the human or
the strongest model, taken as truth) is also paid on the item. Each item is
audited with probability::

    q_t = min(rate, share * pace_t / c_audit),   pace_t = remaining_t / items_left_t

so the expected audit spend per item is at most ``share`` of the dollars per
item still available: a $0.10 human auditor cannot eat a small budget, and a
large budget audits at ``rate``. Audits are never skipped for lack of
randomness: the draw uses the step's own key.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.routing.base import StepContext

Array = jax.Array


class AuditConfig(NamedTuple):
    rate: float = 0.1  # largest audit probability per item
    share: float = 0.2  # largest expected share of the per-item pace spent on audits


def audit_probability(ctx: StepContext, auditor: Array, config: AuditConfig) -> Array:
    """``q_t`` of the module docstring; 0 without an auditor (``auditor < 0``) or when it is unavailable."""
    n_arms = ctx.price_usd.shape[0]
    aud = jnp.clip(auditor, 0, n_arms - 1)
    pace = ctx.remaining_usd / jnp.maximum(ctx.items_left, 1).astype(jnp.float32)
    c_audit = ctx.price_usd[aud]
    q = jnp.minimum(jnp.float32(config.rate),
                    jnp.float32(config.share) * pace / jnp.maximum(c_audit, 1e-30))
    return jnp.where((auditor >= 0) & ctx.available[aud], q, 0.0)


def draw_audit(ctx: StepContext, auditor: Array, pay: Array, label_arm: Array,
               config: AuditConfig, key: Array, allowed: Array = True) -> Array:
    """Audit this item? Never when the auditor is already paid, no label is bought, or not ``allowed``.

    Pacing routers pass ``allowed`` = "the audit keeps the coverage reserve".
    """
    n_arms = ctx.price_usd.shape[0]
    aud = jnp.clip(auditor, 0, n_arms - 1)
    q = audit_probability(ctx, auditor, config)
    return (jax.random.uniform(key) < q) & (label_arm >= 0) & ~pay[aud] & allowed
