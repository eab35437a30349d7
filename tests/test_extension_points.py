"""A new learner and a new router, each defined in one file under ``tests/``, run through both drivers.

Neither needs an edit of ``src/``: the learner implements
:class:`alband.models.base.Learner` (and registers itself by name), the router
is a :class:`alband.routing.Router`. The simulator and the live loop call the
same two round steps (:mod:`alband.rounds`) and the same purchase rule
(:mod:`alband.purchase`), so the live loop buys what the simulator predicts,
item for item, arm for arm.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.costs.prices import Price
from alband.loop import LoopSettings, RoutingSettings, live_rounds
from alband.models import make_learner
from alband.models.base import Learner
from alband.policies import make_policy
from alband.purchase.routed import arm_key
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, make_simulated_annotator, simulate, stack_annotators
from alband.store.ledger import Ledger
from alband.task import Task

from alternating_router import alternating_router
from centroid_learner import SoftCentroids
from helpers import blobs, llm_annotator

N_INITIAL, BATCH, ROUNDS, SEED = 5, 6, 6, 11
NAMES = ("cheap", "strong", "human")


def _task() -> Task:
    x, y, xt, yt, chars = blobs()
    texts = ["w" * int(c) for c in chars]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


def _models():
    return [llm_annotator(flip_rate=0.3, p_in=0.1, p_out=0.4), llm_annotator(flip_rate=0.05, p_in=3.0, p_out=15.0),
            make_simulated_annotator(3, Price(usd_per_label=3e-5))]


def test_the_new_learner_is_a_learner_and_is_registered():
    learner = make_learner("test_soft_centroids", n_classes=3, temperature=2.0)
    assert isinstance(learner, Learner) and learner == SoftCentroids(3, 2.0, 1.0)
    assert make_learner("test_soft_centroids", n_classes=3, temperature=2.0) is learner
    hash(learner)  # a jit static argument


@pytest.mark.parametrize("policy", ["margin", "random"])
def test_new_learner_and_router_run_in_simulate_and_live_alike(tmp_path, policy):
    task = _task()
    learner = make_learner("test_soft_centroids", n_classes=3, temperature=2.0)
    router = alternating_router()
    models = _models()
    config = EpisodeConfig(learner, make_policy(policy), N_INITIAL, BATCH, ROUNDS, router=router, auditor=-1)
    trace = simulate(config, task.episode_data(), stack_annotators(models), 100.0, jax.random.PRNGKey(SEED))

    annotate = run_keys(SEED).annotate
    annotators = [SimulatedLiveAnnotator(name, model, arm_key(annotate, k), task.y, task.text_chars, task.text_bytes)
                  for k, (name, model) in enumerate(zip(NAMES, models))]
    settings = LoopSettings(learner, make_policy(policy), N_INITIAL, BATCH, ROUNDS, seed=SEED, budget_usd=100.0)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotators, ledger,
                                  routing=RoutingSettings(router, feedback="gold")))

    assert len(events) == ROUNDS + 1
    index = [np.asarray(trace.initial_index).tolist()] + np.asarray(trace.query_index).tolist()
    arms = [np.asarray(trace.initial_arm).tolist()] + np.asarray(trace.query_arm).tolist()
    for r, event in enumerate(events):
        assert event.proposed == index[r], f"round {r}"
        assert event.label_arms == arms[r], f"round {r}"
        # the router's rule: arm = pool index mod 3
        assert all(k == i % 3 for i, k in zip(event.proposed, event.label_arms) if k >= 0)
    np.testing.assert_array_equal([e.test_accuracy for e in events], np.asarray(trace.test_accuracy))
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd), rtol=1e-5)
    # The learner learned something: better than chance on three balanced blobs.
    assert float(trace.test_accuracy[-1]) > 0.5


def test_new_learner_alone_runs_in_simulate_and_live_alike(tmp_path):
    task = _task()
    learner = SoftCentroids(3, temperature=2.0)
    model = llm_annotator()
    config = EpisodeConfig(learner, make_policy("entropy"), N_INITIAL, BATCH, ROUNDS)
    trace = simulate(config, task.episode_data(), model, 100.0, jax.random.PRNGKey(SEED))
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(SEED).annotate, task.y, task.text_chars,
                                       task.text_bytes)
    settings = LoopSettings(learner, config.policy, N_INITIAL, BATCH, ROUNDS, seed=SEED, budget_usd=100.0)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd()))
    index = [np.asarray(trace.initial_index).tolist()] + np.asarray(trace.query_index).tolist()
    assert [e.proposed for e in events] == index
