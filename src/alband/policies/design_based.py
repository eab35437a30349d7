r"""Query policies from optimal experimental design (wrapping :mod:`alband.design`).

A linear model ``y = x' theta + noise`` learns most from the items whose
embeddings span the pool's directions evenly. Three policies:

* ``"g_design"`` -- a D-/G-optimal batch of ``B`` distinct unqueried items.
  Two solvers, chosen by ``solver`` (default ``"auto"``: ``"frank-wolfe"`` when
  ``B >= k``, ``"greedy"`` when ``B < k``, with ``k`` the working dimension,
  ``d`` or ``n_components``):

  - ``"frank-wolfe"``: the Kiefer-Wolfowitz design ``pi`` over the *unqueried*
    embeddings (maximise ``log det sum_i pi_i x_i x_i'``, equivalently minimise
    ``max_i x_i' V(pi)^{-1} x_i``; Kiefer and Wolfowitz 1960), by Frank-Wolfe
    with away steps (:func:`alband.design.wolfe_atwood_design`) to the
    certificate ``max_i g_i <= d (1 + eps)``, then rounded to ``B`` distinct
    unqueried items by greedy rank-1 log-det rounding on the design's support
    (:func:`alband.design.round_design_kernel`). Queried rows are zeroed before
    the design: a zero row adds nothing to ``V`` and has leverage 0, so it
    never enters the support.
  - ``"greedy"``: the regularised (Bayesian) D-optimal batch
    (:func:`alband.design.greedy_batch_design_kernel`): maximise
    ``log det(A_0 + sum_{i in S} x_i x_i')`` over batches ``S`` of unqueried
    items, with ``A_0 = lambda I + sum_{j queried} x_j x_j'`` the posterior
    precision of the linear model given the labels already bought, by ``B``
    greedy rank-1 steps (each takes the item of largest predictive variance
    ``x' A^{-1} x``; ``1 - 1/e`` of the best batch's gain, measured >= 98%).

  Why ``"auto"`` switches at ``B = k``: a design's support has at least ``k``
  points, so with ``B < k`` *no* batch realises it -- ``sum_{i in S} x_i x_i'``
  has rank ``<= B < k`` and the unregularised G-criterion is infinite for
  every batch. Frank-Wolfe then spends thousands of O(N k) steps (3.2 s at
  N = 10k, d = 384 on 2 cores) certifying a design whose support (several
  ``k`` points at ``eps = 0.1``) the rounding mostly discards. The regularised
  criterion is finite for every batch, is the quantity the learner's posterior
  actually gets, conditions on what was labelled in earlier rounds, and costs
  one O(N k^2) pass plus ``B`` O(N k) passes. With ``B >= k`` the
  Kiefer-Wolfowitz design is the better target (it spreads the batch over the
  whole design, not only where the current posterior is widest) and its
  solve is cheap at small ``k``.
* ``"go"`` -- GO of Mukherjee et al. (2024, arXiv 2404.08846): greedily label
  the item that most reduces the largest posterior predictive variance
  ``max_{z in Z} z' Sigma z`` over a target set ``Z``, with the queried items
  conditioning ``Sigma`` (:func:`alband.design.go_select_kernel`). The paper's
  targets are the test inputs; a policy never sees the test set, so ``Z`` is a
  uniformly random subset of ``n_targets`` pool items drawn with the round key
  (``n_targets=None``: the whole pool, which costs an ``(N, N)`` matrix).
* ``"budgeted_design"`` -- distinct unqueried items of largest log-det gain per
  expected dollar whose total expected cost fits ``round_budget_usd``
  (:func:`alband.design.greedy_budgeted_kernel`: cost-benefit greedy vs best
  single item). Empty slots of the batch are filled with already-queried items,
  which the loop drops without buying (see :mod:`alband.policies.cost_aware`).
  Costs below ``min_cost_usd`` count as ``min_cost_usd``.

**Cost and ``n_components``.** A design in ``d`` dimensions has at least ``d``
support points and Frank-Wolfe's steps cost O(N d) each, so at ``d = 384`` a
design to a tight certificate takes seconds to minutes (see the acquisition
benchmark; ``g_design(solver="frank-wolfe")`` forces it). With
``n_components=k`` every policy works on the projection of the embeddings onto the top ``k`` eigenvectors of the unqueried items' second
moment ``sum_i x_i x_i'`` (one O(N d^2) product and a ``d x d`` eigenproblem):
the directions that carry most of the information matrix. With ``B < d`` a
batch cannot span all ``d`` directions anyway.

Every policy returns ``B`` distinct indices; slots the design leaves empty (no
unqueried item left) are filled by :func:`alband.policies.coreset.fill_invalid`.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from alband.design import (
    go_select_kernel,
    greedy_batch_design_kernel,
    greedy_budgeted_kernel,
    round_design_kernel,
    wolfe_atwood_design,
)
from alband.errors import AlbandError
from alband.policies.base import QueryPolicy, RoundContext, _stateless_init, _stateless_update
from alband.policies.coreset import fill_invalid
from alband.policies.registry import register_policy

Array = jax.Array

DEFAULT_EPS = 0.1
DEFAULT_MAX_ITER = 100_000
G_DESIGN_SOLVERS = ("auto", "greedy", "frank-wolfe")


def principal_projection(x: Array, weights: Array, n_components: int | None) -> Array:
    """``x`` projected onto the top ``n_components`` eigenvectors of ``sum_i w_i x_i x_i'`` (``x`` if None)."""
    x = x.astype(jnp.float32)
    if n_components is None or n_components >= x.shape[1]:
        return x
    root = jnp.sqrt(weights.astype(jnp.float32))[:, None]
    second_moment = (x * root).T @ (x * root)
    _, vectors = jnp.linalg.eigh(second_moment)  # ascending eigenvalues
    return x @ vectors[:, ::-1][:, :n_components]


def resolve_g_design_solver(solver: str, batch_size: int, dim: int, n_components: int | None) -> str:
    """``"auto"`` -> ``"frank-wolfe"`` when ``batch_size >= k``, else ``"greedy"`` (``k`` the working dimension)."""
    if solver != "auto":
        return solver
    k = dim if n_components is None else min(dim, n_components)
    return "frank-wolfe" if batch_size >= k else "greedy"


@partial(jax.jit, static_argnames=("batch_size", "n_components", "solver"))
def g_design_select(
    x: Array,
    queried: Array,
    batch_size: int,
    *,
    eps: float = DEFAULT_EPS,
    max_iter: int = DEFAULT_MAX_ITER,
    n_components: int | None = None,
    ridge: float = 1e-2,
    solver: str = "auto",
) -> Array:
    """``batch_size`` distinct items: a D-/G-optimal batch of the unqueried rows (module docstring)."""
    if solver not in G_DESIGN_SOLVERS:
        raise AlbandError(f"g_design: solver must be one of {', '.join(G_DESIGN_SOLVERS)}, got {solver!r}")
    fresh = ~queried
    y = principal_projection(x, fresh, n_components)
    if resolve_g_design_solver(solver, batch_size, x.shape[1], n_components) == "greedy":
        picks = greedy_batch_design_kernel(y, batch_size, queried, queried, ridge)
        return fill_invalid(picks, picks >= 0, queried)
    y_fresh = jnp.where(fresh[:, None], y, 0.0)
    design = wolfe_atwood_design(y_fresh, eps, max_iter)
    weights = jnp.where(jnp.isfinite(design.weights) & fresh, design.weights, 0.0)
    picks = round_design_kernel(y, weights, batch_size, queried, ridge)
    return fill_invalid(picks, picks >= 0, queried)


def go_targets(key: Array, n_items: int, n_targets: int | None) -> Array | None:
    """Pool indices of ``n_targets`` distinct random targets (None: the whole pool)."""
    if n_targets is None or n_targets >= n_items:
        return None
    return jax.lax.top_k(jax.random.uniform(key, (n_items,)), n_targets)[1]


@partial(jax.jit, static_argnames=("batch_size", "n_targets", "n_components"))
def go_policy_select(
    x: Array,
    queried: Array,
    key: Array,
    batch_size: int,
    *,
    n_targets: int | None = 256,
    lam: float = 1.0,
    sigma: float = 1.0,
    n_components: int | None = None,
) -> Array:
    """``batch_size`` distinct items by GO against random pool targets (module docstring)."""
    y = principal_projection(x, ~queried, n_components)
    targets = go_targets(key, y.shape[0], n_targets)
    z = y if targets is None else y[targets]
    picks = go_select_kernel(y, z, batch_size, queried, lam, sigma).indices
    return fill_invalid(picks, picks >= 0, queried)


def _positive_number(value, name: str, policy: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AlbandError(f"{policy}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _optional_positive_int(value, name: str, policy: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AlbandError(f"{policy}: {name} must be an integer >= 1 or None, got {value!r}")
    return value


@register_policy("g_design")
def g_design(
    eps: float = DEFAULT_EPS,
    max_iter: int = DEFAULT_MAX_ITER,
    n_components: int | None = None,
    ridge: float = 1e-2,
    solver: str = "auto",
) -> QueryPolicy:
    """D-/G-optimal batch of ``B`` distinct unqueried items (``solver``: module docstring)."""
    eps = _positive_number(eps, "eps", "g_design")
    max_iter = _optional_positive_int(max_iter, "max_iter", "g_design") or DEFAULT_MAX_ITER
    n_components = _optional_positive_int(n_components, "n_components", "g_design")
    ridge = _positive_number(ridge, "ridge", "g_design")
    if solver not in G_DESIGN_SOLVERS:
        raise AlbandError(f"g_design: solver must be one of {', '.join(G_DESIGN_SOLVERS)}, got {solver!r}")

    def select(state, ctx: RoundContext, key: Array, batch_size: int):
        return g_design_select(ctx.x, ctx.queried, batch_size, eps=eps, max_iter=max_iter,
                               n_components=n_components, ridge=ridge, solver=solver), state

    return QueryPolicy("g_design", _stateless_init, select, _stateless_update)


@register_policy("go")
def go(n_targets: int | None = 256, lam: float = 1.0, sigma: float = 1.0, n_components: int | None = None) -> QueryPolicy:
    """GO (Mukherjee et al. 2024) with a random subset of the pool as targets."""
    n_targets = _optional_positive_int(n_targets, "n_targets", "go")
    lam = _positive_number(lam, "lam", "go")
    sigma = _positive_number(sigma, "sigma", "go")
    n_components = _optional_positive_int(n_components, "n_components", "go")

    def select(state, ctx: RoundContext, key: Array, batch_size: int):
        return go_policy_select(ctx.x, ctx.queried, key, batch_size, n_targets=n_targets, lam=lam, sigma=sigma,
                                n_components=n_components), state

    return QueryPolicy("go", _stateless_init, select, _stateless_update)


@register_policy("budgeted_design")
def budgeted_design(
    round_budget_usd: float | None = None,
    n_components: int | None = None,
    ridge: float = 1e-2,
    min_cost_usd: float = 1e-9,
) -> QueryPolicy:
    """Largest log-det gain per dollar within ``round_budget_usd`` of expected cost per round."""
    if round_budget_usd is None:
        raise AlbandError("policy 'budgeted_design' needs round_budget_usd (the dollars each round may spend)")
    allowance = _positive_number(round_budget_usd, "round_budget_usd", "budgeted_design")
    n_components = _optional_positive_int(n_components, "n_components", "budgeted_design")
    ridge = _positive_number(ridge, "ridge", "budgeted_design")
    floor = _positive_number(min_cost_usd, "min_cost_usd", "budgeted_design")

    def select(state, ctx: RoundContext, key: Array, batch_size: int):
        y = principal_projection(ctx.x, ~ctx.queried, n_components)
        cost = jnp.maximum(ctx.cost_usd.astype(jnp.float32), floor)
        chosen = greedy_budgeted_kernel(y, cost, jnp.float32(allowance), ctx.queried, batch_size, ridge)
        return fill_invalid(chosen.indices, chosen.valid, ctx.queried, prefer_queried=True), state

    return QueryPolicy("budgeted_design", _stateless_init, select, _stateless_update)
