"""Dollars spent in float32 without drift: a compensated (two-sum) running total.

The replay runs in float32 (the project's core precision), but a budget of
$80 paid in 15,000 steps of $0.00001 would drift by up to ``n * eps`` relative
with a plain running sum. :class:`SpendTotal` keeps the total as an unevaluated pair
``hi + lo`` updated with Knuth's error-free TwoSum (Knuth, TAOCP vol. 2,
4.2.2; Ogita, Rump and Oishi 2005), so the accumulated error stays within a
few ulps of the total, independent of the stream length.

"Never exceed" is then guaranteed with two roundings towards safety made by
the caller: prices are rounded *up* to float32 and the budget *down*, and the
spendable amount is ``budget (1 - 1e-6) - hi - lo`` (the 1e-6 margin covers
the float32 arithmetic of that expression, about 4 ulp = 2.4e-7 relative).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.costs.sums import add_compensated

Array = jax.Array

SAFETY_MARGIN = 1e-6  # relative, see module docstring


class SpendTotal(NamedTuple):
    """Dollars spent so far, ``hi + lo`` (a compensated float32 sum)."""

    hi: Array  # () float32
    lo: Array  # () float32 rounding error carried along


def zero_spend() -> SpendTotal:
    """Nothing spent yet."""
    return SpendTotal(jnp.float32(0.0), jnp.float32(0.0))


def charge(total: SpendTotal, amount_usd: Array) -> SpendTotal:
    """The total after paying ``amount_usd`` (>= 0): :func:`alband.costs.sums.add_compensated`."""
    return SpendTotal(*add_compensated(total.hi, total.lo, jnp.asarray(amount_usd, jnp.float32)))


def spendable(total: SpendTotal, budget_usd: Array) -> Array:
    """Dollars that may still be committed without ever exceeding ``budget_usd``."""
    budget = jnp.asarray(budget_usd, jnp.float32)
    return jnp.maximum(budget * (1.0 - SAFETY_MARGIN) - total.hi - total.lo, 0.0)

