"""Linear bandits with the pool items as arms: LinUCB, linear Thompson sampling (Gaussian and Laplace-logistic), greedy.

Arms and features. Every unqueried pool item is an arm; one linear model is
shared by all of them, over the features ``phi_i = [x_i, 1]`` (the pool
embedding plus a bias feature; ``bias=False`` drops it), ``D = d + 1``.

Reward. Labelling item ``i`` pays the current learner's *surprise* on it, seen
in ``update`` from the annotators' answers (only for items bought with a valid
label, ``accepted & label >= 0``); ``p_i`` are the learner's predictive
probabilities *before* it is refitted on those labels:

* ``reward="soft"`` (default): ``r_i = 1 - p_i[y_i]``, the probability that
  the learner's prediction drawn from ``p_i`` is wrong; graded in ``[0, 1]``,
  it tells a confident mistake from a near miss and is less noisy than
* ``reward="zero_one"``: ``r_i = 1[argmax_c p_i[c] != y_i]``, a Bernoulli reward.

The reward model is ``E[r_i] = phi_i' theta`` (linear) or ``sigmoid(phi_i' theta)``
(logistic). The learner improves as labels arrive, so rewards drift down over
a run; the bandit treats them as stationary (a deliberate simplification: the
model ranks items by how surprising items *like them* have been).

Linear posterior (ridge regression, Li et al. 2010; Agrawal and Goyal 2013)::

    A = lambda I + sum_s phi_s phi_s',  b = sum_s r_s phi_s,  theta_hat = A^{-1} b
    theta ~ N(theta_hat, v^2 A^{-1})

* ``linucb`` (Li, Chu, Langford and Schapire 2010, "A contextual-bandit approach
  to personalized news article recommendation"): score
  ``phi_i' theta_hat + alpha ||phi_i||_{A^{-1}}``;
* ``lints`` (Agrawal and Goyal 2013, "Thompson sampling for contextual bandits
  with linear payoffs"): score ``phi_i' theta~`` with ``theta~ = theta_hat + v L z``,
  ``L L' = A^{-1}`` (Cholesky), ``z ~ N(0, I)`` from the round's key;
* ``greedy_linear`` (Bietti, Agarwal and Langford 2021, "A contextual bandit
  bake-off": greedy is a close second to the best methods): score
  ``phi_i' theta_hat``; ties (e.g. before any reward) go to a uniformly random
  item, not to the lowest pool index;
* ``lints_laplace``: Thompson sampling from a Laplace approximation of a
  logistic reward model ``P(r = 1 | phi) = sigmoid(phi' theta)`` (Chapelle and Li
  2011, "An empirical evaluation of Thompson sampling", Algorithm 3, here with a
  full covariance; Russo et al. 2018, "A tutorial on Thompson sampling", 5.2).
  The posterior ``N(m, H^{-1})`` is updated online, one batch at a time: the
  new mean is the MAP of the previous posterior times the batch's likelihood
  (cross-entropy with targets ``r`` in ``[0, 1]``), found by ``newton_steps``
  Newton (IRLS) steps from ``m``, and the precision grows by the batch's
  Hessian at the new mean::

      m'  = argmin_theta  (theta - m)' H (theta - m) / 2 - sum_j [r_j log p_j + (1 - r_j) log(1 - p_j)]
      H'  = H + sum_j p_j (1 - p_j) phi_j phi_j',   p_j = sigmoid(phi_j' m'),   H_0 = lambda I

  so ``H = lambda I + sum p (1 - p) phi phi'`` with each ``p`` taken at the
  mean of its batch's update (the assumed-density-filtering form of the
  Laplace approximation; refitting all past rewards would need them stored).
  A Newton step costs O(B D^2) through Woodbury (``B`` = batch), never O(D^3).
  The posterior and its update are the Laplace logistic learner's
  (:mod:`alband.models.laplace_logistic`).
  The sample is ``theta~ = m + v L z`` with ``L L' = H^{-1}``.

Batches. A round picks ``B`` items one at a time. After each pick the model is
updated with a *hallucinated* observation of the picked item (its value under
the current mean, which leaves the mean unchanged and only shrinks the
posterior covariance), as in GP-BUCB (Desautels, Krause and Burdick 2014) and
batched linear UCB/TS: the width ``||phi_i||_{A^{-1}}`` of every item near a
pick shrinks, so the batch spreads out. For Thompson sampling every pick draws
a fresh ``theta~`` from the shrunk posterior (``z`` has one row per pick); the
logistic model hallucinates with weight ``p (1 - p)`` at the mean. Picks are
distinct, unqueried first; queried items fill in only when fewer than ``B``
remain (the round loop drops them).

Cost. ``A^{-1}`` is kept by Sherman-Morrison / Woodbury and LinUCB keeps every
item's squared width ``g_i = phi_i' A^{-1} phi_i`` current with the rank-one
formula ``g_i <- g_i - (phi_i' A^{-1} phi)^2 / (1 + phi' A^{-1} phi)`` (see
:mod:`alband.policies._rank_one`): one ``X @ u`` pass, O(N d), per label and per
hallucinated pick, instead of O(N d^2); ``update`` adds a round's ``B`` labels in
one Woodbury step (one ``(N, D) x (D, B)`` product). A full recomputation runs
only when the widths have shrunk ``width_refresh``-fold since the last one
(float32 drift; under ``vmap`` its ``lax.cond`` evaluates both branches every
round, so ``width_refresh=None`` is the faster choice for large vmapped pools).
Thompson sampling draws with one D x D Cholesky per pick (O(D^3)) and one
``X @ theta~`` pass.

Hyper-parameters: ``make_policy("linucb", alpha=1.0, ridge=1.0)``,
``make_policy("lints", v=1.0, ridge=1.0)``,
``make_policy("lints_laplace", v=1.0, ridge=1.0, newton_steps=5)``,
``make_policy("greedy_linear", ridge=1.0)``; all take ``bias=True`` and
``reward="soft" | "zero_one"``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.models.laplace_logistic import LaplaceLogisticParams, laplace_step
from alband.policies._rank_one import (
    feature_dim,
    feature_rows,
    pool_dot,
    rank_one_widths,
    refresh_widths,
    sherman_morrison,
    squared_widths,
    woodbury,
    woodbury_widths,
)
from alband.policies.base import QueryPolicy, RoundContext
from alband.policies.registry import register_policy

Array = jax.Array

REWARDS = ("soft", "zero_one")


class LinearModelState(NamedTuple):
    """Ridge posterior of the linear reward model (fixed shapes)."""

    A_inv: Array  # (D, D)  A^{-1}, A = ridge I + sum phi phi'
    b: Array  # (D,)  sum r phi
    theta: Array  # (D,)  A^{-1} b


class LinUCBState(NamedTuple):
    """LinUCB keeps, on top of the model, every pool item's squared width."""

    model: LinearModelState
    widths: Array  # (N,)  phi_i' A^{-1} phi_i
    widths_then: Array  # (N,)  the widths at their last full recomputation


class LaplaceState(NamedTuple):
    """Gaussian (Laplace) posterior of the logistic reward model."""

    mean: Array  # (D,)
    cov: Array  # (D, D)  H^{-1}


# ---------------------------------------------------------------------------
# rewards and batch picking


def surprise_reward(probs: Array, labels: Array, kind: str = "soft") -> Array:
    """The learner's surprise on labelled items: ``1 - p[y]`` (soft) or ``1[argmax p != y]``.

    ``probs`` (B, C) predictive probabilities, ``labels`` (B,) answers; entries
    with ``label < 0`` get an arbitrary value (callers mask them).
    """
    label = jnp.clip(labels, 0, probs.shape[-1] - 1)
    if kind == "soft":
        p_y = jnp.take_along_axis(probs, label[:, None], axis=1)[:, 0]
        return (1.0 - p_y).astype(jnp.float32)
    return (jnp.argmax(probs, axis=-1) != label).astype(jnp.float32)


def best_fresh(scores: Array, queried: Array, picked: Array) -> Array:
    """Index of the highest score among items neither queried nor picked yet.

    Ties go to the lowest index. When no such item is left: the lowest index
    not picked yet (so a batch is always distinct).
    """
    fresh = ~queried & ~picked
    j = jnp.argmax(jnp.where(fresh, scores, -jnp.inf))
    fallback = jnp.where(jnp.any(fresh), jnp.argmax(fresh), jnp.argmax(~picked))
    return jnp.where(fresh[j], j, fallback).astype(jnp.int32)


def _valid(labels: Array, accepted: Array) -> Array:
    return accepted.astype(bool) & (labels >= 0)


def _observations(ctx: RoundContext, index: Array, labels: Array, accepted: Array, bias: bool, reward: str):
    """Feature rows and rewards of a round's answers, zeroed where no valid label arrived."""
    valid = _valid(labels, accepted)
    r = jnp.where(valid, surprise_reward(ctx.probs[index], labels, reward), 0.0)
    Phi = feature_rows(ctx.x[index], bias) * valid[:, None].astype(ctx.x.dtype)
    return Phi, r, valid


# ---------------------------------------------------------------------------
# the ridge model


def init_linear_model(n_features: int, ridge: float, bias: bool, dtype=jnp.float32) -> LinearModelState:
    D = feature_dim(n_features, bias)
    return LinearModelState(
        A_inv=jnp.eye(D, dtype=dtype) / ridge,
        b=jnp.zeros((D,), dtype),
        theta=jnp.zeros((D,), dtype),
    )


def update_linear_model(model: LinearModelState, Phi: Array, r: Array) -> tuple[LinearModelState, Array]:
    """Add the rows ``Phi`` (zero rows are no-ops) with rewards ``r``; also returns Woodbury's ``Q``."""
    A_inv, Q = woodbury(model.A_inv, Phi)
    b = model.b + Phi.T @ r
    return LinearModelState(A_inv, b, A_inv @ b), Q


def _sequential_picks(batch_size: int, ctx: RoundContext, carry, choose):
    """Run ``choose(k, carry, picked) -> (j, carry)`` ``batch_size`` times; distinct picks."""
    n = ctx.queried.shape[0]

    def body(k, state):
        carry, picked, out = state
        j, carry = choose(k, carry, picked)
        return carry, picked.at[j].set(True), out.at[k].set(j)

    init = (carry, jnp.zeros((n,), bool), jnp.zeros((batch_size,), jnp.int32))
    _, _, out = jax.lax.fori_loop(0, batch_size, body, init)
    return out


def _check_common(ridge: float, bias: bool, reward: str, name: str) -> None:
    if not (isinstance(ridge, (int, float)) and ridge > 0):
        raise AlbandError(f"query policy '{name}': ridge must be a positive number, got {ridge!r}")
    if not isinstance(bias, bool):
        raise AlbandError(f"query policy '{name}': bias must be True or False, got {bias!r}")
    if reward not in REWARDS:
        raise AlbandError(f"query policy '{name}': reward must be one of {', '.join(REWARDS)}, got {reward!r}")


def _non_negative(value: float, what: str, name: str) -> float:
    if not (isinstance(value, (int, float)) and value >= 0 and value == value):
        raise AlbandError(f"query policy '{name}': {what} must be a non-negative number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# LinUCB


@register_policy("linucb")
def linucb(
    alpha: float = 1.0,
    ridge: float = 1.0,
    bias: bool = True,
    reward: str = "soft",
    width_refresh: float | None = 256.0,
) -> QueryPolicy:
    """LinUCB over pool items with a diverse batch (module docstring).

    ``width_refresh``: recompute all widths in full once they have shrunk this
    many-fold since the last recomputation (``None``: never; float32 drift is
    then about ``1.5e-7 x`` the shrink factor, relative).
    """
    alpha = _non_negative(alpha, "alpha", "linucb")
    _check_common(ridge, bias, reward, "linucb")
    if width_refresh is not None:
        if not (isinstance(width_refresh, (int, float)) and width_refresh > 1):
            raise AlbandError(f"query policy 'linucb': width_refresh must be > 1 or None, got {width_refresh!r}")
        width_refresh = float(width_refresh)

    def init(ctx: RoundContext) -> LinUCBState:
        model = init_linear_model(ctx.x.shape[1], ridge, bias, ctx.x.dtype)
        widths = squared_widths(ctx.x, model.A_inv, bias)
        return LinUCBState(model, widths, widths)

    def select(state: LinUCBState, ctx: RoundContext, key: Array, batch_size: int):
        mean = pool_dot(ctx.x, state.model.theta, bias)

        def choose(k, carry, picked):
            C, widths = carry
            j = best_fresh(mean + alpha * jnp.sqrt(jnp.maximum(widths, 0.0)), ctx.queried, picked)
            phi = feature_rows(ctx.x[j][None, :], bias)[0]
            C, u, s = sherman_morrison(C, phi)
            return j, (C, rank_one_widths(widths, pool_dot(ctx.x, u, bias), s))

        index = _sequential_picks(batch_size, ctx, (state.model.A_inv, state.widths), choose)
        return index, state

    def update(state: LinUCBState, ctx: RoundContext, index, labels, accepted) -> LinUCBState:
        Phi, r, _ = _observations(ctx, index, labels, accepted, bias, reward)
        model, Q = update_linear_model(state.model, Phi, r)
        widths = woodbury_widths(state.widths, ctx.x, Q, bias)
        widths, widths_then = refresh_widths(widths, state.widths_then, ctx.x, model.A_inv, bias, width_refresh)
        return LinUCBState(model, widths, widths_then)

    return QueryPolicy("linucb", init, select, update)


# ---------------------------------------------------------------------------
# Thompson sampling


def _thompson_picks(
    mean: Array, C: Array, z: Array, v: float, ctx: RoundContext, bias: bool, batch_size: int, weight_of=None
) -> Array:
    """Batch Thompson sampling with hallucinated rank-one shrinkage of the covariance ``C``.

    Pick ``k`` draws ``theta~ = mean + v chol(C_k) z[k]`` and takes the best fresh
    item; ``C_{k+1}`` adds that item with weight ``weight_of(phi)`` (1 if None).
    """

    def choose(k, C, picked):
        L = jnp.linalg.cholesky(0.5 * (C + C.T))
        theta = mean + v * (L @ z[k])
        j = best_fresh(pool_dot(ctx.x, theta, bias), ctx.queried, picked)
        phi = feature_rows(ctx.x[j][None, :], bias)[0]
        weight = 1.0 if weight_of is None else weight_of(phi)
        C, _, _ = sherman_morrison(C, phi, weight)
        return j, C

    return _sequential_picks(batch_size, ctx, C, choose)


def thompson_normals(key: Array, batch_size: int, n_features: int, bias: bool) -> Array:
    """The standard normals a Thompson round draws: one row of ``D`` per pick."""
    return jax.random.normal(key, (batch_size, feature_dim(n_features, bias)), jnp.float32)


@register_policy("lints")
def lints(v: float = 1.0, ridge: float = 1.0, bias: bool = True, reward: str = "soft") -> QueryPolicy:
    """Linear Thompson sampling over pool items with a diverse batch (module docstring)."""
    v = _non_negative(v, "v", "lints")
    _check_common(ridge, bias, reward, "lints")

    def init(ctx: RoundContext) -> LinearModelState:
        return init_linear_model(ctx.x.shape[1], ridge, bias, ctx.x.dtype)

    def select(state: LinearModelState, ctx: RoundContext, key: Array, batch_size: int):
        z = thompson_normals(key, batch_size, ctx.x.shape[1], bias)
        return _thompson_picks(state.theta, state.A_inv, z, v, ctx, bias, batch_size), state

    def update(state: LinearModelState, ctx: RoundContext, index, labels, accepted) -> LinearModelState:
        Phi, r, _ = _observations(ctx, index, labels, accepted, bias, reward)
        return update_linear_model(state, Phi, r)[0]

    return QueryPolicy("lints", init, select, update)


def laplace_update(state: LaplaceState, Phi: Array, r: Array, valid: Array, newton_steps: int) -> LaplaceState:
    """One online Laplace step of the logistic reward model: :func:`alband.models.laplace_logistic.laplace_step`.

    ``Phi`` (B, D) feature rows, ``r`` (B,) targets in [0, 1], ``valid`` (B,) which rows count.
    """
    step = laplace_step(LaplaceLogisticParams(state.mean, state.cov), Phi, r, valid, newton_steps)
    return LaplaceState(step.mean, step.cov)


@register_policy("lints_laplace")
def lints_laplace(
    v: float = 1.0,
    ridge: float = 1.0,
    newton_steps: int = 5,
    bias: bool = True,
    reward: str = "soft",
) -> QueryPolicy:
    """Thompson sampling from the Laplace posterior of a logistic reward model (module docstring)."""
    v = _non_negative(v, "v", "lints_laplace")
    _check_common(ridge, bias, reward, "lints_laplace")
    if not (isinstance(newton_steps, int) and newton_steps >= 1):
        raise AlbandError(f"query policy 'lints_laplace': newton_steps must be an integer >= 1, got {newton_steps!r}")

    def init(ctx: RoundContext) -> LaplaceState:
        D = feature_dim(ctx.x.shape[1], bias)
        return LaplaceState(jnp.zeros((D,), ctx.x.dtype), jnp.eye(D, dtype=ctx.x.dtype) / ridge)

    def select(state: LaplaceState, ctx: RoundContext, key: Array, batch_size: int):
        z = thompson_normals(key, batch_size, ctx.x.shape[1], bias)

        def weight_of(phi):
            p = jax.nn.sigmoid(phi @ state.mean)
            return p * (1.0 - p)

        return _thompson_picks(state.mean, state.cov, z, v, ctx, bias, batch_size, weight_of), state

    def update(state: LaplaceState, ctx: RoundContext, index, labels, accepted) -> LaplaceState:
        Phi, r, valid = _observations(ctx, index, labels, accepted, bias, reward)
        return laplace_update(state, Phi, r, valid, newton_steps)

    return QueryPolicy("lints_laplace", init, select, update)


# ---------------------------------------------------------------------------
# greedy


@register_policy("greedy_linear")
def greedy_linear(ridge: float = 1.0, bias: bool = True, reward: str = "soft") -> QueryPolicy:
    """The ``B`` unqueried items of highest predicted reward; random tie-breaking (module docstring)."""
    _check_common(ridge, bias, reward, "greedy_linear")

    def init(ctx: RoundContext) -> LinearModelState:
        return init_linear_model(ctx.x.shape[1], ridge, bias, ctx.x.dtype)

    def select(state: LinearModelState, ctx: RoundContext, key: Array, batch_size: int):
        # top_k prefers the lower index among ties: on a random permutation of the
        # pool that is a uniformly random item among the tied ones.
        order = jax.random.permutation(key, ctx.queried.shape[0])
        scores = jnp.where(ctx.queried[order], -jnp.inf, pool_dot(ctx.x, state.theta, bias)[order])
        top = jax.lax.top_k(scores, batch_size)[1]
        return order[top].astype(jnp.int32), state

    def update(state: LinearModelState, ctx: RoundContext, index, labels, accepted) -> LinearModelState:
        Phi, r, _ = _observations(ctx, index, labels, accepted, bias, reward)
        return update_linear_model(state, Phi, r)[0]

    return QueryPolicy("greedy_linear", init, select, update)
