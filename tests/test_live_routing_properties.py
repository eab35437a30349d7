"""The routed live loop's money rules under random prices, budgets and routers; resuming an interrupted
routed run buys nothing twice; the vectorised cost bounds equal the annotators' own ``max_cost_usd``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.annotation import Item
from alband.annotators.human import HumanAnnotator
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.annotators.anthropic_annotator import AnthropicAnnotator
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.costs.prices import Price
from alband.loop import LoopSettings, RoutingSettings, live_rounds, pool_costs_usd
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.pool import empty_label_state
from alband.rounds import run_keys
from alband.routing import (
    AuditConfig,
    ContextualTSConfig,
    bts_router,
    cascade_router,
    contextual_ts_router,
    fixed_router,
    random_router,
    ucb_bv_router,
)
from alband.routing.label_weights import (
    arm_weights,
    audited_accuracy,
    empty_counts,
    record_verdicts,
    refresh_weights,
)
from alband.simulate import make_simulated_annotator
from alband.simulate.routed import arm_key
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=30)
POLICY = make_policy("margin")
NAMES = ("cheap", "strong", "human")
AUDITS = AuditConfig(rate=0.5, share=1.0)
# Built once: the loop caches each router's jitted steps.
ROUTERS = [fixed_router(0), random_router(), cascade_router((0, 1, 2)),
           contextual_ts_router(ContextualTSConfig(audit=AUDITS)), bts_router(AUDITS), ucb_bv_router(AUDITS)]


def _task() -> Task:
    x, y, xt, yt, chars = blobs()
    texts = ["w" * int(c) for c in chars]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


TASK = _task()


def _annotators(seed: int, prices=(0.1, 3.0, 3e-4)):
    models = [llm_annotator(flip_rate=0.3, p_in=prices[0], p_out=4 * prices[0]),
              llm_annotator(flip_rate=0.05, p_in=prices[1], p_out=5 * prices[1]),
              make_simulated_annotator(3, Price(usd_per_label=prices[2]))]
    annotate = run_keys(seed).annotate
    return [SimulatedLiveAnnotator(name, model, arm_key(annotate, k), TASK.y, TASK.text_chars, TASK.text_bytes)
            for k, (name, model) in enumerate(zip(NAMES, models))]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(router=st.integers(0, len(ROUTERS) - 1), budget=st.floats(2e-4, 0.05), seed=st.integers(0, 50),
       cheap=st.floats(0.01, 1.0), strong=st.floats(1.0, 20.0), human=st.floats(1e-5, 1e-2),
       feedback=st.sampled_from(["audit", "gold"]), weight=st.sampled_from(["none", "configured", "audited"]))
def test_spent_within_budget_nothing_bought_twice_ledger_equals_settled_costs(
        tmp_path_factory, router, budget, seed, cheap, strong, human, feedback, weight):
    settings_ = LoopSettings(LEARNER, POLICY, 4, 4, 3, seed=seed, budget_usd=budget)
    routing = RoutingSettings(ROUTERS[router], auditor=2 if feedback == "audit" else -1, feedback=feedback,
                              label_weight=weight)
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    with Ledger.open(path, create=True) as ledger:
        events = list(live_rounds(settings_, TASK, _annotators(seed, (cheap, strong, human)), ledger,
                                  routing=routing))
        rows = ledger.rows()
        spent = ledger.spent_usd()
    bought = [a for e in events for a in e.bought]
    assert spent <= budget
    pairs = [(r.pool_index, r.annotator) for r in rows]
    assert len(pairs) == len(set(pairs)) == len(bought)
    assert all(r.status == "settled" for r in rows)
    assert spent == pytest.approx(sum(a.cost_usd for a in bought), rel=1e-12, abs=1e-15)
    assert events[-1].spent_usd == pytest.approx(spent, rel=1e-12, abs=1e-15)
    for event in events:  # each bought item's label arm was paid for it
        for i, a, k in zip(event.proposed, event.accepted, event.label_arms):
            assert (k >= 0) == a and (not a or (i, NAMES[k]) in pairs)


class _Crash(Exception):
    """Stands for the process dying in the middle of a paid call."""


class _Dying:
    """An annotator that dies on the ``after``-th call made through any of the wrappers sharing ``calls``."""

    def __init__(self, inner, calls: list, after: int):
        self.inner, self.calls, self.after = inner, calls, after
        self.name = inner.name

    def max_cost_usd(self, item):
        return self.inner.max_cost_usd(item)

    def max_cost_usd_many(self, texts):
        return self.inner.max_cost_usd_many(texts)

    def annotate(self, item):
        self.calls.append(item.pool_index)
        if len(self.calls) == self.after:
            raise _Crash
        return self.inner.annotate(item)


def test_an_interrupted_routed_run_resumes_without_buying_twice(tmp_path):
    seed, budget = 5, 0.05
    routing = RoutingSettings(ROUTERS[3], auditor=2, feedback="audit", label_weight="audited")
    settings_ = LoopSettings(LEARNER, POLICY, 4, 4, 4, seed=seed, budget_usd=budget)
    with Ledger.open(tmp_path / "fresh.sqlite", create=True) as ledger:
        straight = list(live_rounds(settings_, TASK, _annotators(seed), ledger, routing=routing))
        straight_rows = [(r.pool_index, r.annotator) for r in ledger.rows()]
    assert any(name == "human" for _, name in straight_rows) and len(straight_rows) > 22

    path = tmp_path / "ledger.sqlite"
    calls: list = []
    dying = [_Dying(a, calls, after=21) for a in _annotators(seed)]
    with Ledger.open(path, create=True) as ledger:
        with pytest.raises(_Crash):
            list(live_rounds(settings_, TASK, dying, ledger, routing=routing))
        settled_before = [(r.pool_index, r.annotator) for r in ledger.rows("settled")]
        assert len(settled_before) == 20 and len(ledger.unsettled()) == 1
    with Ledger.open(path, create=False) as ledger:
        resumed = list(live_rounds(settings_, TASK, _annotators(seed), ledger, routing=routing))
        settled = [(r.pool_index, r.annotator) for r in ledger.rows("settled")]
        assert ledger.spent_usd() <= budget
    # Same purchases as the run that was never interrupted; nothing settled twice; the 20 answers
    # bought before the crash were taken from the ledger.
    assert sorted(settled) == sorted(straight_rows) and len(settled) == len(set(settled))
    assert sum(e.reused for e in resumed) == 20
    assert settled[:20] == settled_before
    for a, b in zip(resumed, straight):
        assert (a.proposed, a.accepted, a.labels, a.label_arms) == (b.proposed, b.accepted, b.labels, b.label_arms)
        assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=1e-6)


def test_vectorised_cost_bounds_equal_each_annotators_max_cost():
    texts = ["", "short", "naïve café – ünïcödé ✓ 日本語のテキスト", "w" * 5000, "emoji 🤖🚀 and tabs\t\n"] * 3
    n = len(texts)
    task = Task("t", np.array([f"id-{i}" for i in range(n)]), texts, np.zeros((n, 2), np.float32),
                np.zeros(n, np.int32), np.zeros((1, 2), np.float32), np.zeros(1, np.int32), ("yes", "no"))
    annotators = [
        OpenAIAnnotator("o", "m", task.label_names, Price(0.15, 0.6), base_url="http://127.0.0.1:9", max_tokens=40),
        AnthropicAnnotator("a", "m", task.label_names, Price(3.0, 15.0, usd_per_label=0.001),
                           base_url="http://127.0.0.1:9", prompt_cache="1h"),
        HumanAnnotator("h", task.label_names, price_per_label=0.1, price_per_hour=20.0),
    ]
    for annotator in annotators:
        expected, bound = pool_costs_usd(annotator, task)
        exact = [annotator.max_cost_usd(Item(i, f"id-{i}", t)) for i, t in enumerate(texts)]
        assert bound.tolist() == exact  # bit for bit
        np.testing.assert_array_equal(expected, bound)


def test_audited_weights_are_the_beta_posterior_mean():
    counts = empty_counts(3)
    rng = np.random.default_rng(0)
    agree = np.zeros(3)
    seen = np.zeros(3)
    for _ in range(40):
        observed = rng.random(3) < 0.6
        verdict = (rng.random(3) < [0.7, 0.9, 1.0]).astype(np.float32)
        counts = record_verdicts(counts, jnp.asarray(observed), jnp.asarray(verdict))
        agree += observed * verdict
        seen += observed
    expected = (1 + agree) / (2 + seen)
    np.testing.assert_allclose(audited_accuracy(counts, -1), expected, rtol=1e-6)
    expected[2] = 1.0  # the auditor is taken as truth
    np.testing.assert_allclose(arm_weights("audited", counts, jnp.ones(3), 2), expected, rtol=1e-6)
    np.testing.assert_array_equal(arm_weights("none", counts, jnp.asarray([0.2, 0.5, 0.9]), 2), [1, 1, 1])
    np.testing.assert_allclose(arm_weights("configured", counts, jnp.asarray([0.2, 0.5, 0.9]), 2), [0.2, 0.5, 0.9])

    state = empty_label_state(10, 6)._replace(
        n_train=jnp.int32(4), train_label=jnp.asarray([0, -1, 2, 1, -1, -1], jnp.int32))
    slot_arm = jnp.asarray([0, 1, 2, 1, -1, -1], jnp.int32)
    refreshed = refresh_weights(state, slot_arm, jnp.asarray([0.6, 0.8, 1.0]))
    np.testing.assert_allclose(refreshed.train_weight, [0.6, 0.0, 1.0, 0.8, 0.0, 0.0], rtol=1e-6)
