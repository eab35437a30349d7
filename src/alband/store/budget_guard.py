"""A thread-safe holder of a :class:`alband.costs.Budget` (reserve before, settle after).

Concurrent workers each call :meth:`BudgetGuard.reserve` with the largest
possible cost of their request; the lock makes the check-and-reserve atomic,
so outstanding reservations plus settled spending never exceed the limit.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace

from alband.costs.budget import Budget


@dataclass(frozen=True)
class Reservation:
    """A claim on the budget, returned by :meth:`BudgetGuard.reserve`."""

    token: int
    amount_usd: float


class BudgetGuard:
    """Reserve / settle / release dollars atomically across threads."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self._open: dict[int, float] = {}
        self._tokens = itertools.count()

    @property
    def budget(self) -> Budget:
        with self._lock:
            return self._budget

    def can_reserve(self, amount_usd: float) -> bool:
        with self._lock:
            return self._budget.can_reserve(amount_usd)

    def reserve(self, amount_usd: float) -> Reservation:
        """Reserve ``amount_usd`` or raise :class:`alband.errors.BudgetExhausted`."""
        with self._lock:
            self._budget = self._budget.reserve(amount_usd)
            token = next(self._tokens)
            self._open[token] = amount_usd
            return Reservation(token, amount_usd)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Turn a reservation into spending of ``actual_usd`` (<= the reservation)."""
        with self._lock:
            amount = self._open.pop(reservation.token)
            self._budget = self._budget.settle(amount, actual_usd)

    def settle_overrun(self, reservation: Reservation, actual_usd: float) -> None:
        """Record ``actual_usd`` above its reservation (the provider billed more than the bound).

        Spending then includes the whole real cost, which may pass the limit:
        every later :meth:`reserve` fails, so nothing more is bought.
        """
        with self._lock:
            amount = self._open.pop(reservation.token)
            self._budget = replace(self._budget, reserved_usd=max(0.0, self._budget.reserved_usd - amount),
                                   spent_usd=self._budget.spent_usd + max(actual_usd, amount))

    def release(self, reservation: Reservation) -> None:
        """Cancel a reservation whose request billed nothing."""
        self.settle(reservation, 0.0)
