"""A dollar budget that can never be overspent: reserve before, settle after.

Before a request, the *largest possible* cost of that request is reserved; the
request is made only if ``spent + reserved + reserve <= limit``. Afterwards the
reservation is settled with the actual cost (which never exceeds it), so at
every instant ``spent + reserved <= limit`` -- also with concurrent requests,
whose reservations add up.

:class:`Budget` is an immutable value (pure functions return a new one); the
shell's :class:`alband.store.budget_guard.BudgetGuard` holds one behind a lock.
:func:`affordable_prefix` is the same rule vectorised for the jitted simulator,
where a batch is annotated in order and the run stops at the first item the
budget cannot cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from alband.errors import AlbandError

# Settling may not exceed the reservation by more than float rounding.
_TOLERANCE_USD = 1e-12


@dataclass(frozen=True)
class Budget:
    """``limit_usd`` total; ``spent_usd`` settled; ``reserved_usd`` outstanding."""

    limit_usd: float
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.limit_usd, (int, float)) and math.isfinite(self.limit_usd)
                and self.limit_usd > 0):
            raise AlbandError(f"budget must be a finite number of dollars > 0, got {self.limit_usd!r}")

    @property
    def available_usd(self) -> float:
        """Dollars that may still be reserved."""
        return self.limit_usd - self.spent_usd - self.reserved_usd

    def can_reserve(self, amount_usd: float) -> bool:
        return amount_usd >= 0 and fits(self.spent_usd + self.reserved_usd, amount_usd, self.limit_usd)

    def reserve(self, amount_usd: float) -> "Budget":
        """Reserve ``amount_usd``; raises :class:`BudgetExhausted` if it does not fit."""
        from alband.errors import BudgetExhausted

        if amount_usd < 0 or not math.isfinite(amount_usd):
            raise AlbandError(f"a reservation must be a finite amount >= 0, got {amount_usd!r}")
        if not self.can_reserve(amount_usd):
            raise BudgetExhausted(
                f"budget exhausted: ${self.available_usd:.6f} left, next request may cost ${amount_usd:.6f}"
            )
        return replace(self, reserved_usd=self.reserved_usd + amount_usd)

    def settle(self, reserved_usd: float, actual_usd: float) -> "Budget":
        """Replace a reservation by the actual cost (``0 <= actual <= reserved``)."""
        if actual_usd < 0 or actual_usd > reserved_usd + _TOLERANCE_USD:
            raise AlbandError(
                f"actual cost ${actual_usd:.9f} exceeds its reservation ${reserved_usd:.9f}: "
                "the annotator's max-cost bound is wrong"
            )
        return replace(
            self,
            reserved_usd=max(0.0, self.reserved_usd - reserved_usd),
            spent_usd=self.spent_usd + actual_usd,
        )


def fits(spent_usd, amount_usd, limit_usd):
    """The budget test of every purchase: ``spent + amount <= limit`` (floats or arrays, any precision).

    ``spent`` includes what is reserved; ``amount`` is the largest possible
    cost of what is about to be bought.
    """
    return spent_usd + amount_usd <= limit_usd


def affordable_prefix(spent_usd, limit_usd, reserve_usd, actual_usd, xp=np):
    """Which items of an ordered batch are annotated before the budget runs out.

    Item ``k`` is annotated iff every item ``j <= k`` fits:
    ``spent + sum_{i<j} actual_i + reserve_j <= limit``. Returns a boolean mask
    that is a prefix of the batch. ``xp`` is ``numpy`` or ``jax.numpy``.
    """
    paid_before = xp.cumsum(actual_usd) - actual_usd
    each = fits(spent_usd + paid_before, reserve_usd, limit_usd)
    return xp.cumprod(each.astype(xp.int32)).astype(bool)
