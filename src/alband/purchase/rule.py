"""Who is paid for an item, whether its audit fits, and what fits the budget: the one purchase rule.

Both drivers of a round (:func:`alband.simulate.simulate` inside its scan,
the live loop in the shell) and the router replay
(:mod:`alband.routing.replay_engine`) decide purchases with these functions; the
budget test itself is :func:`alband.costs.budget.fits` (``spent + amount <= limit``).

One annotator (:func:`affordable`): the proposed items are bought in batch
order; an item already queried is skipped at no cost, and the first fresh
item whose reservation (its largest possible cost) does not fit ends the
purchases: ``spent + sum_{bought before} cost + reserve_k <= limit``.

Several annotators and a router (:func:`plan_payment`, :func:`item_purchase`),
item by item in batch order:

* the *purchase* is the arms of ``Decision.pay`` plus ``label_arm``; the
  audit's extra arms (``audit_pay`` minus those) count only in the audited
  setting (``auditor >= 0``), when the auditor is among the paid arms and the
  item gets a label;
* the item is bought iff the quotes ``q_k`` (each arm's reservation) of the
  purchase fit: ``s + sum_{k in pay} q_k <= B``; the first fresh item that
  does not fit, or a ``Decision.stop``, ends the purchases;
* the audit is added iff ``s + sum_{k in pay or audit} q_k <= B`` (else the
  item is bought without it).

Every function takes ``xp`` (``jax.numpy`` in the core, ``numpy`` for the
live loop's float64 guard amounts), so the rule is the same arithmetic in
both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from alband.costs.budget import affordable_prefix, fits
from alband.pool import LabelState

if TYPE_CHECKING:  # routing imports this module (the replay's rule)
    from alband.routing.base import Decision

Array = jax.Array


class Payment(NamedTuple):
    """The arms a decision asks to pay for an item."""

    pay: Array  # (K,) bool the purchase: ``Decision.pay`` and the label arm
    audit: Array  # (K,) bool the audit's extra arms (all False without a valid audit)
    label_arm: Array  # () int32


def plan_payment(decision: Decision, auditor: int) -> Payment:
    """The purchase and the audit a decision asks for (module docstring)."""
    n_arms = decision.pay.shape[0]
    arms = jnp.arange(n_arms)
    label_arm = jnp.asarray(decision.label_arm, jnp.int32)
    pay = decision.pay | ((arms == label_arm) & (label_arm >= 0))
    if auditor < 0:
        return Payment(pay, jnp.zeros((n_arms,), bool), label_arm)
    extra = decision.audit_pay & ~pay
    valid = jnp.any(extra) & (pay[auditor] | extra[auditor]) & (label_arm >= 0)
    return Payment(pay, extra & valid, label_arm)


def paid_arms(pay, audit, quote_usd, spent_usd, limit_usd, xp=jnp):
    """``(fits, paid)``: whether the purchase ``pay`` fits, and the arms paid (the audit's when it fits too)."""
    purchase_fits = fits(spent_usd, xp.sum(xp.where(pay, quote_usd, 0.0)), limit_usd)
    audit_fits = fits(spent_usd, xp.sum(xp.where(pay | audit, quote_usd, 0.0)), limit_usd)
    return purchase_fits, pay | (audit & audit_fits)


def item_purchase(payment: Payment, stop_asked, quote_usd, spent_usd, limit_usd, fresh, stopped, xp=jnp):
    """One routed item (module docstring): ``(take, paid, stopped)``.

    ``take``: the item is bought; ``paid`` (K,): the arms paid for it (none
    unless taken); ``stopped``: purchases have ended (before or at this item).
    ``stop_asked`` is the router's ``Decision.stop``, ``fresh`` whether the
    item was never queried.
    """
    wants = fresh & ~stopped & (payment.label_arm >= 0)
    purchase_fits, paid = paid_arms(payment.pay, payment.audit, quote_usd, spent_usd, limit_usd, xp)
    stopped = stopped | (fresh & stop_asked) | (wants & ~purchase_fits)
    take = wants & purchase_fits & ~stopped
    return take, paid & take, stopped


def affordable(
    state: LabelState,
    index: Array,
    reserve_usd: Array,
    cost_usd: Array,
    limit_usd: Array | float,
    stopped: Array | bool,
) -> tuple[Array, Array]:
    """Which of the proposed items are bought from one annotator, and whether the budget ran out.

    ``reserve_usd`` and ``cost_usd`` are per pool item. Items already queried
    are skipped at no cost, as are ``-1`` slots (a policy that leaves slots
    empty, e.g. gated querying); the first fresh item whose reservation does not
    fit ends the run (``exhausted``), and nothing after it is bought.
    """
    fresh = ~state.queried[index] & (index >= 0)
    reserve = jnp.where(fresh, reserve_usd[index], 0.0)
    cost = jnp.where(fresh, cost_usd[index], 0.0)
    fit = affordable_prefix(state.spent_usd, limit_usd, reserve, cost, xp=jnp)
    exhausted = jnp.asarray(stopped) | ~jnp.all(fit)
    accepted = fit & fresh & ~jnp.asarray(stopped)
    return accepted, exhausted
