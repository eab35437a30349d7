r"""Designs under a dollar budget: items have different annotation costs.

Item ``i`` costs ``c_i > 0`` dollars in expectation (tokens x prices for an
LLM annotator, a wage for a human). Two questions, two tools.

``greedy_budgeted_design`` -- which *distinct* items to buy now, never spending
more than the budget ``C``. The objective
``f(S) = log det(lambda I + sum_{i in S} x_i x_i') - d log lambda`` is monotone
submodular, and the knapsack constraint ``sum_{i in S} c_i <= C`` makes the
plain greedy arbitrarily bad (one expensive item may crowd out many cheap
ones). We use the cost-benefit greedy -- add the affordable item of largest
gain per dollar ``log(1 + x_i' A^{-1} x_i) / c_i`` until nothing affordable is
left -- and return the better of its set and the best single affordable item.
This is the Lagrangian rule (gain minus a price per dollar, the price set by
the budget) with the best-single-item fix of Khuller, Moss and Naor (1999,
coverage) and Krause and Guestrin (2005, "A note on the budgeted maximization
of submodular functions"), which guarantees ``f >= (1 - 1/e)/2 * OPT``. We prefer it to a
continuous design rounded afterwards because the budget is a hard constraint
on distinct items, and the greedy meets it exactly by construction while
rounding a continuous design may overshoot. ``A^{-1}`` and all gains are kept
by Sherman-Morrison updates, O(n d) per pick. Output has a fixed length
``max_items`` plus a ``valid`` mask, so the kernel is jittable. Budget
arithmetic: costs are rounded up and the budget down to float32, and the spend
is summed with Kahan compensation, so the returned set's cost in exact
arithmetic never exceeds the budget.

``cost_weighted_design`` -- how to *spread* a budget when items may be
repeated (the continuous relaxation): maximise ``log det sum_i n_i x_i x_i'``
subject to ``sum_i n_i c_i <= C``, ``n >= 0``. With spend shares
``m_i = n_i c_i / C`` (a point of the simplex at the optimum),
``sum_i n_i x_i x_i' = C sum_i m_i y_i y_i'`` with ``y_i = x_i / sqrt(c_i)``, so
``m`` is the D-optimal design of the cost-scaled pool ``y`` and
``n_i = C m_i / c_i`` (derivation and a cvxpy check in ``theory/design.md``):
an item gets more of the budget exactly when its information per dollar is
high.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from alband.costs.sums import kahan_add, kahan_total
from alband.design._checks import bool_mask, is_concrete, pool_array, positive_float, positive_int
from alband.design.d_optimal import d_optimal_design
from alband.design.result import DesignResult
from alband.design.rounding import _Greedy, ridge_value
from alband.errors import AlbandError

# Relative slack on the float32 budget test, larger than the error of a Kahan sum.
_BUDGET_RTOL = 1e-6


class BudgetedSelection(NamedTuple):
    """Distinct items bought under a budget."""

    indices: Array  # (max_items,) int32; -1 where not valid
    valid: Array  # (max_items,) bool; valid entries come first
    spent_usd: Array  # () total cost of the valid items
    gain: Array  # () log det(lambda I + sum x x') - d log lambda of the valid items


@partial(jax.jit, static_argnames=("max_items",))
def greedy_budgeted_kernel(X: Array, cost_usd: Array, budget_usd: Array, exclude_mask: Array,
                           max_items: int, ridge: float | Array = 1e-2) -> BudgetedSelection:
    """Cost-benefit greedy vs best single item (module docstring), jitted."""
    n, d = X.shape
    dtype = X.dtype
    budget = jnp.asarray(budget_usd, dtype) * (1.0 - _BUDGET_RTOL)
    A_inv, h0 = _Greedy.init(X, ridge_value(X, ridge))
    available0 = (~exclude_mask) & (cost_usd > 0)

    class S(NamedTuple):
        A_inv: Array
        h: Array
        available: Array
        spent: Array
        comp: Array  # Kahan compensation of `spent`
        gain: Array
        picks: Array
        count: Array
        done: Array

    def affordable(s: S) -> Array:
        return s.available & (kahan_total(s.spent, s.comp) + cost_usd <= budget)

    def body(s: S) -> S:
        ok = affordable(s)
        i = jnp.argmax(jnp.where(ok, jnp.log1p(h_clip(s.h)) / cost_usd, -jnp.inf))
        take = ok[i]
        A_inv, h = _Greedy.add(X, s.A_inv, s.h, i, take.astype(dtype))
        spent, comp = kahan_add(s.spent, s.comp, jnp.where(take, cost_usd[i], 0.0))
        return S(A_inv, h, s.available.at[i].set(s.available[i] & ~take), spent, comp,
                 s.gain + jnp.where(take, jnp.log1p(h_clip(s.h[i])), 0.0),
                 s.picks.at[s.count].set(jnp.where(take, i, -1).astype(jnp.int32)),
                 s.count + take.astype(jnp.int32), ~take)

    def h_clip(h):
        return jnp.maximum(h, 0.0)

    zero = jnp.zeros((), dtype)
    no_picks = jnp.full((max_items,), -1, jnp.int32)
    s = S(A_inv, h0, available0, zero, zero, zero, no_picks, jnp.int32(0), jnp.bool_(False))
    s = jax.lax.while_loop(lambda s: (~s.done) & (s.count < max_items), body, s)

    single_ok = available0 & (cost_usd <= budget)
    gains0 = jnp.where(single_ok, jnp.log1p(h_clip(h0)), -jnp.inf)
    j = jnp.argmax(gains0)
    use_single = single_ok[j] & (gains0[j] > s.gain)
    single_picks = jnp.full((max_items,), -1, jnp.int32).at[0].set(j.astype(jnp.int32))
    picks = jnp.where(use_single, single_picks, s.picks)
    valid = picks >= 0
    spent = jnp.where(use_single, cost_usd[j], kahan_total(s.spent, s.comp))
    gain = jnp.where(use_single, gains0[j], s.gain)
    return BudgetedSelection(picks, valid, spent, gain)


def _round_up_f32(values: np.ndarray) -> np.ndarray:
    v32 = values.astype(np.float32)
    return np.where(v32.astype(np.float64) < values, np.nextafter(v32, np.float32(np.inf)), v32)


def greedy_budgeted_design(
    X: Any,
    cost_usd: Any,
    budget_usd: float,
    exclude_mask: Any | None = None,
    *,
    max_items: int | None = None,
    ridge: float = 1e-2,
) -> BudgetedSelection:
    """Distinct items of largest log-det gain whose total cost fits ``budget_usd``.

    Args:
      X: pool ``(n, d)``.
      cost_usd: ``(n,)`` expected cost of labelling each item, > 0.
      budget_usd: dollars available, >= 0.
      exclude_mask: ``(n,)`` True for items not to buy (already labelled).
      max_items: length of the output (default: the most items the budget can
        buy, i.e. the cheapest ones first, capped at ``n``).
      ridge: relative ridge (see :func:`alband.design.rounding.ridge_value`).

    Returns:
      :class:`BudgetedSelection`; ``cost_usd[indices[valid]].sum() <= budget_usd``.
    """
    Xj = pool_array(X, "X")
    n = Xj.shape[0]
    mask = bool_mask(exclude_mask, n, "exclude_mask")
    if is_concrete(cost_usd):
        costs = np.asarray(cost_usd, dtype=np.float64)
        if costs.shape != (n,):
            raise AlbandError(f"cost_usd must have shape ({n},) (one cost per pool item), got {costs.shape}")
        bad = np.flatnonzero(~(np.isfinite(costs) & (costs > 0)))
        if bad.size:
            raise AlbandError(f"cost_usd[{bad[0]}] = {costs[bad[0]]!r}: every item's cost must be a finite number > 0")
        budget = float(budget_usd)
        if not (np.isfinite(budget) and budget >= 0):
            raise AlbandError(f"budget_usd must be a finite number of dollars >= 0, got {budget_usd!r}")
        budget32 = np.float32(budget)
        if float(budget32) > budget:
            budget32 = np.nextafter(budget32, np.float32(-np.inf))
        if max_items is None:
            cheapest = np.sort(costs[~np.asarray(mask)])
            max_items = max(1, int(np.searchsorted(np.cumsum(cheapest), budget, side="right")))
        costs_j, budget_j = jnp.asarray(_round_up_f32(costs)), jnp.asarray(budget32)
    else:
        costs_j, budget_j = jnp.asarray(cost_usd, jnp.float32), jnp.asarray(budget_usd, jnp.float32)
        max_items = n if max_items is None else max_items
    max_items = positive_int(max_items, "max_items")
    return greedy_budgeted_kernel(Xj, costs_j, budget_j, mask, max_items, positive_float(ridge, "ridge"))


class CostWeightedDesign(NamedTuple):
    """A budget spread over items, repetitions allowed (continuous relaxation)."""

    expected_counts: np.ndarray  # (n,) n_i = C m_i / c_i, labels of item i
    spend_share: np.ndarray  # (n,) m_i, fraction of the budget spent on item i
    design: DesignResult  # D-optimal design of y_i = x_i / sqrt(c_i) over the items not excluded


def cost_weighted_design(
    X: Any,
    cost_usd: Any,
    budget_usd: float,
    exclude_mask: Any | None = None,
    **design_options: Any,
) -> CostWeightedDesign:
    """Continuous budget-optimal allocation: D-optimal design of ``x_i / sqrt(c_i)``.

    ``sum_i expected_counts_i * cost_usd_i == budget_usd``; options go to
    :func:`alband.design.d_optimal_design`.
    """
    Xn = np.asarray(pool_array(X, "X"), dtype=np.float64)
    n = Xn.shape[0]
    costs = np.asarray(cost_usd, dtype=np.float64)
    if costs.shape != (n,) or not (np.isfinite(costs) & (costs > 0)).all():
        raise AlbandError(f"cost_usd must be ({n},) finite costs > 0, got shape {costs.shape}")
    budget = positive_float(budget_usd, "budget_usd")
    keep = ~np.asarray(bool_mask(exclude_mask, n, "exclude_mask"))
    Y = (Xn[keep] / np.sqrt(costs[keep])[:, None]).astype(np.float32)
    design = d_optimal_design(Y, **design_options)
    share = np.zeros(n)
    share[keep] = np.asarray(design.weights, dtype=np.float64)
    share /= share.sum()
    counts = budget * share / costs
    return CostWeightedDesign(counts, share, design)
