"""Trust or escalate: the certified threshold keeps its agreement guarantee in a world whose truth is known.

The simulated world: the cheap annotator's confidence is ``c ~ Beta(a, b)`` and
it agrees with the strongest annotator with probability ``g(c) = c ** k``
(``k = 1`` calibrated, ``k > 1`` over-confident). The true disagreement of the
items kept at threshold ``lambda`` is ``R(lambda) = E[1 - c^k | c >= lambda]``,
computed exactly from the Beta moments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from alband.errors import AlbandError
from alband.routing import Stream, make_router, replay
from alband.routing.escalation import (
    binomial_pvalue,
    binomial_pvalue_jax,
    calibrate_cascade,
    calibrate_cascade_jax,
    clopper_pearson_upper,
    default_grid,
    fixed_sequence_threshold,
    fixed_sequence_threshold_jax,
    keeping_stage,
)

REPS = 300  # calibration draws per world


def true_risk(lam: np.ndarray, a: float, b: float, k: float) -> np.ndarray:
    """``E[1 - c^k | c >= lam]`` for ``c ~ Beta(a, b)`` (NaN where nothing is kept)."""
    tail = special.betainc(a, b, 1.0) - special.betainc(a, b, np.clip(lam, 0, 1))
    moment = special.beta(a + k, b) / special.beta(a, b)
    tail_k = moment * (1.0 - special.betainc(a + k, b, np.clip(lam, 0, 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tail > 0, 1.0 - tail_k / tail, np.nan)


def draw(rng, n, a, b, k):
    c = rng.beta(a, b, n)
    return c, rng.uniform(size=n) < c ** k


def test_true_risk_matches_monte_carlo():
    rng = np.random.default_rng(0)
    c, agree = draw(rng, 400_000, 5.0, 1.0, 2.0)
    for lam in (0.0, 0.6, 0.9):
        kept = c >= lam
        assert abs(true_risk(np.array(lam), 5.0, 1.0, 2.0) - (1 - agree[kept].mean())) < 3e-3


def test_pvalue_is_the_clopper_pearson_bound_below_alpha():
    for e, n in [(0, 30), (3, 40), (10, 60), (25, 50)]:
        p = float(binomial_pvalue(e, n, 0.1))
        ucb = float(clopper_pearson_upper(e, n, 0.1))
        assert (p <= 0.1) == (ucb < 0.1), (e, n, p, ucb)
    # 0 of n: rejected iff (1 - alpha)^n <= delta
    assert float(binomial_pvalue(0, 22, 0.1)) == pytest.approx(0.9 ** 22)
    assert float(binomial_pvalue(5, 0, 0.1)) == 1.0
    np.testing.assert_allclose(binomial_pvalue_jax(jnp.array([0.0, 3, 10, 25]), jnp.array([30.0, 40, 60, 50]), 0.1),
                               binomial_pvalue(np.array([0, 3, 10, 25]), np.array([30, 40, 60, 50]), 0.1),
                               rtol=1e-4, atol=1e-6)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(alpha=st.sampled_from([0.05, 0.1, 0.2]), delta=st.sampled_from([0.05, 0.1, 0.2]),
       n=st.sampled_from([100, 300, 800]), a=st.floats(1.0, 8.0), k=st.floats(1.0, 3.0))
def test_certified_threshold_fails_at_most_delta_of_draws(alpha, delta, n, a, k):
    """Over repeated calibration draws, ``R(chosen threshold) > alpha`` in at most ``delta`` of them."""
    rng = np.random.default_rng(int(1000 * a + 10 * k + n))
    grid = default_grid(50)
    risk = true_risk(grid, a, 1.0, k)
    failures = kept = 0
    for _ in range(REPS):
        c, agree = draw(rng, n, a, 1.0, k)
        cert = fixed_sequence_threshold(c, agree, alpha, delta, grid)
        if cert.index >= 0:
            kept += 1
            failures += bool(risk[cert.index] > alpha)
    # failures ~ Binomial(REPS, <= delta): one-sided slack at 1e-4
    assert failures <= stats.binom.ppf(1 - 1e-4, REPS, delta), (failures, kept)
    # when a threshold is chosen, the kept items agree at >= 1 - alpha in at least 1 - delta of draws
    assert kept - failures >= stats.binom.ppf(1e-4, kept, 1 - delta) if kept else True


def test_fresh_test_items_agree_at_the_certified_level_and_coverage_is_reported():
    rng = np.random.default_rng(7)
    alpha, delta, grid = 0.1, 0.1, default_grid(100)
    good, coverage = 0, []
    runs = 60
    for _ in range(runs):
        c, agree = draw(rng, 500, 6.0, 1.0, 1.0)
        cert = fixed_sequence_threshold(c, agree, alpha, delta, grid)
        ct, at = draw(rng, 20_000, 6.0, 1.0, 1.0)
        keep = ct >= cert.threshold
        coverage.append(keep.mean())
        good += bool(keep.any() and 1 - at[keep].mean() <= alpha + 3 * np.sqrt(alpha / keep.sum()))
    assert good >= stats.binom.ppf(1e-4, runs, 1 - delta)
    # a calibrated and confident cheap annotator keeps most items (mean c = 6/7)
    assert np.mean(coverage) > 0.5


def test_a_noisy_cheap_annotator_escalates_everything():
    rng = np.random.default_rng(3)
    abstained = 0
    for _ in range(100):
        c = rng.beta(6.0, 1.0, 500)
        agree = rng.uniform(size=500) < 0.6  # confidence says nothing; agreement 0.6 < 1 - alpha
        abstained += fixed_sequence_threshold(c, agree, 0.1, 0.1).index < 0
    assert abstained >= stats.binom.ppf(1e-4, 100, 0.9)


def test_jax_twin_matches_numpy_and_cascade_stages_are_certified_in_turn():
    rng = np.random.default_rng(5)
    c1, a1 = draw(rng, 600, 4.0, 1.0, 1.0)
    c2, a2 = draw(rng, 600, 8.0, 1.0, 1.0)
    grid = default_grid(50)
    cert = fixed_sequence_threshold(c1, a1, 0.1, 0.1, grid)
    jt = fixed_sequence_threshold_jax(jnp.asarray(c1), jnp.asarray(a1), jnp.ones(600), jnp.asarray(grid, jnp.float32),
                                      0.1, 0.1)
    assert float(jt) == pytest.approx(cert.threshold, abs=1e-6)
    conf, agree = np.stack([c1, c2], 1), np.stack([a1, a2], 1)
    thresholds = calibrate_cascade(conf, agree, 0.1, 0.1, grid)
    jt = calibrate_cascade_jax(jnp.asarray(conf), jnp.asarray(agree), jnp.ones(600), jnp.asarray(grid, jnp.float32),
                               0.1, 0.1)
    np.testing.assert_allclose(np.asarray(jt), thresholds, atol=1e-6)
    # stage 0 at delta / 2 on everything; stage 1 on what stage 0 escalates
    assert thresholds[0] == fixed_sequence_threshold(c1, a1, 0.1, 0.05, grid).threshold
    reach = c1 < thresholds[0]
    assert thresholds[1] == fixed_sequence_threshold(c2[reach], a2[reach], 0.1, 0.05, grid).threshold
    stage = keeping_stage(conf, thresholds)
    assert set(np.unique(stage)) <= {0, 1, 2} and np.all((stage == 0) == (c1 >= thresholds[0]))


def test_bad_levels_and_grids_are_one_clear_error():
    with pytest.raises(AlbandError, match="alpha"):
        fixed_sequence_threshold([0.5], [True], 0.0, 0.1)
    with pytest.raises(AlbandError, match="strictly decreasing"):
        fixed_sequence_threshold([0.5], [True], 0.1, 0.1, grid=[0.1, 0.5])
    with pytest.raises(AlbandError, match="delta"):
        make_router("trust_escalate", chain=[0, 1], delta=1.0)
    with pytest.raises(AlbandError, match="confidence_features"):
        make_router("trust_escalate", chain=[0, 1, 2], confidence_features=[0])


def _world_stream(n: int, seed: int, a: float = 6.0, k: float = 1.0) -> Stream:
    """Two arms: a cheap one whose confidence is feature 1, and the strongest (always right)."""
    rng = np.random.default_rng(seed)
    c, agree = draw(rng, n, a, 1.0, k)
    features = np.stack([np.ones(n), c], 1).astype(np.float32)
    price = np.tile(np.array([[0.001, 0.01]], np.float32), (n, 1))
    correct = np.stack([agree, np.ones(n, bool)], 1).astype(np.float32)
    return Stream(jnp.asarray(features), jnp.asarray(price), jnp.asarray(price), jnp.ones((n, 2), bool),
                  jnp.asarray(correct), jnp.asarray(correct))


def test_router_online_keeps_the_agreement_level_over_repeated_streams():
    router = make_router("trust_escalate", chain=[0, 1], alpha=0.1, delta=0.1, audit_rate=0.3,
                         grid_size=50, calibration_size=256)
    n, streams = 1500, 16
    run = jax.jit(jax.vmap(lambda s, key: replay(router, s, jnp.arange(n), 1e6, key, auditor=1)))
    batch = [_world_stream(n, seed) for seed in range(streams)]
    stream = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batch)
    trace = run(stream, jax.random.split(jax.random.PRNGKey(0), streams))
    label_arm = np.asarray(trace.label_arm)
    correct = np.asarray(trace.label_correct)
    kept_cheap = (label_arm == 0) & ~np.asarray(trace.audited)
    # every item is labelled; audits pay both arms
    assert np.all(label_arm >= 0)
    assert np.all(np.asarray(trace.paid)[np.asarray(trace.audited)].all(-1))
    late = np.arange(n) >= n // 2  # after about 225 audits the threshold is certified
    coverage = kept_cheap[:, late].mean(1)
    assert np.mean(coverage) > 0.3
    disagreement = 1 - correct[:, late][kept_cheap[:, late]].mean()
    assert disagreement <= 0.1 + 0.02


def test_router_escalates_all_when_the_cheap_annotator_is_noisy():
    router = make_router("trust_escalate", chain=[0, 1], alpha=0.05, delta=0.1, audit_rate=0.3, grid_size=20,
                         calibration_size=128)
    stream = _world_stream(600, 1, a=6.0, k=8.0)  # agreement c^8: far below 0.95 almost everywhere
    trace = replay(router, stream, jnp.arange(600), 1e6, jax.random.PRNGKey(1), auditor=1)
    kept_cheap = (np.asarray(trace.label_arm) == 0) & ~np.asarray(trace.audited)
    assert kept_cheap.mean() < 0.05


@pytest.mark.slow
def test_router_runs_in_simulate_and_live_alike_through_the_registry(tmp_path):
    """Registered by name, the router buys the same items, arms and dollars in the simulator and the live loop.

    The cheap annotator's confidence is the pool's last feature column: high where
    its (seeded, hence known in advance) answer is right, low where it is wrong.
    """
    from alband.annotators.simulated import SimulatedLiveAnnotator
    from alband.costs.prices import Price
    from alband.loop import LoopSettings, RoutingSettings, live_rounds
    from alband.models import SoftmaxRegression
    from alband.policies import make_policy
    from alband.purchase.routed import arm_key
    from alband.rounds import run_keys
    from alband.simulate import EpisodeConfig, make_simulated_annotator, noisy_labels, simulate, stack_annotators
    from alband.store.ledger import Ledger
    from alband.task import Task

    from helpers import blobs, llm_annotator

    n_initial, batch, rounds, seed = 4, 8, 6, 5
    names = ("cheap", "human")
    models = [llm_annotator(flip_rate=0.3, p_in=0.1, p_out=0.4), make_simulated_annotator(3, Price(usd_per_label=1e-4))]
    x, y, xt, yt, chars = blobs(n=80)
    annotate = run_keys(seed).annotate
    cheap_answer = np.asarray(noisy_labels(models[0], arm_key(annotate, 0), jnp.arange(len(y)), jnp.asarray(y)))
    rng = np.random.default_rng(0)
    conf = np.where(cheap_answer == y, rng.uniform(0.9, 1.0, len(y)), rng.uniform(0.0, 0.5, len(y)))
    x = np.concatenate([x, conf[:, None].astype(np.float32)], 1)
    xt = np.concatenate([xt, np.full((len(yt), 1), 0.5, np.float32)], 1)
    task = Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), ["w" * int(c) for c in chars], x, y, xt, yt,
                ("a", "b", "c"))
    router = make_router("trust_escalate", chain=[0, 1], confidence_features=[x.shape[1] - 1], alpha=0.3, delta=0.3,
                         audit_rate=0.6, grid_size=5, calibration_size=32)
    learner, policy = SoftmaxRegression(3, max_iter=30), make_policy("random")
    config = EpisodeConfig(learner, policy, n_initial, batch, rounds, router=router, auditor=1)
    trace = simulate(config, task.episode_data(), stack_annotators(models), 100.0, jax.random.PRNGKey(seed))

    annotators = [SimulatedLiveAnnotator(name, model, arm_key(annotate, k), task.y, task.text_chars, task.text_bytes)
                  for k, (name, model) in enumerate(zip(names, models))]
    settings_ = LoopSettings(learner, policy, n_initial, batch, rounds, seed=seed, budget_usd=100.0)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings_, task, annotators, ledger, routing=RoutingSettings(router, auditor=1)))
    index = [np.asarray(trace.initial_index).tolist()] + np.asarray(trace.query_index).tolist()
    arms = [np.asarray(trace.initial_arm).tolist()] + np.asarray(trace.query_arm).tolist()
    for r, event in enumerate(events):
        assert event.proposed == index[r], f"round {r}"
        assert event.label_arms == arms[r], f"round {r}"
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd), rtol=1e-5)
    # The threshold was certified during the run: the cheap annotator labelled some items, the human others.
    label_arms = [k for e in events[1:] for k in e.label_arms]
    assert 0 in label_arms and 1 in label_arms
