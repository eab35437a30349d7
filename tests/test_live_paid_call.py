"""The paid-call protocol against the wire-format server: attempts, backoff, overruns, skips, other charges."""

from __future__ import annotations

import time

import pytest

from alband.annotation import Item
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.costs import Budget, Price
from alband.errors import AlbandError, AnnotatorError, BudgetExhausted
from alband.live.paid_call import ChargeResult, CostOverrun, RetryPolicy, Skipped, paid_call, paid_charge
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger
from fake_llm_server import FakeLLMServer, Reply

PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
ITEM = Item(4, "doc-4", "a quiet and lovely film")


@pytest.fixture
def server():
    with FakeLLMServer(api_key=None) as fake:
        yield fake


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as opened:
        yield opened


def _annotator(server, **options):
    return OpenAIAnnotator("gpt", "gpt-test", ["positive", "negative"], PRICE, base_url=server.openai_base_url,
                           api_key_env=None, **options)


def _buy(ledger, annotator, limit=1.0, waits=None, max_attempts=3, max_retry_after_s=60.0):
    guard = BudgetGuard(Budget(limit))
    bound = annotator.max_cost_usd(ITEM)
    policy = RetryPolicy(max_attempts=max_attempts, sleep=(waits if waits is not None else []).append,
                         max_retry_after_s=max_retry_after_s)
    outcome = paid_call(ledger, guard, annotator, 0, ITEM, bound, guard.reserve(bound), retry=policy)
    return outcome, guard, bound


def _statuses(ledger):
    return [(r.attempt, r.status) for r in ledger.rows()]


def test_a_429_then_an_answer_is_two_attempts_each_reserved_and_retry_after_honoured(server, ledger):
    server.enqueue(Reply(status=429, retry_after_ms=2500))
    waits: list[float] = []
    outcome, guard, _ = _buy(ledger, _annotator(server), waits=waits)
    assert outcome.label == 0 and server.request_count == 2
    assert _statuses(ledger) == [(1, "released"), (2, "settled")]
    assert waits == [2.5]  # the server asked for 2.5 s, longer than the first backoff (<= 0.5 s)
    assert guard.budget.reserved_usd == 0 and guard.budget.spent_usd == pytest.approx(outcome.cost_usd)
    assert ledger.spent_usd() == pytest.approx(outcome.cost_usd)


def test_a_timed_out_attempt_stays_counted_in_full(server, ledger):
    server.enqueue(Reply(delay_s=5.0))
    outcome, guard, bound = _buy(ledger, _annotator(server, timeout_s=0.3))
    assert outcome.label == 0
    assert _statuses(ledger) == [(1, "charged"), (2, "settled")]
    assert ledger.spent_usd() == pytest.approx(bound + outcome.cost_usd)
    assert guard.budget.spent_usd == pytest.approx(ledger.spent_usd())


def test_a_persistent_failure_skips_the_item_once_and_for_all(server, ledger):
    server.default_reply = Reply(status=500, retry_after_ms=None, headers={"retry-after": "3600"})
    waits: list[float] = []
    outcome, guard, _ = _buy(ledger, _annotator(server), waits=waits, max_retry_after_s=5.0)
    assert isinstance(outcome, Skipped) and "3 attempt(s)" in outcome.reason and "HTTP 500" in outcome.reason
    assert waits == [5.0, 5.0]  # an hour asked for, the bound waited
    assert _statuses(ledger) == [(1, "released"), (2, "released"), (3, "released"), (1, "skipped")]
    assert ledger.skip_for("doc-4", "gpt") is not None
    assert guard.budget.spent_usd == 0 and guard.budget.reserved_usd == 0


def test_a_refused_request_skips_at_once_and_a_fatal_error_raises(server, ledger):
    server.enqueue(Reply(status=400))
    outcome, _, _ = _buy(ledger, _annotator(server))
    assert isinstance(outcome, Skipped) and server.request_count == 1
    server.enqueue(Reply(status=404))
    guard = BudgetGuard(Budget(1.0))
    other = Item(5, "doc-5", "x")
    bound = _annotator(server).max_cost_usd(other)
    with pytest.raises(AnnotatorError, match="HTTP 404"):
        paid_call(ledger, guard, _annotator(server), 0, other, bound, guard.reserve(bound))
    assert ledger.attempts("doc-5", "gpt")[0].status == "released" and guard.budget.reserved_usd == 0


def test_an_overrun_is_settled_at_the_real_cost_and_names_the_setting(server, ledger):
    server.enqueue(Reply(usage={"prompt_tokens": 900_000, "completion_tokens": 5, "total_tokens": 900_005}))
    with pytest.raises(CostOverrun, match=r"request_overhead_tokens \(now 64\).*\[annotators.gpt\]") as info:
        _buy(ledger, _annotator(server), limit=10.0)
    (row,) = ledger.rows()
    assert row.status == "settled" and row.overrun and row.cost_usd == pytest.approx(info.value.actual_usd)
    assert ledger.spent_usd() == pytest.approx(2.700075)
    with pytest.raises(Exception, match="not be bought twice"):  # a resume does not send it again
        ledger.reserve(1, 4, "doc-4", "gpt", 0.01)


def test_an_attempt_the_budget_cannot_cover_ends_the_item_as_skipped(server, ledger):
    server.enqueue(Reply(drop_connection=True))
    annotator = _annotator(server)
    bound = annotator.max_cost_usd(ITEM)
    outcome, guard, _ = _buy(ledger, annotator, limit=bound * 1.5)
    assert isinstance(outcome, Skipped) and "budget cannot cover attempt 2" in outcome.reason
    assert _statuses(ledger) == [(1, "charged"), (1, "skipped")]
    assert guard.budget.spent_usd == pytest.approx(bound) == ledger.spent_usd()


def test_a_charge_that_is_not_a_label_is_paid_once_and_found_on_resume(tmp_path):
    path = tmp_path / "ledger.sqlite"
    calls = []

    def select() -> ChargeResult:
        calls.append(1)
        if len(calls) == 1:
            raise AnnotatorError("HTTP 503", retry="transient")
        return ChargeResult(0.02, output="[3, 9, 4]", response_id="sel-1", input_tokens=500, output_tokens=9)

    with Ledger.open(path, create=True) as ledger:
        guard = BudgetGuard(Budget(0.1))
        policy = RetryPolicy(sleep=lambda s: None)
        result = paid_charge(ledger, guard, "selection", "round-3", "llm-selector", 0.05, select, retry=policy)
        assert result.output == "[3, 9, 4]" and len(calls) == 2
        assert guard.budget.spent_usd == pytest.approx(0.02) == ledger.spent_usd()
    with Ledger.open(path, create=False) as ledger:  # resumed: the settled charge is read back, not bought
        guard = BudgetGuard(ledger.budget(0.1))
        again = paid_charge(ledger, guard, "selection", "round-3", "llm-selector", 0.05, select)
        assert (again.output, again.response_id, len(calls)) == ("[3, 9, 4]", "sel-1", 2)
        assert guard.budget.spent_usd == pytest.approx(0.02)
        with pytest.raises(BudgetExhausted):
            paid_charge(ledger, guard, "generation", "gen-1", "llm", 0.5, select)


def test_retry_policy_backoff_is_bounded_seeded_and_jittered():
    a, b = RetryPolicy(seed=3), RetryPolicy(seed=3)
    waits = [a.delay_s(n) for n in range(1, 9)]
    assert waits == [b.delay_s(n) for n in range(1, 9)]
    assert all(0.5 * min(8.0, 0.5 * 2 ** (n - 1)) <= w <= min(8.0, 0.5 * 2 ** (n - 1))
               for n, w in enumerate(waits, 1))
    assert RetryPolicy(max_retry_after_s=10).delay_s(1, retry_after_s=1e6) == 10


def test_an_idempotency_key_is_sent_only_where_the_api_takes_one_and_is_stable(server, tmp_path):
    from alband.annotators.openai_annotator import OpenAIChatCompletions

    class WithIdempotency(OpenAIChatCompletions):
        idempotency_header = "Idempotency-Key"

    plain = _annotator(server)
    keyed = _annotator(server)
    keyed.api = WithIdempotency()
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        ledger.set_meta("config_hash", "c" * 64)
        for annotator in (plain, keyed):
            server.enqueue(Reply(status=500, retry_after_ms=None))  # two attempts each
            guard = BudgetGuard(Budget(1.0))
            bound = annotator.max_cost_usd(ITEM)
            paid_call(ledger, guard, annotator, 0, Item(4, f"doc-{len(server.requests)}", ITEM.text), bound,
                      guard.reserve(bound), retry=RetryPolicy(sleep=lambda s: None))
    assert all("idempotency-key" not in request.headers for request in server.requests[:2])
    keys = [request.headers.get("idempotency-key") for request in server.requests[2:]]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("alband-")  # one key for both attempts


def test_a_charge_records_its_call_seconds_and_a_resume_reads_them_back(tmp_path):
    """``latency_s`` of a settled charge is the call's wall time (as for labels), or the one the call gives."""
    path = tmp_path / "ledger.sqlite"

    def slow() -> ChargeResult:
        time.sleep(0.05)
        return ChargeResult(0.01, "[1]")

    with Ledger.open(path, create=True) as ledger:
        guard = BudgetGuard(Budget(1.0))
        paid_charge(ledger, guard, "generation", "gen-1", "llm", 0.05, slow)
        paid_charge(ledger, guard, "consistency", "gen-1 sample 0", "llm", 0.05,
                    lambda: ChargeResult(0.01, "[2]", latency_s=7.5))
        first = ledger.charge_for("generation", "gen-1", "llm").latency_s
        assert 0.05 <= first < 5.0
        assert ledger.charge_for("consistency", "gen-1 sample 0", "llm").latency_s == 7.5
        with pytest.raises(AlbandError, match="latency_s of ledger row"):
            ledger.settle_charge(ledger.reserve(0, None, "x", "llm", 0.01, kind="selection", key="k"), 0.0,
                                 latency_s=-1.0)
    with Ledger.open(path, create=False) as ledger:
        again = paid_charge(ledger, BudgetGuard(ledger.budget(1.0)), "generation", "gen-1", "llm", 0.05, slow)
        assert again.latency_s == first
