"""Fault injection: the paid-call protocol under random fault mixes, budgets and concurrency levels.

The wire-format server answers through a seeded :class:`FaultMix` (429, 500,
timeouts, dropped connections, over-billing, malformed bodies, echoed
secrets) and keeps what a provider would bill. Several threads buy labels
through :func:`alband.live.paid_call.paid_call` under one budget guard and
one ledger. Whatever the mix:

* what the server billed <= the budget (plus the excess of calls billed
  above their reservation, which stop the buying);
* the ledger counts every billed request (one settled or charged row each),
  each answer at exactly what the server billed, each unanswered one at no
  less, so the ledger's total is never below the server's;
* no (item, annotator) pair is settled twice;
* every answer is attached to the item it was bought for.
"""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.annotators.anthropic_annotator import AnthropicAnnotator
from alband.annotation import Item
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.costs import Budget, Price
from alband.errors import BudgetExhausted
from alband.live.paid_call import CostOverrun, RetryPolicy, paid_call
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger
from fake_llm_server import FakeLLMServer, FaultMix

SECRET = "sk-fault-harness-secret-0123456789"
KEY_ENV = "ALBAND_FAULT_HARNESS_KEY"
PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
N_ITEMS = 10


def _text(k: int) -> str:
    return f"a {'good and lovely' if k % 2 else 'bad and dull'} film number {k}"


ITEMS = [Item(k, f"r{k}", _text(k)) for k in range(N_ITEMS)]
probability = st.sampled_from([0.0, 0.0, 0.05, 0.15, 0.3])


def _buy_all(annotator, ledger: Ledger, guard: BudgetGuard, workers: int, seed: int) -> None:
    lock = threading.Lock()
    state = {"next": 0, "stop": False}
    policy = RetryPolicy(max_attempts=3, seed=seed, sleep=lambda seconds: None)

    def worker() -> None:
        while True:
            with lock:
                if state["stop"] or state["next"] == len(ITEMS):
                    return
                item = ITEMS[state["next"]]
                state["next"] += 1
                bound = annotator.max_cost_usd(item)
                try:
                    reservation = guard.reserve(bound)
                except BudgetExhausted:
                    state["stop"] = True
                    return
            try:
                paid_call(ledger, guard, annotator, 0, item, bound, reservation, retry=policy)
            except CostOverrun:
                with lock:
                    state["stop"] = True

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate_limited=probability, server_error=probability, timeout=probability, dropped=probability,
       overbilled=st.sampled_from([0.0, 0.0, 0.0, 0.1]), malformed=probability, echo=probability,
       budget_fraction=st.floats(0.15, 1.6), workers=st.integers(1, 4), seed=st.integers(0, 2**16),
       provider=st.sampled_from(["openai", "anthropic"]))
def test_money_invariants_hold_under_any_fault_mix(monkeypatch, rate_limited, server_error, timeout, dropped,
                                                     overbilled, malformed, echo, budget_fraction, workers,
                                                     seed, provider):
    monkeypatch.setenv(KEY_ENV, SECRET)
    mix = FaultMix(rate_limited=rate_limited, server_error=server_error, timeout=timeout, dropped=dropped,
                   overbilled=overbilled, malformed=malformed, echo_secret=echo, seed=seed,
                   timeout_delay_s=0.3, secret=SECRET)
    with FakeLLMServer(api_key=SECRET) as server, tempfile.TemporaryDirectory() as folder:
        server.responder = mix
        cls, base = ((OpenAIAnnotator, server.openai_base_url) if provider == "openai"
                     else (AnthropicAnnotator, server.anthropic_base_url))
        annotator = cls("llm", "test-model", ["neg", "pos"], PRICE, base_url=base, api_key_env=KEY_ENV,
                        timeout_s=0.1, max_tokens=16)
        limit = budget_fraction * sum(annotator.max_cost_usd(item) for item in ITEMS)
        guard = BudgetGuard(Budget(limit))
        path = Path(folder) / "ledger.sqlite"
        with Ledger.open(path, create=True) as ledger:
            _buy_all(annotator, ledger, guard, workers, seed)
            server.wait_idle()
            rows = ledger.rows()
            spent = ledger.spent_usd()
        billed = {b.response_id: b for b in server.billed}
        billed_usd = math.fsum((b.input_tokens * 3.0 + b.output_tokens * 15.0) / 1e6 for b in billed.values())
        excess = math.fsum(r.cost_usd - r.reserved_usd for r in rows if r.overrun)

        # What the server billed stays within the budget (an overrun's excess aside: it stops the buying).
        assert billed_usd <= limit + excess + 1e-12
        # Every billed request is one settled or charged row; every refused one a released row.
        attempts = [r for r in rows if r.status != "skipped"]
        assert len(attempts) == len(server.requests)
        assert sum(r.status in ("settled", "charged") for r in rows) == len(billed)
        assert sum(r.status == "released" for r in rows) == len(server.requests) - len(billed)
        assert not [r for r in rows if r.status == "reserved"]
        # Each answer at exactly what the server billed; the ledger never counts less than the server billed.
        for row in rows:
            if row.status == "settled" and row.response_id in billed and not row.extra.get("cost_is_upper_bound"):
                b = billed[row.response_id]
                assert row.cost_usd == pytest.approx((b.input_tokens * 3.0 + b.output_tokens * 15.0) / 1e6,
                                                     rel=1e-12)
        assert spent >= billed_usd - 1e-12
        assert guard.budget.spent_usd == pytest.approx(spent, rel=1e-9, abs=1e-15)
        assert abs(guard.budget.reserved_usd) < 1e-12
        # No pair settled twice; every answer belongs to the item it was bought for.
        settled = [r for r in rows if r.status == "settled"]
        assert len({(r.charge_key, r.annotator) for r in settled}) == len(settled)
        for row in settled:
            assert row.item_id == f"r{row.pool_index}"
            if row.response_id in billed:
                assert _text(row.pool_index) in billed[row.response_id].prompt_text
        for written in Path(folder).iterdir():
            assert SECRET.encode() not in written.read_bytes(), written
