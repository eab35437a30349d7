"""Meta-bandits over query strategies: Active Learning By Learning (EXP4.P) and cost-aware Thompson sampling.

No strategy wins on every data set, so let a bandit choose among several, on
the fly (Hsu and Lin 2015, "Active learning by learning", AAAI). The arms are
other registered query policies (``entropy``, ``margin``, ``random``, ``linucb``,
...). Each round:

1. the reward of the previous round's strategy is computed from the learner
   refitted on that round's labels (``ctx.probs`` at this round), and the
   bandit is updated;
2. a strategy ``k`` is drawn with the round's key and its ``select`` picks the
   whole batch (``lax.switch`` over the strategies' ``select`` functions: one
   strategy's work per round);
3. in ``update`` every strategy's ``update`` sees the answers, whichever chose
   them, so stateful strategies (the linear bandits) keep learning.

The state is a pytree of fixed shapes: the bandit's statistics, the answers
seen so far per pool item with their importance weights, and a tuple of the
strategies' own states.

Importance-weighted accuracy (ALBL's IW-ACC). Each labelled item ``i`` keeps
the weight ``W_i = 1 / q_i``, ``q_i`` the probability with which the item came to
be queried. The reward is the learner's importance-weighted accuracy on the
items labelled through this policy::

    IW-ACC(f) = sum_i W_i 1[f(x_i) = y_i] / sum_i W_i

Hsu and Lin sample one *item* per step from EXP4.P's mixture over the whole
pool, so ``q_i`` is that item's probability and ``sum_tau W_tau 1[.] / (n T)``
(``n`` pool items, ``T`` queries) is unbiased for the pool accuracy. Here one
strategy chooses a whole batch, so ``q_i`` is the probability of the strategy
that proposed item ``i`` in its round (its exact inclusion probability would
need every strategy's batch every round), and the ratio (Hajek) form above,
normalised by ``sum W`` instead of ``n T``, keeps the reward in ``[0, 1]``.
With deterministic strategies most pool items have ``q_i = 0``, so neither form
is an unbiased estimate of the pool accuracy here: it is a held-out-free proxy
that up-weights the labels of rarely chosen strategies (with ``random`` among
the strategies every item can be drawn).

``albl``: EXP4.P (Beygelzimer, Langford, Li, Reyzin and Schapire 2011), as in
ALBL, with the strategies as the experts. When one strategy picks the batch
the actions are the strategies themselves, each expert's advice is the one-hot
vector of its own action, and EXP4.P is exactly EXP3.P (Auer, Cesa-Bianchi,
Freund and Schapire 2002) over ``K`` strategies::

    P_k = (1 - K p_min) w_k / sum_j w_j + p_min
    after round t (strategy k_t, reward r = IW-ACC(f_{t+1})):
    r^_k = r 1[k = k_t] / P_k,   v^_k = 1 / P_k
    w_k <- w_k exp(p_min / 2 (r^_k + v^_k sqrt(ln(K / delta) / (K T))))

with ``T`` the horizon in rounds and, by default, ``p_min = sqrt(ln K / (K T))``
(the EXP4.P choice), capped at ``1 / (2K)``. The reward is the IW-ACC *level* after the round, as in
the paper (not its change).

``meta_ts``: Thompson sampling over strategies with a cost-aware reward, the
estimated accuracy gain per dollar of the round::

    r_t = (IW-ACC(f_{t+1}; L_{t+1}) - IW-ACC(f_t; L_t)) / max(usd_t, min_round_usd)

``L_t`` the labelled items before round ``t``, ``usd_t`` the expected dollars
(``ctx.cost_usd``) of the items bought in round ``t``; a round with no previous
estimate (the first) gives no reward. Dividing by dollars puts the strategies'
rewards on different scales (a cheap strategy's gains per dollar are larger
*and* noisier), so each strategy has its own Gaussian reward model with
unknown mean and variance. Under the prior ``p(mu, sigma^2) ~ 1 / sigma^2`` the
posterior of the mean is a Student t (Gelman et al., Bayesian Data Analysis,
section 3.2)::

    mu_k ~ mean_k + sqrt(S_k / (n_k (n_k - 1))) t_{n_k - 1},   S_k = sum (r - mean_k)^2

and Thompson sampling plays the strategy with the largest draw (Gaussian
Thompson sampling with unknown variance: Honda and Takemura 2014). Every
strategy is first played until it has two rewards (a t needs ``n_k >= 2``),
uniformly among those that lack them. The rewards shrink as the learner
saturates, so ``n_k``, ``mean_k`` and ``S_k`` are moments with weights
``discount^age`` (discounted Thompson sampling, Raj and Kalyani 2017; kept with
West's 1979 weighted Welford update): a strategy not played for a while
regains posterior spread. Its propensity ``q`` (for the
importance weights) is the probability that its draw is the largest, estimated
from ``propensity_samples`` further draws (``1 / m`` when forced among ``m``).

Hyper-parameters must be hashable: ``strategies`` is a tuple whose entries
are a registered name, a ``(name, ((key, value), ...))`` pair or a
:class:`~alband.policies.base.QueryPolicy`, e.g.
``make_policy("albl", strategies=("entropy", "random", ("linucb", (("alpha", 2.0),))))``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.policies.base import QueryPolicy, RoundContext
from alband.policies.registry import make_policy, register_policy

Array = jax.Array

DEFAULT_STRATEGIES = ("entropy", "margin", "random", "linucb")


class ALBLState(NamedTuple):
    """EXP4.P weights, the last round's draw, the answers with their weights, the strategies' states."""

    log_weights: Array  # (K,)
    arm: Array  # () int32, strategy drawn at the last select
    arm_prob: Array  # () its probability
    pending: Array  # () bool, the last round bought valid labels: its reward is due
    importance: Array  # (N,) 1 / q_i of labelled items, 0 elsewhere
    label: Array  # (N,) int32 answers, -1 elsewhere
    strategies: tuple


class MetaTSState(NamedTuple):
    """Discounted reward statistics per strategy, the accuracy estimate, answers, the strategies' states."""

    count: Array  # (K,) discounted number of rewards n_k
    mean: Array  # (K,) their (discounted) mean
    spread: Array  # (K,) discounted sum of squared deviations S_k
    n_rewards: Array  # (K,) int32, rewards received (not discounted)
    arm: Array  # () int32
    arm_prob: Array  # ()
    pending: Array  # () bool
    round_usd: Array  # () expected dollars of the last round's purchases
    accuracy: Array  # () IW-ACC at the last select
    has_accuracy: Array  # () bool, there were labelled items at the last select
    importance: Array  # (N,)
    label: Array  # (N,)
    strategies: tuple


# ---------------------------------------------------------------------------
# shared pieces


def importance_weighted_accuracy(probs: Array, importance: Array, label: Array) -> Array:
    """``sum_i W_i 1[argmax p_i = y_i] / sum_i W_i`` over items with ``W_i > 0`` (0 when none)."""
    correct = (jnp.argmax(probs, axis=-1) == label) & (importance > 0)
    total = jnp.sum(importance)
    return jnp.where(total > 0, jnp.sum(jnp.where(correct, importance, 0.0)) / jnp.where(total > 0, total, 1.0), 0.0)


def _record(importance: Array, label: Array, index: Array, labels: Array, accepted: Array, weight: Array):
    valid = accepted.astype(bool) & (labels >= 0)
    target = jnp.where(valid, index, importance.shape[0])
    importance = importance.at[target].set(weight.astype(importance.dtype), mode="drop")
    label = label.at[target].set(labels.astype(jnp.int32), mode="drop")
    return importance, label, jnp.any(valid)


def _resolve(strategies: Any, name: str) -> tuple[QueryPolicy, ...]:
    if isinstance(strategies, (str, QueryPolicy)) or not isinstance(strategies, (tuple, list)):
        raise AlbandError(
            f"query policy '{name}': strategies must be a tuple of policy names, got {strategies!r}"
        )
    policies = []
    for spec in strategies:
        if isinstance(spec, QueryPolicy):
            policies.append(spec)
        elif isinstance(spec, str):
            policies.append(make_policy(spec))
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str):
            params = spec[1]
            try:
                params = dict(params)
            except (TypeError, ValueError):
                raise AlbandError(
                    f"query policy '{name}': strategy {spec!r}: hyper-parameters must be ((key, value), ...)"
                ) from None
            policies.append(make_policy(spec[0], **params))
        else:
            raise AlbandError(
                f"query policy '{name}': strategy {spec!r} is neither a policy name, a (name, params) pair "
                "nor a QueryPolicy"
            )
    if len(policies) < 2:
        raise AlbandError(f"query policy '{name}': needs at least 2 strategies, got {len(policies)}")
    return tuple(policies)


def _select_with(policies: tuple[QueryPolicy, ...], arm: Array, states: tuple, ctx: RoundContext, key: Array,
                 batch_size: int) -> tuple[Array, tuple]:
    """Run strategy ``arm``'s ``select`` (``lax.switch``); the others' states pass through."""

    def branch(k: int):
        def run(states, ctx, key):
            index, state = policies[k].select(states[k], ctx, key, batch_size)
            return index.astype(jnp.int32), states[:k] + (state,) + states[k + 1:]

        return run

    return jax.lax.switch(arm, [branch(k) for k in range(len(policies))], states, ctx, key)


def _update_all(policies, states, ctx, index, labels, accepted) -> tuple:
    return tuple(p.update(s, ctx, index, labels, accepted) for p, s in zip(policies, states))


def _init_all(policies, ctx) -> tuple:
    return tuple(p.init(ctx) for p in policies)


def _positive(value, what: str, name: str) -> float:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise AlbandError(f"query policy '{name}': {what} must be a positive number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# ALBL (EXP4.P)


def exp4p_probabilities(log_weights: Array, p_min: float) -> Array:
    """``P_k = (1 - K p_min) w_k / sum w + p_min``."""
    K = log_weights.shape[0]
    return (1.0 - K * p_min) * jax.nn.softmax(log_weights) + p_min


def exp4p_update(log_weights: Array, probs: Array, arm: Array, reward: Array, p_min: float, delta: float,
                 horizon: int) -> Array:
    """EXP4.P with identity advice (module docstring); log-weights re-centred at their maximum."""
    K = log_weights.shape[0]
    r_hat = jnp.where(jnp.arange(K) == arm, reward / probs, 0.0)
    v_hat = 1.0 / probs
    log_weights = log_weights + 0.5 * p_min * (r_hat + v_hat * math.sqrt(math.log(K / delta) / (K * horizon)))
    return log_weights - jnp.max(log_weights)


@register_policy("albl")
def albl(
    strategies: tuple = DEFAULT_STRATEGIES,
    horizon: int = 100,
    p_min: float | None = None,
    delta: float = 1.0,
) -> QueryPolicy:
    """Active Learning By Learning over ``strategies`` (module docstring).

    ``horizon``: the number of rounds EXP4.P plans for; ``p_min``: the least
    probability of every strategy (default ``sqrt(ln K / (K horizon))``, must be
    below ``1 / K``); ``delta``: EXP4.P's confidence parameter.
    """
    policies = _resolve(strategies, "albl")
    K = len(policies)
    if not (isinstance(horizon, int) and horizon >= 1):
        raise AlbandError(f"query policy 'albl': horizon must be an integer >= 1 (rounds), got {horizon!r}")
    delta = _positive(delta, "delta", "albl")
    if p_min is None:
        p_min = min(math.sqrt(math.log(K) / (K * horizon)), 0.5 / K)
    p_min = _positive(p_min, "p_min", "albl")
    if K * p_min >= 1.0:
        raise AlbandError(f"query policy 'albl': p_min={p_min} must be below 1/K = {1.0 / K:.4g} for K={K} strategies")

    def init(ctx: RoundContext) -> ALBLState:
        n = ctx.queried.shape[0]
        return ALBLState(
            log_weights=jnp.zeros((K,), jnp.float32),
            arm=jnp.int32(-1),
            arm_prob=jnp.float32(1.0),
            pending=jnp.bool_(False),
            importance=jnp.zeros((n,), jnp.float32),
            label=jnp.full((n,), -1, jnp.int32),
            strategies=_init_all(policies, ctx),
        )

    def select(state: ALBLState, ctx: RoundContext, key: Array, batch_size: int):
        previous = exp4p_probabilities(state.log_weights, p_min)
        reward = importance_weighted_accuracy(ctx.probs, state.importance, state.label)
        updated = exp4p_update(state.log_weights, previous, state.arm, reward, p_min, delta, horizon)
        log_weights = jnp.where(state.pending, updated, state.log_weights)
        probs = exp4p_probabilities(log_weights, p_min)
        arm_key, strategy_key = jax.random.split(key)
        arm = jax.random.categorical(arm_key, jnp.log(probs)).astype(jnp.int32)
        index, strategies = _select_with(policies, arm, state.strategies, ctx, strategy_key, batch_size)
        return index, state._replace(
            log_weights=log_weights, arm=arm, arm_prob=probs[arm], pending=jnp.bool_(False), strategies=strategies
        )

    def update(state: ALBLState, ctx: RoundContext, index, labels, accepted) -> ALBLState:
        importance, label, any_valid = _record(state.importance, state.label, index, labels, accepted,
                                               1.0 / state.arm_prob)
        return state._replace(
            importance=importance,
            label=label,
            pending=any_valid,
            strategies=_update_all(policies, state.strategies, ctx, index, labels, accepted),
        )

    return QueryPolicy("albl", init, select, update)


# ---------------------------------------------------------------------------
# Thompson sampling on accuracy gain per dollar


MIN_REWARDS = 2


def add_reward(count: Array, mean: Array, spread: Array, hit: Array, reward: Array, discount: float):
    """Discount every strategy's statistics, then add ``reward`` where ``hit``.

    Weighted Welford (West 1979): scaling all weights by ``discount`` keeps the
    mean and scales ``n`` and ``S``; one more reward of weight 1 updates
    ``n' = n + 1``, ``mean' = mean + (r - mean) / n'``, ``S' = S + (r - mean)(r - mean')``.
    """
    count = discount * count
    spread = discount * spread
    new_count = count + 1.0
    delta = reward - mean
    new_mean = mean + delta / new_count
    new_spread = spread + delta * (reward - new_mean)
    return (jnp.where(hit, new_count, count), jnp.where(hit, new_mean, mean), jnp.where(hit, new_spread, spread))


def student_t_posterior(count: Array, mean: Array, spread: Array) -> tuple[Array, Array]:
    """``(scale, dof)`` of each strategy's Student-t posterior of its mean: ``sqrt(S / (n (n - 1)))``, ``n - 1``.

    Floored so that a strategy whose rewards were all equal still breaks ties at random.
    """
    dof = jnp.maximum(count - 1.0, 0.1)
    scale = jnp.sqrt(jnp.maximum(spread, 0.0) / (jnp.maximum(count, 1e-30) * dof))
    return jnp.maximum(scale, 1e-6 * jnp.abs(mean) + 1e-12), dof


@register_policy("meta_ts")
def meta_ts(
    strategies: tuple = DEFAULT_STRATEGIES,
    discount: float = 0.9,
    min_round_usd: float = 1e-6,
    propensity_samples: int = 1024,
) -> QueryPolicy:
    """Thompson sampling over ``strategies`` on accuracy gain per dollar (module docstring)."""
    policies = _resolve(strategies, "meta_ts")
    K = len(policies)
    if not (isinstance(discount, (int, float)) and 0 < discount <= 1):
        raise AlbandError(f"query policy 'meta_ts': discount must be in (0, 1], got {discount!r}")
    min_round_usd = _positive(min_round_usd, "min_round_usd", "meta_ts")
    if not (isinstance(propensity_samples, int) and propensity_samples >= 1):
        raise AlbandError(
            f"query policy 'meta_ts': propensity_samples must be an integer >= 1, got {propensity_samples!r}"
        )
    discount = float(discount)

    def init(ctx: RoundContext) -> MetaTSState:
        n = ctx.queried.shape[0]
        zeros = jnp.zeros((K,), jnp.float32)
        return MetaTSState(
            count=zeros, mean=zeros, spread=zeros, n_rewards=jnp.zeros((K,), jnp.int32),
            arm=jnp.int32(-1), arm_prob=jnp.float32(1.0), pending=jnp.bool_(False),
            round_usd=jnp.float32(0.0), accuracy=jnp.float32(0.0), has_accuracy=jnp.bool_(False),
            importance=jnp.zeros((n,), jnp.float32), label=jnp.full((n,), -1, jnp.int32),
            strategies=_init_all(policies, ctx),
        )

    def select(state: MetaTSState, ctx: RoundContext, key: Array, batch_size: int):
        accuracy = importance_weighted_accuracy(ctx.probs, state.importance, state.label)
        has_accuracy = jnp.sum(state.importance) > 0
        credit = state.pending & state.has_accuracy
        reward = (accuracy - state.accuracy) / jnp.maximum(state.round_usd, min_round_usd)
        hit = (jnp.arange(K) == state.arm) & credit
        count, mean, spread = add_reward(state.count, state.mean, state.spread, hit, reward, discount)
        n_rewards = state.n_rewards + hit.astype(jnp.int32)

        forced_key, sample_key, propensity_key, strategy_key = jax.random.split(key, 4)
        scale, dof = student_t_posterior(count, mean, spread)

        def sample(k):
            return mean + scale * jax.random.t(k, dof, mean.shape)

        lacking = n_rewards < MIN_REWARDS
        n_lacking = jnp.sum(lacking)
        # Strategies with fewer than two rewards come first (uniformly among them).
        forced = jax.random.categorical(forced_key, jnp.where(lacking, 0.0, -jnp.inf))
        drawn = jnp.argmax(sample(sample_key))
        arm = jnp.where(n_lacking > 0, forced, drawn).astype(jnp.int32)
        draws = jax.vmap(sample)(jax.random.split(propensity_key, propensity_samples))
        share = jnp.mean(jnp.argmax(draws, axis=1) == arm)
        arm_prob = jnp.where(n_lacking > 0, 1.0 / jnp.maximum(n_lacking, 1),
                             jnp.maximum(share, 1.0 / propensity_samples)).astype(jnp.float32)

        index, strategies = _select_with(policies, arm, state.strategies, ctx, strategy_key, batch_size)
        return index, state._replace(
            count=count, mean=mean, spread=spread, n_rewards=n_rewards, arm=arm, arm_prob=arm_prob,
            pending=jnp.bool_(False), accuracy=accuracy.astype(jnp.float32), has_accuracy=has_accuracy,
            strategies=strategies,
        )

    def update(state: MetaTSState, ctx: RoundContext, index, labels, accepted) -> MetaTSState:
        importance, label, any_valid = _record(state.importance, state.label, index, labels, accepted,
                                               1.0 / state.arm_prob)
        round_usd = jnp.sum(jnp.where(accepted.astype(bool), ctx.cost_usd[index], 0.0)).astype(jnp.float32)
        return state._replace(
            importance=importance, label=label, pending=any_valid, round_usd=round_usd,
            strategies=_update_all(policies, state.strategies, ctx, index, labels, accepted),
        )

    return QueryPolicy("meta_ts", init, select, update)
