"""Stopping rules: Cohen's kappa against scikit-learn, every rule against hand-computed histories,
causality (the live loop's prefix gives the same flags), cost regret against brute force."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.errors import AlbandError
from alband.stopping import (
    RULES,
    CostModel,
    StopHistory,
    available_rules,
    cohens_kappa,
    cost_to_go_terms,
    default_rules,
    estimated_total_cost,
    evaluate_rules,
    hindsight_optimal_round,
    history_from_rows,
    make_rule,
    stop_outcome,
    stopping_round,
    total_cost,
    validation_split,
)

NAN = float("nan")


def _history(n: int, **series) -> StopHistory:
    """A history of ``n`` rounds (index 0..n-1) with neutral defaults for unspecified signals."""
    base = {
        "n_labeled": np.arange(n) * 10 + 10,
        "n_queried": np.arange(n) * 10 + 10,
        "spent_usd": np.arange(n, dtype=np.float32) + 1.0,
        "exhausted": np.zeros(n, bool),
        "validation_accuracy": np.full(n, NAN, np.float32),
        "kappa": np.r_[NAN, np.zeros(n - 1)],
        "change_rate": np.r_[NAN, np.ones(n - 1)],
        "mean_confidence": np.full(n, 0.5, np.float32),
        "batch_uncertainty": np.r_[NAN, np.full(n - 1, 0.5)],
    }
    base.update(series)
    dtypes = {"n_labeled": np.int32, "n_queried": np.int32, "exhausted": bool}
    return StopHistory(**{k: jnp.asarray(np.asarray(v, dtypes.get(k, np.float32))) for k, v in base.items()})


def _flags(name: str, history: StopHistory, **params) -> list[bool]:
    return np.asarray(make_rule(name, **params).flags(history)).tolist()


# ------------------------------------------------------------------ kappa


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 5).flatmap(lambda c: st.tuples(
    st.just(c),
    st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=2, max_size=60),
)))
def test_kappa_matches_scikit_learn(case):
    from sklearn.metrics import cohen_kappa_score

    n_classes, pairs = case
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    ours = float(cohens_kappa(a, b, n_classes))
    if len(set(a.tolist()) | set(b.tolist())) == 1:
        assert ours == 1.0  # one class everywhere: perfect agreement, 0/0 in the formula
        return
    with np.errstate(all="ignore"):
        ref = cohen_kappa_score(a, b)
    assert ours == pytest.approx(ref, abs=1e-5)


def test_kappa_by_hand():
    # p_o = 3/4; shares a = (1/2, 1/2), b = (1/4, 3/4): p_e = 1/8 + 3/8 = 1/2 -> kappa = 1/2.
    assert float(cohens_kappa([0, 0, 1, 1], [0, 1, 1, 1], 2)) == pytest.approx(0.5)
    assert float(cohens_kappa([0, 1, 2], [0, 1, 2], 3)) == pytest.approx(1.0)
    # Systematic disagreement is worse than chance.
    assert float(cohens_kappa([0, 1, 0, 1], [1, 0, 1, 0], 2)) == pytest.approx(-1.0)


# ------------------------------------------------------------------ each rule by hand


def test_budget_exhausted_and_max_labels():
    h = _history(5, exhausted=[0, 0, 0, 1, 1], n_queried=[10, 20, 30, 35, 35])
    assert _flags("budget_exhausted", h) == [False, False, False, True, True]
    assert _flags("max_labels", h, max_labels=30) == [False, False, True, True, True]
    assert int(stopping_round(make_rule("max_labels", max_labels=30).flags(h))) == 2


def test_validation_plateau():
    val = [0.5, 0.6, 0.7, 0.705, 0.70, 0.702, 0.71, 0.71, 0.71]
    h = _history(len(val), validation_accuracy=val)
    # best: .5 .6 .7 .705 .705 .705 .71 .71 .71; window 2, min_delta 0.006:
    # r=2: .7-.5 no; r=3: .705-.6 no; r=4: .705-.7=.005 yes; r=5: 0 yes; r=6: .71-.705 = .005 yes ...
    assert _flags("validation_plateau", h, window=2, min_delta=0.006) == [
        False, False, False, False, True, True, True, True, True]
    # Without a validation set it never fires.
    assert not any(_flags("validation_plateau", _history(9), window=1, min_delta=1.0))


def test_stabilizing_predictions_mean_of_last_three_kappas():
    kappa = [NAN, 0.5, 0.995, 0.99, 0.98, 0.999, 0.995, 0.999]
    h = _history(len(kappa), kappa=kappa)
    # means over 3: r=3 (.5,.995,.99)=.828; r=4 (.995,.99,.98)=.98833; r=5 (.99,.98,.999)=.98967;
    # r=6 (.98,.999,.995)=.99133; r=7 (.999,.995,.999)=.99767
    assert _flags("stabilizing_predictions", h) == [False] * 6 + [True, True]
    assert int(stopping_round(make_rule("stabilizing_predictions").flags(h))) == 6
    # A window reaching round 0 (no kappa) never counts.
    assert _flags("stabilizing_predictions", _history(3, kappa=[NAN, 1.0, 1.0])) == [False] * 3
    assert _flags("stabilizing_predictions", _history(3, kappa=[NAN, 1.0, 1.0]), window=2) == [False, False, True]


def test_classification_change():
    rate = [NAN, 0.2, 0.0, 0.01, 0.0, 0.0]
    h = _history(len(rate), change_rate=rate)
    assert _flags("classification_change", h) == [False, False, True, False, True, True]
    assert _flags("classification_change", h, window=2) == [False] * 5 + [True]
    assert _flags("classification_change", h, max_change_rate=0.01, window=3) == [False] * 4 + [True, True]


def test_uncertainty_rules():
    h = _history(4, batch_uncertainty=[NAN, 0.3, 0.1, 0.05], mean_confidence=[0.6, 0.8, 0.95, 0.91])
    assert _flags("max_uncertainty", h, threshold=0.1) == [False, False, True, True]
    # overall uncertainty = 1 - mean confidence: .4 .2 .05 .09
    assert _flags("overall_uncertainty", h, threshold=0.1) == [False, False, True, True]
    assert _flags("overall_uncertainty", h, threshold=0.06) == [False, False, True, False]


def test_cost_optimum_stops_when_the_estimated_minimum_is_behind():
    conf = [0.5, 0.7, 0.8, 0.85, 0.86, 0.865, 0.866]
    spent = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    h = _history(7, mean_confidence=conf, spent_usd=spent)
    # m n = 100: C = 50, 31, 22, 18, 18, 18.5, 19.4 (approximately)
    est = np.asarray(estimated_total_cost(h, 1.0, 100.0))
    np.testing.assert_allclose(est, [50, 31, 22, 18, 18, 18.5, 19.4], atol=1e-4)
    # running min: 50 31 22 18 18 18 18; no improvement for 2 rounds first at r=5 (18 vs 18 at r=3).
    assert _flags("cost_optimum", h, cost_per_error=1.0, n_future=100, patience=2) == [
        False, False, False, False, False, True, True]


def test_cost_optimum_validation_uses_the_validation_accuracy():
    val = [0.5, 0.7, 0.8, 0.85, 0.86, 0.865, 0.866]
    h = _history(7, validation_accuracy=val, spent_usd=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # Same numbers as the confidence version above: C = 50, 31, 22, 18, 18, 18.5, 19.4.
    assert _flags("cost_optimum_validation", h, cost_per_error=1.0, n_future=100, patience=2) == [
        False, False, False, False, False, True, True]
    assert not any(_flags("cost_optimum_validation", _history(7), patience=1))  # no validation set


def test_cost_to_go_compares_gain_per_label_with_price_per_label():
    # error e = 1 - conf: .5 .4 .34 .33 .32; 10 labels per round; dollars per round 1, 1, 3, 3.
    h = _history(5, mean_confidence=[0.5, 0.6, 0.66, 0.67, 0.68], n_queried=[10, 20, 30, 40, 50],
                 spent_usd=[0.0, 1.0, 2.0, 5.0, 8.0])
    gain, price, bought = (np.asarray(a) for a in cost_to_go_terms(h, 1))
    np.testing.assert_allclose(gain[1:], [0.01, 0.006, 0.001, 0.001], atol=1e-6)
    np.testing.assert_allclose(price[1:], [0.1, 0.1, 0.3, 0.3], atol=1e-6)
    np.testing.assert_allclose(bought, [0, 10, 10, 10, 10])
    # value per label = gain * n m with n m = 20: .2 .12 .02 .02 vs price .1 .1 .3 .3
    assert _flags("cost_to_go", h, cost_per_error=1.0, n_future=20, window=1) == [False, False, False, True, True]
    # window 2: r=2 gain (.5-.34)/20 = .008 -> value .16 > price 2/20; r=3 (.4-.33)/20*20 = .07 < (5-1)/20 = .2
    assert _flags("cost_to_go", h, cost_per_error=1.0, n_future=20, window=2) == [False, False, False, True, True]
    # A rising error estimate (the model revising an over-confident belief) counts as change, not as no gain.
    rising = _history(3, mean_confidence=[0.6, 0.5, 0.5], spent_usd=[0.0, 0.1, 0.2])
    np.testing.assert_allclose(np.asarray(cost_to_go_terms(rising, 1)[0])[1], 0.01, atol=1e-6)
    assert _flags("cost_to_go", rising, cost_per_error=1.0, n_future=20, window=1) == [False, False, True]
    # Nothing bought in the window: never fires (the budget rule applies then).
    flat = _history(3, n_queried=[10, 10, 10], spent_usd=[1.0, 1.0, 1.0])
    assert not any(_flags("cost_to_go", flat, window=1))


def test_a_rule_that_never_fires_stops_at_the_horizon():
    assert int(stopping_round(jnp.zeros(7, bool))) == 6
    assert int(stopping_round(jnp.array([False, True, True]))) == 1


# ------------------------------------------------------------------ causality: live prefix == full


def _random_history(rng: np.random.Generator, n: int) -> StopHistory:
    queried = np.cumsum(rng.integers(0, 11, n)) + 10
    return _history(
        n,
        n_labeled=queried,
        n_queried=queried,
        spent_usd=np.cumsum(rng.uniform(0, 2, n)),
        exhausted=np.cumsum(rng.uniform(size=n) < 0.05) > 0,
        validation_accuracy=np.minimum(np.cumsum(rng.uniform(0, 0.05, n)) + 0.4, 1.0),
        kappa=np.r_[NAN, 1 - rng.uniform(0, 0.03, n - 1) ** 2],
        change_rate=np.r_[NAN, np.where(rng.uniform(size=n - 1) < 0.5, 0.0, rng.uniform(0, 0.02, n - 1))],
        mean_confidence=np.minimum(np.cumsum(rng.uniform(0, 0.05, n)) + 0.3, 1.0),
        batch_uncertainty=np.r_[NAN, rng.uniform(0, 0.4, n - 1)],
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_rules_are_causal_so_the_live_prefix_gives_the_same_flags(seed):
    rng = np.random.default_rng(seed)
    n = 12
    full = _random_history(rng, n)
    rows = [{k: np.asarray(getattr(full, k))[r].item() for k in StopHistory._fields} for r in range(n)]
    rules = default_rules(cost_per_error=0.05, n_future=2000.0, max_labels_=60)
    for rule in rules:
        all_flags = np.asarray(rule.flags(full))
        for r in range(n):
            prefix = history_from_rows(rows[: r + 1], n - 1)
            assert bool(rule.flags(prefix)[r]) == bool(all_flags[r]), (rule.name, r)


# ------------------------------------------------------------------ cost model and regret


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.floats(0.001, 10), n=st.floats(1, 1e5))
def test_regret_against_brute_force(seed, m, n):
    rng = np.random.default_rng(seed)
    R = 10
    acc = np.clip(np.cumsum(rng.uniform(-0.02, 0.08, R + 1)) + 0.3, 0, 1).astype(np.float32)
    h = _random_history(rng, R + 1)
    spent = np.asarray(h.spent_usd, np.float64)
    costs = (1 - acc.astype(np.float64)) * n * m + spent
    flags = rng.uniform(size=R + 1) < 0.2
    out = stop_outcome(jnp.asarray(flags), h, jnp.asarray(acc), CostModel(m, n))
    stop = int(np.argmax(flags)) if flags.any() else R
    best = int(np.argmin(np.asarray(total_cost(acc, h.spent_usd, CostModel(m, n)))))
    assert int(out.round) == stop and bool(out.fired) == bool(flags.any())
    assert int(out.optimal_round) == best
    assert costs[best] <= costs.min() * (1 + 1e-5) + 1e-5
    assert float(out.regret) >= 0
    assert float(out.regret) == pytest.approx(costs[stop] - costs[best], rel=1e-4, abs=1e-3)
    assert float(out.spent_usd) == pytest.approx(spent[stop], rel=1e-6)
    assert float(out.accuracy) == pytest.approx(acc[stop])


def test_hindsight_optimum_by_hand():
    acc = jnp.array([0.5, 0.75, 0.875, 0.9375])  # exact in binary
    spent = jnp.array([0.0, 10.0, 20.0, 30.0])
    # m n = 100: C = 50, 35, 32.5, 36.25 -> round 2
    assert int(hindsight_optimal_round(acc, spent, CostModel(1.0, 100.0))) == 2
    # m n = 1000: C = 500, 260, 145, 92.5 -> round 3
    assert int(hindsight_optimal_round(acc, spent, CostModel(1.0, 1000.0))) == 3
    # A tie goes to the earliest round: C = 50, 35, 32.5, 32.5
    tied = jnp.array([0.5, 0.75, 0.875, 0.875])
    assert int(hindsight_optimal_round(tied, jnp.array([0.0, 10.0, 20.0, 20.0]), CostModel(1.0, 100.0))) == 2


def test_evaluate_rules_vmaps_over_seeds_and_cost_models():
    rng = np.random.default_rng(0)
    R = 9
    histories = [_random_history(rng, R + 1) for _ in range(4)]
    accs = [np.clip(np.cumsum(rng.uniform(0, 0.05, R + 1)) + 0.3, 0, 1) for _ in range(4)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *histories)
    acc = jnp.asarray(np.stack(accs), jnp.float32)
    rules = default_rules(max_labels_=50)
    costs = CostModel(jnp.array([0.01, 1.0]), jnp.array([100.0, 1e4]))

    def per_cost(cm):
        return jax.vmap(lambda h, a: evaluate_rules(rules, h, a, cm))(stacked, acc)

    batched = jax.jit(jax.vmap(per_cost))(costs)
    for c in range(2):
        for s in range(4):
            alone = evaluate_rules(rules, histories[s], acc[s], CostModel(float(costs.cost_per_error[c]),
                                                                          float(costs.n_future[c])))
            for name, outcome in alone.items():
                assert int(batched[name].round[c, s]) == int(outcome.round), name
                assert float(batched[name].regret[c, s]) == pytest.approx(float(outcome.regret), rel=1e-5, abs=1e-5)
    assert set(batched) == set(RULES)


# ------------------------------------------------------------------ construction errors


def test_make_rule_errors_name_the_problem():
    with pytest.raises(AlbandError, match="unknown stopping rule 'stabilising'.*stabilizing_predictions"):
        make_rule("stabilising")
    with pytest.raises(AlbandError, match="unknown parameter 'treshold'.*threshold"):
        make_rule("stabilizing_predictions", treshold=0.9)
    with pytest.raises(AlbandError, match="'window' must be an integer >= 1"):
        make_rule("stabilizing_predictions", window=2.5)
    with pytest.raises(AlbandError, match="'threshold' must be in \\[0, 1\\]"):
        make_rule("overall_uncertainty", threshold=1.5)
    with pytest.raises(AlbandError, match="finite number"):
        make_rule("cost_to_go", n_future=math.inf)
    assert make_rule("cost_to_go", n_future=5).params.n_future == 5.0
    assert "cost_to_go" in available_rules()


def test_validation_split_is_fixed_and_disjoint():
    held, kept = validation_split(100, 30)
    again, _ = validation_split(100, 30)
    assert np.array_equal(held, again) and len(held) == 30 and len(kept) == 70
    assert not set(held) & set(kept)
    with pytest.raises(AlbandError, match="validation_rows must be between 1 and 99"):
        validation_split(100, 100)
