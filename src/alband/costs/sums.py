"""Adding dollars in float32 (or float64) without drift: the project's one way to accumulate money.

A plain running sum of ``n`` amounts drifts by up to ``n eps`` relative (a
budget of $80 paid in 15,000 steps of $0.00001 in float32). Two compensated
forms are used, both exact up to a few ulps of the total whatever ``n``:

* :func:`two_sum` (Knuth, TAOCP vol. 2, 4.2.2; Ogita, Rump and Oishi 2005):
  ``s = a + b`` and the rounding error ``e`` with ``a + b = s + e`` exactly;
  :func:`add_compensated` keeps a total as an unevaluated pair ``hi + lo``.
* :func:`kahan_add` (Kahan 1965): a total ``t`` and its compensation ``c``
  (``t - c`` is the better estimate); one add is
  ``y = x - c; t' = t + y; c' = (t' - t) - y``.

Amounts are added in the order they are paid. The live ledger keeps exact
float64 dollars (:mod:`alband.store.ledger`); the core's label state keeps the
float32 plain sum of what was paid (:func:`alband.pool.record_annotations`),
the quantity both drivers compare against the budget, so that the simulator
and the live loop see the same number.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return s, err


def add_compensated(hi: Array, lo: Array, amount: Array) -> tuple[Array, Array]:
    """The pair ``(hi, lo)`` after adding ``amount`` (a total kept as ``hi + lo``)."""
    s, err = two_sum(hi, amount)
    return two_sum(s, lo + err)


def kahan_add(total: Array, compensation: Array, amount: Array) -> tuple[Array, Array]:
    """Kahan's compensated add: ``(total', compensation')``; the sum so far is ``total - compensation``."""
    y = amount - compensation
    new_total = total + y
    return new_total, (new_total - total) - y


def kahan_total(total: Array, compensation: Array) -> Array:
    """The compensated estimate ``total - compensation``."""
    return total - compensation


def float32_sum(amounts: Array) -> Array:
    """A float32 batch of dollars summed in order (a compensated scan)."""
    amounts = jnp.asarray(amounts, jnp.float32)

    def step(carry, amount):
        return kahan_add(*carry, amount), None

    (total, compensation), _ = jax.lax.scan(step, (jnp.float32(0.0), jnp.float32(0.0)), amounts)
    return kahan_total(total, compensation)
