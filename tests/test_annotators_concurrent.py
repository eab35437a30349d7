"""Budgeted concurrent annotation: never overspent, every paid call reported, clean stops."""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.annotators.anthropic_annotator import AnthropicAnnotator
from alband.annotation import Item
from alband.annotators.concurrent import annotate_concurrently
from alband.annotators.llm_common import AnnotatorError
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.costs import Budget, Price, affordable_prefix
from alband.errors import AlbandError
from alband.store.budget_guard import BudgetGuard
from fake_llm_server import Reply, shared_fake_llm_server  # noqa: F401 - fixture

KEY_ENV = "ALBAND_TEST_LLM_KEY"
LABELS = ["positive", "negative"]
PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
ITEM_NUMBER = re.compile(r"item-(\d+)\b")


@pytest.fixture
def server(shared_fake_llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    shared_fake_llm_server.reset()
    return shared_fake_llm_server


def items(n: int) -> list[Item]:
    return [Item(k, f"id-{k}", f"item-{k} " + "word " * (k % 7)) for k in range(n)]


def openai(server, price=PRICE, **kwargs) -> OpenAIAnnotator:
    return OpenAIAnnotator("gpt", "gpt-test", LABELS, price, base_url=server.openai_base_url,
                           api_key_env=KEY_ENV, **kwargs)


class Recorder:
    """The caller's side of the callbacks (what a ledger would receive)."""

    def __init__(self) -> None:
        self.reserved, self.settled, self.released, self.failed = [], [], [], []
        self.threads = set()

    def on_reserved(self, item, reservation):
        self.threads.add(threading.get_ident())
        self.reserved.append((item.pool_index, reservation.amount_usd))

    def on_settled(self, item, annotation, reservation):
        self.threads.add(threading.get_ident())
        assert annotation.pool_index == item.pool_index
        assert annotation.cost_usd <= reservation.amount_usd + 1e-12
        self.settled.append((item.pool_index, annotation.cost_usd))

    def on_released(self, item, reservation, error):
        self.released.append(item.pool_index)

    def on_failed(self, item, error):
        self.failed.append((item.pool_index, str(error)))

    def callbacks(self, with_failed=True):
        callbacks = dict(on_settled=self.on_settled, on_reserved=self.on_reserved, on_released=self.on_released)
        if with_failed:
            callbacks["on_failed"] = self.on_failed
        return callbacks


def test_budget_exhausted_mid_batch_ends_cleanly_and_matches_the_sequential_rule(server):
    annotator = openai(server)
    batch = items(30)
    reserves = np.array([annotator.max_cost_usd(item) for item in batch])
    # Actual costs, measured with an ample budget.
    free = annotate_concurrently(annotator, batch, BudgetGuard(Budget(1.0)), on_settled=lambda *a: None)
    actual = np.array([a.cost_usd for a in free])
    assert np.all(actual <= reserves)

    limit = float(actual[:12].sum() + reserves[12] * 0.5)
    guard = BudgetGuard(Budget(limit))
    recorder = Recorder()
    main_thread = threading.get_ident()
    result = annotate_concurrently(annotator, batch, guard, max_workers=4, **recorder.callbacks())
    expected = affordable_prefix(0.0, limit, reserves, actual)
    assert [a.pool_index for a in result] == list(np.flatnonzero(expected))
    assert len(result) < len(batch)
    assert sorted(k for k, _ in recorder.settled) == [a.pool_index for a in result]
    assert recorder.threads == {main_thread}  # callbacks run on the caller's thread
    budget = guard.budget
    assert abs(budget.reserved_usd) < 1e-15 and budget.spent_usd <= limit
    assert math.isclose(sum(c for _, c in recorder.settled), budget.spent_usd, rel_tol=0, abs_tol=1e-15)
    assert not recorder.released and len(recorder.reserved) == len(result)


def test_failed_calls_release_their_reservation(server):
    annotator = openai(server, max_retries=1)
    server.responder = lambda request: (Reply(status=500) if "item-3 " in request.prompt_text else Reply())
    guard = BudgetGuard(Budget(1.0))
    recorder = Recorder()
    result = annotate_concurrently(annotator, items(8), guard, max_workers=3, **recorder.callbacks())
    assert [a.pool_index for a in result] == [0, 1, 2, 4, 5, 6, 7]
    assert recorder.released == [3] and recorder.failed[0][0] == 3 and "HTTP 500" in recorder.failed[0][1]
    assert abs(guard.budget.reserved_usd) < 1e-15
    assert math.isclose(guard.budget.spent_usd, sum(a.cost_usd for a in result), abs_tol=1e-15)


def test_without_on_failed_the_first_error_stops_the_batch_after_settling(server):
    annotator = openai(server, max_retries=0)
    server.responder = lambda request: (Reply(status=503) if "item-2 " in request.prompt_text else Reply())
    guard = BudgetGuard(Budget(1.0))
    recorder = Recorder()
    with pytest.raises(AnnotatorError, match="HTTP 503"):
        annotate_concurrently(annotator, items(40), guard, max_workers=2, **recorder.callbacks(with_failed=False))
    assert recorder.released == [2]
    assert len(recorder.settled) < 39  # stopped submitting
    assert abs(guard.budget.reserved_usd) < 1e-15
    assert math.isclose(guard.budget.spent_usd, sum(c for _, c in recorder.settled), abs_tol=1e-15)


def test_a_callback_failure_still_settles_calls_in_flight(server):
    annotator = openai(server)
    server.default_reply = Reply(delay_s=0.05)
    guard = BudgetGuard(Budget(1.0))
    seen = []

    def broken_ledger(item, annotation, reservation):
        seen.append(annotation.cost_usd)
        if len(seen) == 1:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        annotate_concurrently(annotator, items(20), guard, max_workers=4, on_settled=broken_ledger)
    assert abs(guard.budget.reserved_usd) < 1e-15
    assert 1 <= len(seen) < 20
    assert math.isclose(guard.budget.spent_usd, sum(seen), abs_tol=1e-15)


def test_a_wrong_cost_bound_is_reported_not_hidden(server):
    annotator = openai(server)
    server.enqueue(Reply(usage={"prompt_tokens": 10_000_000, "completion_tokens": 1, "total_tokens": 10_000_001}))
    guard = BudgetGuard(Budget(100.0))
    settled = []
    with pytest.raises(AlbandError, match="more than its reservation"):
        annotate_concurrently(annotator, items(1), guard,
                              on_settled=lambda item, a, r: settled.append((a.cost_usd, r.amount_usd)))
    [(cost, reserved)] = settled
    assert cost > reserved and guard.budget.spent_usd == reserved


def test_nothing_fits(server):
    annotator = openai(server)
    guard = BudgetGuard(Budget(1e-9))
    assert annotate_concurrently(annotator, items(5), guard, on_settled=lambda *a: None) == []
    assert server.request_count == 0


BEHAVIOURS = ["ok", "ok", "ok", "http500", "rate_limited_once", "malformed", "no_usage", "dropped", "refusal"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    behaviours=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=14),
    price=st.builds(Price, st.floats(0, 50), st.floats(0, 50), st.floats(0, 1e-3)),
    budget_fraction=st.floats(0.05, 1.5),
    workers=st.integers(1, 5),
    provider=st.sampled_from(["anthropic", "openai"]),
)
def test_property_never_overspent_and_every_paid_call_reported(server, behaviours, price, budget_fraction,
                                                               workers, provider):
    server.reset()
    failures_left = {k: 1 for k, b in enumerate(behaviours) if b == "rate_limited_once"}
    lock = threading.Lock()

    def respond(request):
        k = int(ITEM_NUMBER.search(request.prompt_text).group(1))
        behaviour = behaviours[k]
        if behaviour == "http500":
            return Reply(status=500)
        if behaviour == "rate_limited_once":
            with lock:
                if failures_left[k]:
                    failures_left[k] -= 1
                    return Reply(status=429)
        if behaviour == "malformed":
            return Reply(raw_body=b"{oops")
        if behaviour == "no_usage":
            return Reply(usage=None)
        if behaviour == "dropped":
            return Reply(drop_connection=True)
        if behaviour == "refusal":
            return Reply(refusal="no")
        return Reply()

    server.responder = respond
    if provider == "anthropic":
        annotator = AnthropicAnnotator("claude", "claude-test", LABELS, price, base_url=server.url,
                                       api_key_env=KEY_ENV, max_retries=1)
    else:
        annotator = openai(server, price=price, max_retries=1)
    batch = items(len(behaviours))
    reserves = np.array([annotator.max_cost_usd(item) for item in batch])
    limit = max(float(reserves.sum()) * budget_fraction, 1e-9)
    guard = BudgetGuard(Budget(limit))
    recorder = Recorder()
    result = annotate_concurrently(annotator, batch, guard, max_workers=workers, **recorder.callbacks())

    budget = guard.budget
    assert abs(budget.reserved_usd) < 1e-15
    assert budget.spent_usd <= limit + 1e-12
    assert math.isclose(sum(c for _, c in recorder.settled), budget.spent_usd, rel_tol=1e-12, abs_tol=1e-15)
    assert sorted(k for k, _ in recorder.settled) == [a.pool_index for a in result]
    failed = sorted(k for k, _ in recorder.failed)
    assert failed == sorted(recorder.released)
    # The handled items are the sequential affordable prefix; the failures are the HTTP 500 items in it.
    handled = sorted([a.pool_index for a in result] + failed)
    assert handled == list(range(len(handled)))
    # Each call is one attempt (the SDK's retries are off): a 429 is a failure released here.
    assert failed == [k for k in handled if behaviours[k] in ("http500", "rate_limited_once")]
    actual = np.zeros(len(batch))
    for annotation in result:
        actual[annotation.pool_index] = annotation.cost_usd
    prefix = affordable_prefix(0.0, limit, reserves, actual)
    assert prefix[:len(handled)].all()
    if len(handled) < len(batch):
        assert not prefix[len(handled)]
    for annotation in result:
        behaviour = behaviours[annotation.pool_index]
        if behaviour in ("malformed", "no_usage", "dropped"):
            assert annotation.label is None and annotation.cost_usd == reserves[annotation.pool_index]
        elif behaviour == "refusal":
            assert annotation.label is None and annotation.cost_usd <= reserves[annotation.pool_index]
        else:
            assert annotation.valid
