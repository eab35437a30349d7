"""Money as a first-class value: prices, usage-to-dollars, budget reserve/settle.

Dollars are added one way, :mod:`alband.costs.sums`; every purchase's budget
test is :func:`alband.costs.budget.fits`. Pure arithmetic only (no I/O, no clocks); the shell's thread-safe guard in
:mod:`alband.store.budget_guard` wraps :mod:`alband.costs.budget`.
"""

from alband.costs.budget import Budget, affordable_prefix, fits
from alband.costs.prices import Price, Usage, usage_cost_usd

__all__ = ["Budget", "Price", "Usage", "affordable_prefix", "fits", "usage_cost_usd"]
