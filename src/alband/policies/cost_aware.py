r"""Cost-aware selection: utility per dollar, and a batch that fits a round's dollar allowance.

Items cost different amounts to annotate (``ctx.cost_usd``: the expected
dollars of each item -- tokens x prices for an LLM, a wage for a human).
Two ways to spend well, because neither alone is right:

* **Utility per dollar** (``"per_dollar"``, ``"entropy_per_dollar"``, ...): rank
  items by ``u_i / c_i`` and take the top ``B`` (the rule of budgeted bandits,
  e.g. Xia et al. 2015, and of cost-sensitive active learning, Settles et al.
  2008). Cheap to compute, but a ratio alone can lose: a cheap useless item
  (``u = 0.01, c = $0.0001``) outranks an expensive useful one
  (``u = 1, c = $0.05``), and with a fixed batch size ``B`` the ratio ignores
  how much money is actually available.
* **Budget-constrained batch** (``"budgeted"``): choose the batch to maximise
  the *total* utility subject to the round's dollar allowance ``A`` and at most
  ``B`` items -- a knapsack with a cardinality bound. We run two greedy passes
  and keep the one of larger total utility: (i) repeatedly take the affordable
  item of largest ``u_i / c_i`` (items that no longer fit are skipped, not a
  reason to stop); (ii) repeatedly take the affordable item of largest ``u_i``.
  Keeping the better of the ratio greedy and a utility-first greedy (whose
  first pick is the best single affordable item) is the classic fix that gives
  the 1/2-approximation for the knapsack (Khuller, Moss and Naor 1999); the
  ratio greedy alone can be arbitrarily bad. Each pass is a ``lax.fori_loop``
  over ``B`` with one O(N) masked argmax per pick. Spending is summed with
  Kahan compensation and compared to ``A (1 - 1e-6)``, so the chosen items'
  float32 costs sum to at most ``A`` in exact arithmetic (an item that would
  fill the allowance to within one part per million is not taken).

The budgeted batch can hold fewer than ``B`` items. A policy must still return
``B`` distinct indices, so the empty slots are filled with items that are
already queried -- the loop and the simulator drop queried items without
buying them -- and only when fewer than the missing number of items are queried
(e.g. with no seed set) with the remaining unqueried items of largest ratio,
which are then bought beyond the allowance. The allowance is on the *expected*
cost ``ctx.cost_usd``; the run's hard budget is still enforced by the ledger.

Utilities must be non-negative; :func:`utility_function` provides them for the
built-in scores (``margin`` as ``1 - (p_(1) - p_(2))``). Costs below
``min_cost_usd`` (free annotators) are treated as ``min_cost_usd`` in ratios,
so free items come first, ordered by utility.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from alband.costs.sums import kahan_add, kahan_total
from alband.errors import AlbandError
from alband.policies.bald import bald_scores, check_bald_options
from alband.policies.base import QueryPolicy, RoundContext, _stateless_init, _stateless_update, score_policy
from alband.policies.coreset import fill_invalid
from alband.policies.density import check_density_options, information_density_scores, uncertainty
from alband.policies.registry import register_policy

Array = jax.Array
Utility = Callable[[RoundContext, Array], Array]

# Relative slack on the float32 allowance test, larger than the error of a Kahan sum.
_ALLOWANCE_RTOL = 1e-6
DEFAULT_MIN_COST_USD = 1e-9
UTILITIES = ("entropy", "least_confidence", "margin", "random", "bald", "information_density")


def utility_function(base: str, **options: Any) -> Utility:
    """A non-negative utility ``(ctx, key) -> (N,)`` for the score named ``base``.

    ``options`` go to the score (``bald``: ``n_samples``, ``prior_c``,
    ``hessian``; ``information_density``: ``beta``, ``measure``).
    """
    if base in ("entropy", "least_confidence", "margin", "random") and options:
        raise AlbandError(f"utility '{base}' takes no options, got {sorted(options)}")
    if base in ("entropy", "least_confidence", "margin"):
        return lambda ctx, key: uncertainty(ctx.probs, base)
    if base == "random":
        return lambda ctx, key: jax.random.uniform(key, ctx.queried.shape)
    if base == "bald":
        bald_options = {"n_samples": 20, "prior_c": 1.0, "hessian": "block", **options}
        unknown = set(bald_options) - {"n_samples", "prior_c", "hessian"}
        if unknown:
            raise AlbandError(f"utility 'bald' has no option(s) {sorted(unknown)}")
        check_bald_options(**bald_options)
        return lambda ctx, key: bald_scores(ctx, key, **bald_options)
    if base == "information_density":
        density_options = {"beta": 1.0, "measure": "entropy", **options}
        unknown = set(density_options) - {"beta", "measure"}
        if unknown:
            raise AlbandError(f"utility 'information_density' has no option(s) {sorted(unknown)}")
        check_density_options(**density_options)
        return lambda ctx, key: information_density_scores(
            ctx.probs, ctx.x, ctx.queried, beta=float(density_options["beta"]), measure=density_options["measure"]
        )
    raise AlbandError(f"unknown utility '{base}' for a cost-aware policy; choose one of {', '.join(UTILITIES)}")


def per_dollar_scores(utility: Array, cost_usd: Array, min_cost_usd: float = DEFAULT_MIN_COST_USD) -> Array:
    """``u_i / max(c_i, min_cost_usd)``."""
    return utility / jnp.maximum(cost_usd.astype(jnp.float32), jnp.float32(min_cost_usd))


class BudgetedBatch(NamedTuple):
    """A batch that fits a dollar allowance (valid entries first)."""

    indices: Array  # (B,) int32; -1 where not valid
    valid: Array  # (B,) bool
    spent_usd: Array  # () total expected cost of the valid items
    utility: Array  # () total utility of the valid items


def _greedy_fill(score: Array, utility: Array, cost: Array, available: Array, allowance: Array, batch_size: int) -> BudgetedBatch:
    """Repeatedly take the affordable available item of largest ``score`` (skip what no longer fits)."""

    def body(t, state):
        available, spent, comp, total, picks = state
        fits = available & (kahan_total(spent, comp) + cost <= allowance)
        i = jnp.argmax(jnp.where(fits, score, -jnp.inf))
        take = fits[i]
        new_spent, comp = kahan_add(spent, comp, jnp.where(take, cost[i], 0.0))  # compensated sum of the costs
        total = total + jnp.where(take, utility[i], 0.0)
        picks = picks.at[t].set(jnp.where(take, i, -1).astype(jnp.int32))
        return available.at[i].set(available[i] & ~take), new_spent, comp, total, picks

    zero = jnp.zeros((), jnp.float32)
    init = (available, zero, zero, zero, jnp.full((batch_size,), -1, jnp.int32))
    _, spent, comp, total, picks = jax.lax.fori_loop(0, batch_size, body, init)
    # Taken items are written in order, so the valid entries come first.
    return BudgetedBatch(picks, picks >= 0, spent - comp, total)


@partial(jax.jit, static_argnames=("batch_size", "min_cost_usd"))
def budgeted_batch(
    utility: Array,
    cost_usd: Array,
    queried: Array,
    allowance_usd: Array | float,
    batch_size: int,
    *,
    min_cost_usd: float = DEFAULT_MIN_COST_USD,
) -> BudgetedBatch:
    """At most ``batch_size`` unqueried items of large total utility whose costs fit ``allowance_usd``.

    The better (by total utility) of the ratio greedy and the utility greedy
    (module docstring). ``utility`` must be >= 0; jittable.
    """
    utility = jnp.maximum(utility.astype(jnp.float32), 0.0)
    cost = jnp.maximum(cost_usd.astype(jnp.float32), 0.0)
    allowance = jnp.asarray(allowance_usd, jnp.float32) * (1.0 - _ALLOWANCE_RTOL)
    available = ~queried
    by_ratio = _greedy_fill(per_dollar_scores(utility, cost, min_cost_usd), utility, cost, available, allowance, batch_size)
    by_utility = _greedy_fill(utility, utility, cost, available, allowance, batch_size)
    use_ratio = by_ratio.utility >= by_utility.utility
    return jax.tree_util.tree_map(lambda a, b: jnp.where(use_ratio, a, b), by_ratio, by_utility)


def _check_min_cost(min_cost_usd: float) -> float:
    if not (isinstance(min_cost_usd, (int, float)) and math.isfinite(min_cost_usd) and min_cost_usd > 0):
        raise AlbandError(f"min_cost_usd must be a finite number of dollars > 0, got {min_cost_usd!r}")
    return float(min_cost_usd)


@register_policy("per_dollar")
def per_dollar(base: str = "entropy", min_cost_usd: float = DEFAULT_MIN_COST_USD, **options: Any) -> QueryPolicy:
    """Top-``B`` of ``utility / expected cost`` for the utility named ``base`` (module docstring)."""
    utility = utility_function(base, **options)
    floor = _check_min_cost(min_cost_usd)
    return score_policy(f"{base}_per_dollar", lambda ctx, key: per_dollar_scores(utility(ctx, key), ctx.cost_usd, floor))


def _register_per_dollar_alias(base: str) -> None:
    def factory(min_cost_usd: float = DEFAULT_MIN_COST_USD, **options: Any) -> QueryPolicy:
        return per_dollar(base, min_cost_usd, **options)

    factory.__doc__ = f"``per_dollar`` with ``base='{base}'``."
    register_policy(f"{base}_per_dollar")(factory)


for _base in ("entropy", "least_confidence", "margin", "bald", "information_density"):
    _register_per_dollar_alias(_base)


@register_policy("budgeted")
def budgeted(
    base: str = "entropy",
    round_budget_usd: float | None = None,
    min_cost_usd: float = DEFAULT_MIN_COST_USD,
    **options: Any,
) -> QueryPolicy:
    """The batch of largest total ``base`` utility whose expected cost fits ``round_budget_usd`` per round."""
    if round_budget_usd is None:
        raise AlbandError("policy 'budgeted' needs round_budget_usd (the dollars each round may spend)")
    if isinstance(round_budget_usd, bool) or not (
        isinstance(round_budget_usd, (int, float)) and math.isfinite(round_budget_usd) and round_budget_usd > 0
    ):
        raise AlbandError(f"budgeted: round_budget_usd must be a finite number of dollars > 0, got {round_budget_usd!r}")
    utility = utility_function(base, **options)
    floor = _check_min_cost(min_cost_usd)
    allowance = float(round_budget_usd)

    def select(state, ctx: RoundContext, key: Array, batch_size: int):
        u = utility(ctx, key)
        batch = budgeted_batch(u, ctx.cost_usd, ctx.queried, allowance, batch_size, min_cost_usd=floor)
        ratio = per_dollar_scores(jnp.maximum(u, 0.0), ctx.cost_usd, floor)
        return fill_invalid(batch.indices, batch.valid, ctx.queried, prefer_queried=True, order=ratio), state

    return QueryPolicy(f"budgeted_{base}", _stateless_init, select, _stateless_update)
