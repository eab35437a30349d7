"""``max_cost_usd_many``: the reservation bound of many texts at once, equal to the per-item bound."""

from __future__ import annotations

import io

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.annotators.anthropic_annotator import AnthropicAnnotator
from alband.annotation import Item
from alband.annotators.base import Annotator, utf8_byte_lengths
from alband.annotators.human import HumanAnnotator
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.costs import Price
from alband.errors import AlbandError
from alband.simulate.annotator_model import make_simulated_annotator
from fake_llm_server import FakeLLMServer, Reply, auto_usage_counts

LABELS = ["positive", "negative", "neutral"]

# Multi-byte UTF-8 on purpose: 2-byte (é, ß), 3-byte (漢, €) and 4-byte (emoji, 𝔘) characters.
MULTI_BYTE = st.sampled_from(list("aZ 9\n\t\"<>/{}é߀漢字😀𝔘\u200b"))
TEXT = st.one_of(st.text(max_size=200), st.text(MULTI_BYTE, max_size=200))
TEXTS = st.lists(TEXT, max_size=12)
PRICES = st.builds(Price, st.floats(0, 100), st.floats(0, 100), st.floats(0, 0.01),
                   st.floats(0, 3), st.floats(0, 3))
EXAMPLES = st.lists(st.tuples(TEXT, st.sampled_from(LABELS)), max_size=3)


def llm_annotators(price: Price, **kwargs) -> list:
    return [
        AnthropicAnnotator("a", "claude-x", LABELS, price, **kwargs),
        AnthropicAnnotator("a1h", "claude-x", LABELS, price, prompt_cache="1h", **kwargs),
        OpenAIAnnotator("o", "gpt-x", LABELS, price, **kwargs),
    ]


def per_item(annotator, texts) -> list[float]:
    return [annotator.max_cost_usd(Item(i, f"id-{i}", text)) for i, text in enumerate(texts)]


@settings(max_examples=80, deadline=None)
@given(texts=TEXTS, price=PRICES, max_tokens=st.integers(1, 4096), examples=EXAMPLES,
       per_message=st.integers(0, 32), per_request=st.integers(0, 256),
       instructions=st.one_of(st.just("Classify the text."), TEXT.filter(str.strip)))
def test_llm_bound_of_many_equals_the_per_item_bound(texts, price, max_tokens, examples, per_message,
                                                     per_request, instructions):
    for annotator in llm_annotators(price, max_tokens=max_tokens, examples=examples, instructions=instructions,
                                    per_message_overhead_tokens=per_message,
                                    request_overhead_tokens=per_request):
        many = annotator.max_cost_usd_many(texts)
        assert isinstance(many, np.ndarray) and many.dtype == np.float64 and many.shape == (len(texts),)
        # same float64 operations in the same order: equal to the last bit, not just to rounding
        assert many.tolist() == per_item(annotator, texts)


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=6), data=st.data())
def test_llm_bound_of_many_matches_the_examples_a_copy_was_given(texts, data):
    annotator = OpenAIAnnotator("o", "gpt-x", LABELS, Price(2.0, 8.0))
    examples = data.draw(st.lists(st.tuples(TEXT, st.sampled_from(LABELS)), min_size=1, max_size=4))
    with_examples = annotator.with_examples(examples)
    assert with_examples.max_cost_usd_many(texts).tolist() == per_item(with_examples, texts)
    # few-shot examples are counted once per request, so they raise every bound by the same bytes
    assert (with_examples.max_cost_usd_many(texts) > annotator.max_cost_usd_many(texts)).all()


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(TEXT, min_size=8, max_size=8), price=PRICES, prompt_tokens=st.integers(0, 5000),
       output_tokens=st.integers(0, 50), extra_output=st.integers(0, 500))
def test_simulated_bound_of_many_equals_the_per_item_bound(texts, price, prompt_tokens, output_tokens,
                                                           extra_output):
    model = make_simulated_annotator(3, price, flip_rate=0.1, prompt_tokens=prompt_tokens,
                                     output_tokens=output_tokens, max_output_tokens=output_tokens + extra_output)
    gold = np.arange(len(texts)) % 3
    annotator = SimulatedLiveAnnotator(
        "sim", model, jax.random.key(0), gold,
        np.asarray([len(t) for t in texts], np.int32), np.asarray([len(t.encode()) for t in texts], np.int32))
    many = annotator.max_cost_usd_many(texts)
    assert many.dtype == np.float64 and many.tolist() == per_item(annotator, texts)
    # in any order and any number: each text's bound does not depend on the others asked with it
    order = np.random.default_rng(len(texts)).permutation(len(texts))
    assert annotator.max_cost_usd_many([texts[i] for i in order]).tolist() == many[order].tolist()
    assert annotator.max_cost_usd_many(texts[:3]).tolist() == many[:3].tolist()
    costs = [annotator.annotate(Item(i, f"id-{i}", text)).cost_usd for i, text in enumerate(texts)]
    assert (np.asarray(costs) <= many).all()


@given(texts=TEXTS, price_per_label=st.floats(0, 10), price_per_hour=st.one_of(st.none(), st.floats(0, 500)),
       max_seconds=st.floats(0.1, 3600))
def test_human_bound_of_many_equals_the_per_item_bound(texts, price_per_label, price_per_hour, max_seconds):
    annotator = HumanAnnotator("h", LABELS, price_per_label, price_per_hour, io.StringIO(), io.StringIO(),
                               max_seconds_per_item=max_seconds)
    many = annotator.max_cost_usd_many(texts)
    assert many.dtype == np.float64 and many.tolist() == per_item(annotator, texts)


def test_every_annotator_implements_the_protocol_with_the_bound_of_many():
    pool = ["", "é", "漢字 text"]
    model = make_simulated_annotator(3, Price(1.0, 2.0), prompt_tokens=10, output_tokens=3)
    annotators = llm_annotators(Price(1.0, 2.0)) + [
        HumanAnnotator("h", LABELS, 0.05),
        SimulatedLiveAnnotator("sim", model, jax.random.key(0), np.zeros(3, np.int32),
                               np.asarray([0, 1, 7], np.int32), np.asarray([0, 2, 11], np.int32)),
    ]
    for annotator in annotators:
        assert isinstance(annotator, Annotator)
        assert annotator.max_cost_usd_many([]).shape == (0,)
        # any iterable of strings, e.g. a generator or a numpy array of strings
        assert annotator.max_cost_usd_many(t for t in pool).tolist() == per_item(annotator, pool)
        assert annotator.max_cost_usd_many(np.asarray(pool)).tolist() == per_item(annotator, pool)


@pytest.mark.parametrize("texts, message", [
    (["fine", 3], r"texts\[1\] must be a string, got int"),
    ([None], r"texts\[0\] must be a string, got NoneType"),
    ("one text", "texts must be a sequence of strings, got a single str"),
    (["ok", "bad \ud800 surrogate"], r"texts\[1\] cannot be encoded as UTF-8 \(surrogates not allowed"),
])
def test_bad_texts_are_named(texts, message):
    annotators = llm_annotators(Price(1.0, 2.0)) + [HumanAnnotator("h", LABELS, 0.05)]
    for annotator in annotators:
        if isinstance(annotator, HumanAnnotator) and "UTF-8" in message:
            continue  # the human bound does not read the bytes
        with pytest.raises(AlbandError, match=message):
            annotator.max_cost_usd_many(texts)


@given(texts=TEXTS)
def test_utf8_byte_lengths(texts):
    assert utf8_byte_lengths(texts).tolist() == [len(t.encode("utf-8")) for t in texts]


# ---------------------------------------------------------------- against the wire-format server
@pytest.fixture(scope="module")
def server():
    with FakeLLMServer(api_key=None) as fake:
        yield fake


def _worst_case_usage(request) -> Reply:
    """One token per prompt byte, all of max_tokens spent: the most a byte-level BPE could bill."""
    body = request.body
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    prompt = len(request.prompt_text.encode("utf-8"))
    if request.path.endswith("/chat/completions"):
        usage = {"prompt_tokens": prompt, "completion_tokens": limit, "total_tokens": prompt + limit}
    else:
        usage = {"input_tokens": prompt, "output_tokens": limit}
    return Reply(usage=usage)


def _annotator(provider: str, server: FakeLLMServer, price: Price, max_tokens: int):
    if provider == "anthropic":
        return AnthropicAnnotator("claude", "claude-test", LABELS, price, base_url=server.anthropic_base_url,
                                  api_key_env=None, max_tokens=max_tokens, max_retries=0)
    return OpenAIAnnotator("gpt", "gpt-test", LABELS, price, base_url=server.openai_base_url,
                           api_key_env=None, max_tokens=max_tokens, max_retries=0)


@settings(max_examples=12, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=4), price=PRICES, max_tokens=st.integers(1, 512),
       worst_case=st.booleans())
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_bound_of_many_covers_the_usage_the_server_reports(server, provider, texts, price, max_tokens,
                                                            worst_case):
    server.reset()
    server.responder = _worst_case_usage if worst_case else None
    annotator = _annotator(provider, server, price, max_tokens)
    bounds = annotator.max_cost_usd_many(texts)
    annotations = [annotator.annotate(Item(i, f"id-{i}", text)) for i, text in enumerate(texts)]
    assert len(server.requests) == len(texts)
    for i, (text, annotation, request) in enumerate(zip(texts, annotations, server.requests)):
        assert text in request.prompt_text
        if worst_case:
            reported_input = len(request.prompt_text.encode("utf-8"))
        else:
            reported_input = auto_usage_counts(request, None)[0]
        assert annotation.input_tokens == reported_input  # billed what the server reported
        assert not annotation.extra.get("cost_is_upper_bound")
        assert annotation.output_tokens <= max_tokens
        assert annotation.cost_usd <= bounds[i]
        assert not annotation.extra.get("cost_bound_exceeded")
