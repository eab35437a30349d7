"""Money as a first-class value: prices, usage-to-dollars, budget reserve/settle.

Pure arithmetic only (no I/O, no clocks); the shell's thread-safe guard in
:mod:`alband.store.budget_guard` wraps :mod:`alband.costs.budget`.
"""

from alband.costs.budget import Budget, affordable_prefix
from alband.costs.prices import Price, Usage, usage_cost_usd

__all__ = ["Budget", "Price", "Usage", "affordable_prefix", "usage_cost_usd"]
