"""Spending a dollar budget evenly over a stream: a coverage reserve and a dual price.

Coverage reserve. A router that may pay expensive arms keeps, after each
payment, enough for the least it pays on every later item::

    remaining - cost >= L m + 2 s (L / sqrt(n) + sqrt(L)),    L = items_left - 1

where ``m`` and ``s`` are the running mean and standard deviation, over the
``n`` items seen so far (this one included), of the *floor price*: the
cheapest available arm, or for a cascade the price of its first available
stage. ``L m`` is the expected cost of labeling the rest of the stream at the
floor; the two ``2 s`` terms are upper confidence margins for the error of
``m`` (times ``L``) and for the spread of the sum of ``L`` future prices, so a
heavy-tailed floor (an arm missing on a few items) does not drain the budget
before the end of the stream. Without a reserve a router front-loads its
spending and leaves the end of the stream unlabeled.

Pace gate. A router without a price on dollars (the cascade, random) spends
beyond its floor only while it is on pace::

    spent + cost <= B * (t + 1) / N + burst,     burst = 2% of B

(``t`` items already processed out of ``N``), so a small budget is spread
over the stream instead of being spent on its first items.

Dual price (bandits with knapsacks). The contextual router maximises
``reward - lambda * cost / c_scale`` and updates the Lagrange multiplier of the
budget constraint by projected online gradient descent on the dual, as in the
primal-dual algorithms for bandits with knapsacks (Badanidiyuru, Kleinberg and
Slivkins 2013; Agrawal and Devanur 2014, 2016)::

    lambda <- max(0, lambda + eta (spend_t - pace_t) / c_scale),
    pace_t = remaining_t / items_left_t,      eta = kappa * c_scale / B

Costs are measured in units of ``c_scale`` (the largest per-arm mean cost), so
the penalty of the most expensive arm is on the scale of the reward (a
probability). ``eta`` is chosen so that ``lambda`` moves by ``kappa`` per
budget's worth of over- or under-spending: with ``kappa = 20`` the price can
sweep its whole useful range within 5% of the budget, and one purchase of the
most expensive arm moves it by ``kappa c_scale / B`` (fine when the budget buys
many such labels). Spending above the pace raises the price, spending below it
lowers it, so the budget is spent evenly over the stream.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.routing.base import Feedback, RouterSetup, StepContext

Array = jax.Array


class FloorState(NamedTuple):
    total: Array  # sum over seen items of their floor price
    total_sq: Array  # sum of squares
    count: Array


class FloorEstimate(NamedTuple):
    mean: Array
    std: Array
    count: Array


def init_floor() -> FloorState:
    return FloorState(jnp.float32(0.0), jnp.float32(0.0), jnp.float32(0.0))


def cheapest_available(cost_usd: Array, available: Array) -> tuple[Array, Array]:
    """(cheapest available price, whether any arm is available) of one item."""
    cur = jnp.min(jnp.where(available, cost_usd, jnp.inf))
    has = jnp.isfinite(cur)
    return jnp.where(has, cur, 0.0), has


def update_floor_with(state: FloorState, price: Array, has: Array) -> FloorState:
    p = jnp.where(has, price, 0.0)
    return FloorState(state.total + p, state.total_sq + p * p,
                      state.count + has.astype(jnp.float32))


def floor_estimate_with(state: FloorState, price: Array, has: Array) -> FloorEstimate:
    """Mean and standard deviation of the floor price, the current item's ``price`` included."""
    s = update_floor_with(state, price, has)
    n = jnp.maximum(s.count, 1.0)
    mean = s.total / n
    var = jnp.maximum(s.total_sq / n - mean * mean, 0.0)
    return FloorEstimate(mean, jnp.sqrt(var), s.count)


def floor_estimate(state: FloorState, ctx: StepContext) -> FloorEstimate:
    """:func:`floor_estimate_with` for the cheapest available arm of the item."""
    return floor_estimate_with(state, *cheapest_available(ctx.price_usd, ctx.available))


def update_floor(state: FloorState, fb: Feedback) -> FloorState:
    return update_floor_with(state, *cheapest_available(fb.price_usd, fb.available))


def coverage_reserve_ok(remaining_usd: Array, cost_usd: Array, items_left: Array,
                        floor: FloorEstimate) -> Array:
    """True where paying ``cost_usd`` now keeps the reserve of the module docstring."""
    later = jnp.maximum(items_left - 1, 0).astype(jnp.float32)
    n = jnp.maximum(floor.count, 1.0)
    reserve = later * floor.mean + 2.0 * floor.std * (later / jnp.sqrt(n) + jnp.sqrt(later))
    return remaining_usd - cost_usd >= reserve


def reserved_choices(state: FloorState, ctx: StepContext) -> tuple[Array, Array]:
    """Masks over arms: (available and affordable, ... and keeping the coverage reserve)."""
    affordable = ctx.available & (ctx.price_usd <= ctx.remaining_usd)
    keeps = affordable & coverage_reserve_ok(ctx.remaining_usd, ctx.price_usd, ctx.items_left,
                                             floor_estimate(state, ctx))
    return affordable, keeps


PACE_BURST = 0.02


def on_pace(budget_usd: Array, n_items: Array, remaining_usd: Array, items_left: Array,
            cost_usd: Array) -> Array:
    """True where spending ``cost_usd`` more on this item keeps the even pace (module docstring)."""
    budget = jnp.asarray(budget_usd, jnp.float32)
    spent = budget - remaining_usd
    done = (n_items - items_left + 1).astype(jnp.float32)
    allowance = budget * done / jnp.maximum(n_items, 1).astype(jnp.float32) + PACE_BURST * budget
    return spent + cost_usd <= allowance


class DualPrice(NamedTuple):
    lam: Array  # () current price of one c_scale of dollars, in reward units
    step: Array  # () eta of the module docstring
    cost_scale: Array  # () c_scale


def init_dual(setup: RouterSetup, kappa: float = 20.0, lam0: float = 0.0) -> DualPrice:
    scale = jnp.maximum(jnp.asarray(setup.cost_scale, jnp.float32), 1e-30)
    budget = jnp.maximum(jnp.asarray(setup.budget_usd, jnp.float32), 1e-30)
    return DualPrice(jnp.float32(lam0), jnp.float32(kappa) * scale / budget, scale)


def dual_penalty(dual: DualPrice, cost_usd: Array) -> Array:
    """``lambda * cost / c_scale`` per arm."""
    return dual.lam * cost_usd / dual.cost_scale


def update_dual(dual: DualPrice, fb: Feedback) -> DualPrice:
    pace = fb.remaining_usd / jnp.maximum(fb.items_left, 1).astype(jnp.float32)
    lam = jnp.maximum(dual.lam + dual.step * (fb.spend_usd - pace) / dual.cost_scale, 0.0)
    return dual._replace(lam=lam)
