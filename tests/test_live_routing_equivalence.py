"""The routed live loop buys exactly what the simulator predicts: items, arms, labels, dollars.

Simulated annotators (a cheap and a strong LLM and a human), each router in both
feedback settings (audited by the human, and free feedback against gold), under a
budget that runs out in the middle of a batch.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.costs.prices import Price
from alband.errors import AlbandError
from alband.loop import LoopSettings, RoutingSettings, live_rounds
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.routing import AuditConfig, CascadeConfig, ContextualTSConfig, bts_router, cascade_router, contextual_ts_router, fixed_router
from alband.simulate import EpisodeConfig, annotation_cost_usd, make_simulated_annotator, simulate, stack_annotators
from alband.simulate.routed import arm_key
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)
POLICY = make_policy("margin")
N_INITIAL, BATCH, ROUNDS, SEED = 5, 6, 8, 3
CAPACITY = N_INITIAL + BATCH * ROUNDS
NAMES = ("cheap", "strong", "human")
HUMAN = 2
# Built once per module: a router is part of the simulator's static config.
# Audits are frequent so that a small budget still pays a few of them.
AUDITS = AuditConfig(rate=0.5, share=1.0)
ROUTERS = {
    "fixed": fixed_router(1),
    "cascade": cascade_router((0, 1, 2), CascadeConfig(min_count=3, audit=AUDITS)),
    "contextual_ts": contextual_ts_router(ContextualTSConfig(audit=AUDITS)),
    "bts": bts_router(AUDITS),
}


def _task() -> Task:
    x, y, xt, yt, chars = blobs()
    texts = ["w" * int(c) for c in chars]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


def _models():
    return [llm_annotator(flip_rate=0.3, p_in=0.1, p_out=0.4), llm_annotator(flip_rate=0.05, p_in=3.0, p_out=15.0),
            make_simulated_annotator(3, Price(usd_per_label=3e-5))]  # a gold "human" priced to be audited often


def _live_annotators(task: Task, models, seed: int):
    annotate = run_keys(seed).annotate
    return [SimulatedLiveAnnotator(name, model, arm_key(annotate, k), task.y, task.text_chars, task.text_bytes)
            for k, (name, model) in enumerate(zip(NAMES, models))]


def _binding_budget(task: Task, models, router_name: str, unlimited_spend: float) -> float:
    """A budget that runs out mid-run.

    Learning routers adapt to any budget the cheap arm can cover: give them half
    of what labelling the capacity with the cheap arm costs. The fixed router
    gets half of what it spends without a limit.
    """
    if router_name != "fixed":
        cheap = np.asarray(annotation_cost_usd(models[0], task.episode_data().text_chars), np.float64)
        return 0.5 * CAPACITY * float(cheap.mean())
    return 0.5 * unlimited_spend


def _sim_rounds(trace):
    def rows(first, rest):
        return [np.asarray(first).tolist()] + np.asarray(rest).tolist()

    return (rows(trace.initial_index, trace.query_index), rows(trace.initial_accepted, trace.query_accepted),
            rows(trace.initial_arm, trace.query_arm))


@pytest.mark.parametrize("feedback", [
    "audit",
    pytest.param("gold", marks=pytest.mark.slow),
])
@pytest.mark.parametrize("router_name", [
    "contextual_ts",
    pytest.param("fixed", marks=pytest.mark.slow),
    pytest.param("cascade", marks=pytest.mark.slow),
    pytest.param("bts", marks=pytest.mark.slow),
])
def test_routed_live_loop_buys_what_simulate_predicts(tmp_path, router_name, feedback):
    task = _task()
    models = _models()
    router = ROUTERS[router_name]
    auditor = HUMAN if feedback == "audit" else -1
    config = EpisodeConfig(LEARNER, POLICY, N_INITIAL, BATCH, ROUNDS, router=router, auditor=auditor)
    data, stack, key = task.episode_data(), stack_annotators(models), jax.random.PRNGKey(SEED)
    unlimited = simulate(config, data, stack, 100.0, key)  # same compiled function: the budget is traced
    budget = _binding_budget(task, models, router_name, float(unlimited.spent_usd[-1]))
    trace = simulate(config, data, stack, budget, key)

    settings = LoopSettings(LEARNER, POLICY, N_INITIAL, BATCH, ROUNDS, seed=SEED, budget_usd=budget)
    routing = RoutingSettings(router, auditor=auditor, feedback=feedback)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, _live_annotators(task, models, SEED), ledger, routing=routing))
        rows = ledger.rows()

    index, accepted, arm = _sim_rounds(trace)
    for r, event in enumerate(events):
        assert event.proposed == index[r], f"round {r}"
        assert event.accepted == accepted[r], f"round {r}"
        assert event.label_arms == arm[r], f"round {r}"
    query_label = np.asarray(trace.query_label)
    for r, event in enumerate(events[1:], start=1):
        bought = np.asarray(accepted[r])
        np.testing.assert_array_equal(np.asarray(event.labels)[bought], query_label[r - 1][bought])
    n = len(events)
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd)[:n], rtol=1e-5)
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy)[:n], atol=1e-6)

    # The budget ran out in the middle of a batch, and was never exceeded.
    assert events[-1].stop_reason == "budget exhausted" and bool(trace.exhausted[n - 1])
    assert 0 < n - 1 < ROUNDS and not all(events[-1].accepted)
    assert sum(r.cost_usd for r in rows) <= budget
    # One ledger row per (item, annotator); every label arm of a bought item was paid.
    pairs = [(r.pool_index, r.annotator) for r in rows]
    assert len(pairs) == len(set(pairs)) and all(r.status == "settled" for r in rows)
    for event in events:
        for i, a, k in zip(event.proposed, event.accepted, event.label_arms):
            assert a == ((i, NAMES[k]) in pairs if k >= 0 else False)
    if feedback == "audit" and router_name in ("contextual_ts", "bts"):
        # Audits were paid (the cascade keeps its budget for covering the stream with its first
        # stage, so at a budget that binds it neither escalates nor audits).
        assert any(r.annotator == "human" for r in rows)


def test_gold_feedback_needs_simulated_annotators(tmp_path):
    task = _task()

    class Real:
        name = "real"

        def max_cost_usd(self, item):
            return 0.01

        def annotate(self, item):  # pragma: no cover - never called
            raise AssertionError

    settings = LoopSettings(LEARNER, POLICY, N_INITIAL, BATCH, ROUNDS, seed=SEED, budget_usd=1.0)
    annotators = _live_annotators(task, _models(), SEED)[:1] + [Real()]
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        with pytest.raises(AlbandError, match="not simulated"):
            next(live_rounds(settings, task, annotators, ledger,
                             routing=RoutingSettings(ROUTERS["fixed"], feedback="gold")))
        with pytest.raises(AlbandError, match="auditor arm 5"):
            next(live_rounds(settings, task, annotators, ledger,
                             routing=RoutingSettings(ROUTERS["fixed"], auditor=5)))
