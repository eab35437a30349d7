"""The live loop: same items as the simulator, ledger protocol, resume without re-buying."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.annotation import Annotation, Item
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.errors import AnnotatorError
from alband.loop import LoopSettings, live_rounds
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, simulate
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)


def _task() -> Task:
    x, y, xt, yt, chars = blobs()
    texts = ["w" * int(c) for c in chars]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


def _live(task, settings, ledger_path, annotator_model):
    annotator = SimulatedLiveAnnotator("llm", annotator_model, run_keys(settings.seed).annotate, task.y,
                                       task.text_chars, task.text_bytes)
    with Ledger.open(ledger_path, create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger,
                                  expected_cost_usd=annotator.expected_cost_usd()))
        rows = ledger.rows()
    return events, rows


@pytest.mark.parametrize("policy,budget", [("entropy", 10.0), ("random", 10.0), ("margin", 0.004)])
def test_live_loop_buys_what_simulate_predicts(tmp_path, policy, budget):
    task = _task()
    settings = LoopSettings(LEARNER, make_policy(policy), 5, 6, 8, seed=7, budget_usd=budget)
    model = llm_annotator()
    events, rows = _live(task, settings, tmp_path / "ledger.sqlite", model)
    trace = simulate(EpisodeConfig(LEARNER, settings.policy, 5, 6, 8), task.episode_data(), model, budget,
                     jax.random.PRNGKey(7))
    sim_items = np.concatenate([
        np.asarray(trace.initial_index)[np.asarray(trace.initial_accepted)],
        np.asarray(trace.query_index)[np.asarray(trace.query_accepted)],
    ]).tolist()
    live_items = [r.pool_index for r in rows]
    assert live_items == sim_items
    n = len(events)
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy)[:n], atol=1e-6)
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd)[:n], rtol=1e-5)
    assert sum(r.cost_usd for r in rows) <= budget
    if budget < 1:
        assert events[-1].stop_reason == "budget exhausted"


def test_resume_takes_answers_from_the_ledger(tmp_path):
    task = _task()
    settings = LoopSettings(LEARNER, make_policy("entropy"), 5, 6, 6, seed=1, budget_usd=10.0)
    model = llm_annotator()
    path = tmp_path / "ledger.sqlite"
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(1).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(path, create=True) as ledger:
        rounds = live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd())
        first = [next(rounds) for _ in range(3)]  # then the process "dies"
        spent_before = ledger.spent_usd()
    events, rows = _live(task, settings, path, model)
    assert sum(e.reused for e in events) == sum(len(e.bought) for e in first)
    pool_indices = [r.pool_index for r in rows]
    assert len(pool_indices) == len(set(pool_indices))
    uninterrupted, _ = _live(task, settings, tmp_path / "fresh.sqlite", model)
    assert [e.proposed for e in events] == [e.proposed for e in uninterrupted]
    assert events[-1].spent_usd == pytest.approx(uninterrupted[-1].spent_usd)
    assert spent_before < events[-1].spent_usd


class _Flaky:
    """Fails (unbilled) on one item, otherwise labels everything 0 for a cent."""

    name = "flaky"

    def __init__(self, bad: int):
        self.bad = bad

    def max_cost_usd(self, item: Item) -> float:
        return 0.01

    def max_cost_usd_many(self, texts) -> np.ndarray:
        return np.full(len(list(texts)), 0.01)

    def annotate(self, item: Item) -> Annotation:
        if item.pool_index == self.bad:
            raise AnnotatorError("server said 500 three times")
        return Annotation(item.pool_index, item.item_id, self.name, 0, 0.01)


def test_a_failed_request_is_released_and_stops_the_run(tmp_path):
    task = _task()
    settings = LoopSettings(LEARNER, make_policy("random"), 4, 3, 2, seed=0, budget_usd=1.0)
    from alband.rounds import initial_indices

    bad = int(initial_indices(run_keys(0).init, jnp.asarray(task.x), 4)[2])
    with Ledger.open(tmp_path / "l.sqlite", create=True) as ledger:
        with pytest.raises(AnnotatorError):
            list(live_rounds(settings, task, _Flaky(bad), ledger))
        statuses = [r.status for r in ledger.rows()]
        assert statuses == ["settled", "settled", "released"]
        assert ledger.spent_usd() == pytest.approx(0.02)
