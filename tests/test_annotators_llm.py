"""LLM annotators through the unmodified SDKs against the local wire-format server."""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.error
import urllib.request

import pytest

from alband.annotators.anthropic_annotator import AnthropicAnnotator
from alband.annotation import Item
from alband.annotators.base import Annotator
from alband.annotators.llm_common import AnnotatorError
from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.costs import Price
from fake_llm_server import FakeLLMServer, Reply, fake_llm_server, split_tokens  # noqa: F401 - fixture

SECRET = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK"
KEY_ENV = "ALBAND_TEST_LLM_KEY"
LABELS = ["positive", "negative", "neutral"]
PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0, usd_per_label=0.0,
              cache_write_multiplier=1.25, cache_read_multiplier=0.1)
ITEM = Item(7, "review-7", "The film was a delight from start to finish.")
PROVIDERS = ["anthropic", "openai"]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeLLMServer(api_key=SECRET) as fake:
        yield fake


def make(provider: str, server: FakeLLMServer, **kwargs):
    kwargs.setdefault("api_key_env", KEY_ENV)
    if provider == "anthropic":
        return AnthropicAnnotator("claude", "claude-test", LABELS, kwargs.pop("price", PRICE),
                                  base_url=server.anthropic_base_url, **kwargs)
    return OpenAIAnnotator("gpt", "gpt-test", LABELS, kwargs.pop("price", PRICE),
                           base_url=server.openai_base_url, **kwargs)


def usage(provider: str, input_tokens: int, output_tokens: int) -> dict:
    if provider == "anthropic":
        return {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_label_and_exact_cost_end_to_end(server, provider):
    annotator = make(provider, server)
    assert isinstance(annotator, Annotator)
    server.enqueue(Reply(text='{"label": "positive", "confidence": 0.85}', usage=usage(provider, 120, 11)))
    annotation = annotator.annotate(ITEM)
    assert annotation.label == 0 and annotation.valid
    assert annotation.confidence == 0.85 and annotation.extra["confidence_source"] == "self_reported"
    assert math.isclose(annotation.cost_usd, (120 * 3.0 + 11 * 15.0) / 1e6, rel_tol=1e-12)
    assert (annotation.input_tokens, annotation.output_tokens) == (120, 11)
    assert annotation.cost_usd <= annotator.max_cost_usd(ITEM)
    assert annotation.response_id and annotation.pool_index == 7 and annotation.item_id == "review-7"
    [request] = server.requests
    assert request.auth_scheme == "bearer"
    assert request.body["model"] in ("claude-test", "gpt-test")
    assert ITEM.text in request.prompt_text
    if provider == "anthropic":
        assert request.path == "/v1/messages" and request.body["max_tokens"] == 64
        assert "temperature" not in request.body
    else:
        assert request.path == "/v1/chat/completions" and request.body["max_completion_tokens"] == 64
        assert request.body["response_format"] == {"type": "json_object"}


def test_server_accepts_x_api_key_and_bearer(server):
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    for headers in ({"x-api-key": SECRET}, {"Authorization": f"Bearer {SECRET}"}):
        request = urllib.request.Request(server.url + "/v1/messages", body,
                                         {"content-type": "application/json", **headers})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["type"] == "message"
    request = urllib.request.Request(server.url + "/v1/messages", body,
                                     {"content-type": "application/json", "x-api-key": "wrong"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    assert [r.auth_scheme for r in server.requests] == ["x-api-key", "bearer", "x-api-key"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("reply, reason", [
    (Reply(text='{"label": "mixed", "confidence": 0.9}'), "off-label answer 'mixed'"),
    (Reply(text="I can't help with that request."), "no label in answer"),
    (Reply(refusal="This request violates the usage policy."), "refusal"),
    (Reply(text="", stop_reason="max_tokens"), "empty answer"),
])
def test_invalid_answers_are_recorded_invalid_and_still_paid(server, provider, reply, reason):
    annotator = make(provider, server)
    reply.usage = usage(provider, 100, 9)
    server.enqueue(reply)
    annotation = annotator.annotate(ITEM)
    assert annotation.label is None and not annotation.valid
    assert reason in annotation.extra["invalid_reason"]
    assert math.isclose(annotation.cost_usd, (100 * 3.0 + 9 * 15.0) / 1e6, rel_tol=1e-12)
    assert not annotation.extra.get("cost_is_upper_bound")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status, headers, retry, after", [
    (429, {"retry-after-ms": "1500"}, "transient", 1.5), (500, {"retry-after": "3"}, "transient", 3.0),
    (529, {}, "transient", None), (400, {}, "item", None), (404, {}, "fatal", None)])
def test_an_http_error_is_one_unretried_attempt_classified_for_the_caller(server, provider, status, headers,
                                                                          retry, after):
    # The SDK's own retries are off (max_retries=0 on the client): alband's paid-call loop retries,
    # reserving every attempt.
    annotator = make(provider, server, max_retries=2)
    server.enqueue(Reply(status=status, retry_after_ms=None, headers=headers), Reply())
    with pytest.raises(AnnotatorError, match=f"HTTP {status}: ") as info:
        annotator.annotate(ITEM)
    assert (info.value.status_code, info.value.retry, info.value.retry_after_s) == (status, retry, after)
    assert server.request_count == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_read_timeout_charges_the_bound_as_possibly_billed(server, provider):
    annotator = make(provider, server, timeout_s=0.3, max_retries=0)
    server.enqueue(Reply(delay_s=30.0))
    started = time.perf_counter()
    annotation = annotator.annotate(ITEM)
    # The client gave up (0.3 s timeout) long before the server would have answered.
    assert time.perf_counter() - started < 20.0
    assert annotation.label is None
    assert "no response within 0.3 s" in annotation.extra["invalid_reason"]
    assert annotation.extra["cost_is_upper_bound"] is True and annotation.extra["retryable"] is True
    assert annotation.cost_usd == annotator.max_cost_usd(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_dropped_connection_after_sending_charges_the_bound(server, provider):
    annotator = make(provider, server, max_retries=0)
    server.enqueue(Reply(drop_connection=True))
    annotation = annotator.annotate(ITEM)
    assert annotation.label is None and annotation.extra["cost_is_upper_bound"] is True
    assert annotation.cost_usd == annotator.max_cost_usd(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unreachable_server_raises_annotator_error(monkeypatch, provider):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    cls = AnthropicAnnotator if provider == "anthropic" else OpenAIAnnotator
    annotator = cls("x", "m", LABELS, PRICE, base_url=base, api_key_env=KEY_ENV, max_retries=0)
    with pytest.raises(AnnotatorError, match="cannot connect"):
        annotator.annotate(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("reply, reason", [
    (Reply(raw_body=b'{"id": "msg_1", "content": [tr'), "malformed response body"),
    (Reply(raw_body=b"<html>gateway</html>"), "malformed response body"),
    (Reply(raw_body=b"[1, 2, 3]"), "malformed response body"),
    (Reply(usage=None), "no usable usage"),
    (Reply(usage={"input_tokens": "many"}), "no usable usage"),
])
def test_paid_responses_without_usable_usage_charge_the_bound(server, provider, reply, reason):
    annotator = make(provider, server)
    server.enqueue(reply)
    annotation = annotator.annotate(ITEM)
    assert annotation.label is None and reason in annotation.extra["invalid_reason"]
    assert annotation.extra["cost_is_upper_bound"] is True
    assert annotation.cost_usd == annotator.max_cost_usd(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cache_hit_costs_nothing_and_makes_no_request(server, provider, tmp_path, monkeypatch):
    annotator = make(provider, server, cache_dir=tmp_path / "cache")
    first = annotator.annotate(ITEM)
    assert first.cost_usd > 0 and server.request_count == 1
    second = annotator.annotate(ITEM)
    assert server.request_count == 1
    assert second.cost_usd == 0.0 and second.extra["cache_hit"] is True
    assert (second.label, second.confidence, second.raw) == (first.label, first.confidence, first.raw)
    assert second.extra["original_cost_usd"] == first.cost_usd
    # A fresh annotator without any API key replays from the cache (offline).
    monkeypatch.delenv(KEY_ENV)
    replay = make(provider, server, cache_dir=tmp_path / "cache").annotate(ITEM)
    assert replay.cost_usd == 0.0 and replay.label == first.label and server.request_count == 1
    # A different item, model or parameter is a different key.
    with pytest.raises(AnnotatorError, match=f"environment variable {KEY_ENV} is not set"):
        make(provider, server, cache_dir=tmp_path / "cache", max_tokens=65).annotate(ITEM)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_api_key_is_never_written_or_echoed(server, provider, tmp_path):
    cache_dir = tmp_path / "cache"
    annotator = make(provider, server, cache_dir=cache_dir, max_retries=0)
    leaky = json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": f"bad key {SECRET}"}}).encode()
    server.enqueue(Reply(text=f'{{"label": "negative", "note": "{SECRET}"}}'),
                   Reply(status=400, raw_body=leaky),
                   Reply(raw_body=f"not json {SECRET}".encode()))
    annotations = [annotator.annotate(ITEM)]
    with pytest.raises(AnnotatorError) as info:
        annotator.annotate(Item(8, "b", "second"))
    assert SECRET not in str(info.value) and "[redacted]" in str(info.value)
    annotations.append(annotator.annotate(Item(9, "c", "third")))
    for annotation in annotations:
        assert SECRET not in annotation.raw and SECRET not in repr(annotation)
    assert SECRET not in repr(annotator) and SECRET not in repr(vars(annotator).get("prompt"))
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files, "the cache wrote nothing"
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_api_key_names_the_variable(provider, monkeypatch):
    monkeypatch.delenv("ALBAND_NO_SUCH_KEY", raising=False)
    cls = AnthropicAnnotator if provider == "anthropic" else OpenAIAnnotator
    annotator = cls("x", "m", LABELS, PRICE, base_url="http://127.0.0.1:9", api_key_env="ALBAND_NO_SUCH_KEY")
    with pytest.raises(AnnotatorError, match="environment variable ALBAND_NO_SUCH_KEY is not set"):
        annotator.annotate(ITEM)


def test_local_server_without_a_key(monkeypatch):
    with FakeLLMServer(api_key=None) as server:
        annotator = OpenAIAnnotator("local", "llama", LABELS, Price(), base_url=server.openai_base_url,
                                    api_key_env=None, max_tokens_param="max_tokens", json_mode=False)
        annotation = annotator.annotate(ITEM)
        assert annotation.valid and annotation.cost_usd == 0.0
        body = server.requests[0].body
        assert body["max_tokens"] == 64 and "response_format" not in body


def test_openai_logprob_confidence(server):
    annotator = make("openai", server, logprobs=True)
    text = '{"label": "negative", "confidence": 0.99}'
    tokens = [(token, -0.05) for token in split_tokens(text, 4)]
    server.enqueue(Reply(text=text, logprobs=tokens))
    annotation = annotator.annotate(ITEM)
    start = text.index("negative")
    covering = [i for i, _ in enumerate(tokens) if 4 * i < start + 8 and 4 * i + 4 > start]
    assert annotation.label == 1 and annotation.extra["confidence_source"] == "logprobs"
    assert math.isclose(annotation.confidence, math.exp(-0.05 * len(covering)), rel_tol=1e-12)
    assert server.requests[0].body["logprobs"] is True
    # Without usable logprobs the self-reported confidence is used.
    server.enqueue(Reply(text=text))
    fallback = annotator.annotate(ITEM)
    assert fallback.confidence == 0.99 and fallback.extra["confidence_source"] == "self_reported"


def test_request_options_reach_the_wire(server):
    anthropic_annotator = make("anthropic", server, temperature=0.0, thinking={"type": "disabled"},
                               effort="low", prompt_cache="5m", extra_body={"metadata": {"user_id": "u1"}})
    anthropic_annotator.annotate(ITEM)
    body = server.requests[-1].body
    assert body["temperature"] == 0.0 and body["thinking"] == {"type": "disabled"}
    assert body["output_config"] == {"effort": "low"} and body["metadata"] == {"user_id": "u1"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    openai_annotator = make("openai", server, temperature=0.0, reasoning_effort="none",
                            extra_body={"top_k": 1})
    openai_annotator.annotate(ITEM)
    body = server.requests[-1].body
    assert body["temperature"] == 0.0 and body["reasoning_effort"] == "none" and body["top_k"] == 1
    assert body["messages"][0]["role"] == "system" and body["messages"][1]["role"] == "user"


def test_with_examples_changes_prompt_and_bound(server):
    annotator = make("anthropic", server)
    shot = annotator.with_examples([("Terrible acting, fell asleep.", "negative")])
    assert shot.max_cost_usd(ITEM) > annotator.max_cost_usd(ITEM)
    shot.annotate(ITEM)
    assert "Terrible acting, fell asleep." in server.requests[-1].body["system"]
    assert annotator.prompt.examples == ()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_key_is_a_clear_unretried_error(server, provider, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key")
    annotator = make(provider, server)
    with pytest.raises(AnnotatorError, match=r"HTTP 401: ") as info:
        annotator.annotate(ITEM)
    assert info.value.status_code == 401 and "retries" not in str(info.value)
    assert "sk-wrong-key" not in str(info.value)
    assert server.request_count == 1
