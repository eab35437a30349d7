"""Audits: how often a learning router pays the auditor, and which cheap arms join the audit.

Learning routers only see an arm's correctness when the auditor (the human or
the strongest model, taken as truth) is also paid on the item. An audit pays

* the auditor (unless the router already chose it), and
* a *panel*: up to ``panel_size`` other available arms, drawn uniformly among
  those whose quote is at most ``panel_share`` times the auditor's quote.
  Their verdicts come with the same auditor answer, so one audit teaches
  several cheap arms at a small extra cost (with a $0.10 human auditor and
  LLMs at $0.00003-$0.005, four observations for about $0.10 instead of one).
  ``panel_size = 0`` or ``panel_share = 0`` disables the panel.

Each item is audited with probability::

    q_t = min(rate, share * pace_t / c_audit),   pace_t = remaining_t / items_left_t

where ``c_audit`` is the audit's extra price (auditor if not already chosen,
plus the panel), so the expected audit spend per item is at most ``share`` of
the dollars per item still available: a $0.10 human auditor cannot eat a small
budget, and a large budget audits at ``rate``.
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
    panel_share: float = 0.1  # arms quoted at most this share of the auditor's quote may join
    panel_size: int = 3  # at most this many of them join an audit, drawn uniformly


def audit_panel(ctx: StepContext, auditor: Array, config: AuditConfig, key: Array) -> Array:
    """(K,) arms that join an audit besides the auditor (module docstring)."""
    n_arms = ctx.price_usd.shape[0]
    aud = jnp.clip(auditor, 0, n_arms - 1)
    is_aud = jnp.arange(n_arms) == auditor
    cap = jnp.float32(config.panel_share) * ctx.price_usd[aud]
    eligible = ctx.available & ~is_aud & (ctx.price_usd <= cap) & (auditor >= 0)
    size = min(int(config.panel_size), n_arms)
    if size <= 0 or config.panel_share <= 0:
        return jnp.zeros((n_arms,), bool)
    priority = jnp.where(eligible, jax.random.uniform(key, (n_arms,)), -1.0)
    chosen = jax.lax.top_k(priority, size)[1]
    return jnp.zeros((n_arms,), bool).at[chosen].set(True) & eligible


def audit_plan(ctx: StepContext, auditor: Array, pay: Array, config: AuditConfig,
               key: Array) -> tuple[Array, Array, Array]:
    """(extra arms an audit would pay, their total quote, audit probability ``q_t``).

    The extra arms are the auditor (unless already in ``pay``) and the panel
    arms not in ``pay``. ``q_t`` is 0 without an auditor, when it is
    unavailable, or when the audit would pay nothing new.
    """
    n_arms = ctx.price_usd.shape[0]
    aud = jnp.clip(auditor, 0, n_arms - 1)
    is_aud = (jnp.arange(n_arms) == auditor) & (auditor >= 0)
    extra = (is_aud | audit_panel(ctx, auditor, config, key)) & ~pay & ctx.available
    extra_cost = jnp.sum(jnp.where(extra, ctx.price_usd, 0.0))
    pace = ctx.remaining_usd / jnp.maximum(ctx.items_left, 1).astype(jnp.float32)
    q = jnp.minimum(jnp.float32(config.rate),
                    jnp.float32(config.share) * pace / jnp.maximum(extra_cost, 1e-30))
    useful = (auditor >= 0) & ctx.available[aud] & jnp.any(extra)
    return extra, extra_cost, jnp.where(useful, q, 0.0)


def draw_audit(ctx: StepContext, auditor: Array, pay: Array, label_arm: Array,
               config: AuditConfig, key: Array, allowed=True) -> Array:
    """(K,) the arms an audit adds to ``pay`` on this item; all False when no audit is drawn.

    No audit without a label, or when not ``allowed`` (pacing routers pass
    "the audit keeps the coverage reserve").
    """
    k_panel, k_draw = jax.random.split(key)
    extra, _, q = audit_plan(ctx, auditor, pay, config, k_panel)
    audit = (jax.random.uniform(k_draw) < q) & (label_arm >= 0) & allowed
    return extra & audit


def audit_cost(ctx: StepContext, auditor: Array, pay: Array, config: AuditConfig, key: Array) -> Array:
    """Total quote of the arms an audit would add to ``pay`` (same ``key`` as :func:`draw_audit`)."""
    return audit_plan(ctx, auditor, pay, config, jax.random.split(key)[0])[1]
