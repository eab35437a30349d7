"""The LLM pair judge through the unmodified SDKs against the local wire-format server."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alband.annotation import Annotation, Item
from alband.annotators.base import Annotator
from alband.annotators.pair_judge import LLMPairJudge
from alband.annotators.pair_orders import combine_orders, order_items, pair_id_of, pair_item
from alband.costs import Price
from alband.costs.budget import Budget
from alband.errors import AlbandError
from alband.live.paid_call import paid_call
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger
from fake_llm_server import FakeLLMServer, Reply

SECRET = "sk-test-pair-judge-1234567890-NOLEAK"
KEY_ENV = "ALBAND_TEST_PAIR_JUDGE_KEY"
PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0, usd_per_label=0.0)
PROVIDERS = ["anthropic", "openai"]
PROMPT = "How do I keep basil alive indoors?"
FIRST = "Give it six hours of sun, water when the top soil is dry, and pinch the flower buds."
SECOND = "Basil is a herb."
ITEM = pair_item(3, "pair-3", PROMPT, FIRST, SECOND)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeLLMServer(api_key=SECRET) as fake:
        yield fake


def judge(provider: str, server: FakeLLMServer, **kwargs) -> LLMPairJudge:
    base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    return LLMPairJudge(f"{provider}-judge", "judge-model", PRICE, provider=provider, base_url=base_url,
                        api_key_env=KEY_ENV, **kwargs)


def usage(provider: str, input_tokens: int, output_tokens: int) -> dict:
    if provider == "anthropic":
        return {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_order_answer_priced_from_tokens_within_the_bound(server, provider):
    annotator = judge(provider, server)
    assert isinstance(annotator, Annotator) and annotator.label_names == ("first", "second")
    server.enqueue(Reply(text='{"label": "A", "confidence": 0.8}', usage=usage(provider, 150, 12)))
    answer = annotator.annotate(ITEM)
    assert answer.label == 0 and answer.valid and answer.confidence == 0.8
    assert math.isclose(answer.cost_usd, (150 * 3.0 + 12 * 15.0) / 1e6, rel_tol=1e-12)
    assert answer.extra["judge_answer"] == "A" and answer.extra["order"] == "AB"
    [request] = server.requests
    text = request.prompt_text
    assert text.index(FIRST) < text.index(SECOND)  # AB: the pool's first response is shown as A
    assert PROMPT in text
    # the reservation bounds the request's bytes (plus the chat-format overhead), and many == one by one
    assert len(text.encode()) <= annotator.input_token_bound(ITEM)
    assert annotator.max_cost_usd(ITEM) == annotator.max_cost_usd_many([ITEM.text])[0]
    assert answer.cost_usd <= annotator.max_cost_usd(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_both_orders_are_two_requests_and_agree_in_pool_terms(server, provider):
    annotator = judge(provider, server)
    ab, ba = order_items(ITEM, both_orders=True)
    assert (ab.item_id, ba.item_id) == ("pair-3#AB", "pair-3#BA") and pair_id_of(ba.item_id) == "pair-3"
    # a consistent judge prefers the detailed answer: "A" when it is shown first, "B" when shown second
    server.enqueue(Reply(text='{"label": "A", "confidence": 0.9}'))
    server.enqueue(Reply(text='{"label": "B", "confidence": 0.7}'))
    answers = [annotator.annotate(ab), annotator.annotate(ba)]
    assert [a.label for a in answers] == [0, 0]
    first_request, second_request = server.requests
    assert first_request.prompt_text.index(FIRST) < first_request.prompt_text.index(SECOND)
    assert second_request.prompt_text.index(SECOND) < second_request.prompt_text.index(FIRST)
    verdict = combine_orders(answers)
    assert verdict.label == 0 and verdict.confidence == 0.7
    assert all(a.cost_usd > 0 for a in answers)  # each order is paid


@pytest.mark.parametrize("provider", PROVIDERS)
def test_position_bias_disagreement_tie_refusal_and_off_format_are_invalid(server, provider):
    annotator = judge(provider, server)
    ab, ba = order_items(ITEM, both_orders=True)
    server.enqueue(Reply(text='{"label": "A", "confidence": 0.9}'))
    server.enqueue(Reply(text='{"label": "A", "confidence": 0.9}'))
    biased = [annotator.annotate(ab), annotator.annotate(ba)]
    assert [a.label for a in biased] == [0, 1]
    assert combine_orders(biased).label is None and "disagree" in combine_orders(biased).reason

    server.enqueue(Reply(text='{"label": "tie", "confidence": 0.6}'))
    tie = annotator.annotate(ab)
    assert tie.label is None and tie.extra["invalid_reason"] == "tie" and tie.extra["judge_answer"] == "tie"
    assert tie.cost_usd > 0  # a tie is paid
    assert combine_orders([tie, biased[0]]).reason == "tie"

    server.enqueue(Reply(refusal="I cannot compare these."))
    refused = annotator.annotate(ab)
    assert refused.label is None and refused.extra["invalid_reason"].startswith("refusal")

    server.enqueue(Reply(text="Response A seems better to me."))
    off_format = annotator.annotate(ab)
    assert off_format.label is None and "no label" in off_format.extra["invalid_reason"]


def test_a_judge_without_ties_is_told_so_and_a_plain_item_is_refused(server):
    annotator = judge("openai", server, allow_tie=False)
    assert '"tie"' not in annotator.pair_prompt.system_text()
    with pytest.raises(AlbandError, match="not a pair"):
        annotator.max_cost_usd(Item(0, "x", "just text"))
    with pytest.raises(AlbandError, match="few-shot"):
        annotator.with_examples([("a", "first")])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_both_orders_under_the_ledger_protocol_each_order_its_own_settled_row(server, provider, tmp_path):
    annotator = judge(provider, server)
    server.enqueue(Reply(text='{"label": "B", "confidence": 0.9}'))
    server.enqueue(Reply(text='{"label": "A", "confidence": 0.9}'))
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        guard = BudgetGuard(Budget(1.0))
        answers = []
        for item in order_items(ITEM, both_orders=True):
            bound = annotator.max_cost_usd(item)
            answers.append(paid_call(ledger, guard, annotator, 0, item, bound, guard.reserve(bound)))
        assert [a.label for a in answers] == [1, 1]
        assert len(ledger.settled()) == 2
        assert {a.item_id for a in ledger.settled()} == {"pair-3#AB", "pair-3#BA"}
        assert math.isclose(ledger.spent_usd(), sum(a.cost_usd for a in answers), rel_tol=1e-12)
    assert isinstance(answers[0], Annotation) and np.isfinite(answers[0].cost_usd)
