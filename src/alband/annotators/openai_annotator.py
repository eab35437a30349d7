"""An annotator backed by OpenAI Chat Completions or any compatible server.

Works with ``api.openai.com`` and with OpenAI-compatible servers (vLLM,
llama.cpp's ``llama-server``, Ollama, ...) through ``base_url`` (e.g.
``"http://localhost:8000/v1"``); for a server that needs no key pass
``api_key_env=None``, and a zero :class:`~alband.costs.Price` for free local
inference.

Usage normalisation (OpenAI conventions, see :mod:`alband.costs.prices`):
``prompt_tokens_details.cached_tokens`` and ``cache_write_tokens`` are
*subsets* of ``prompt_tokens``; cached tokens bill at
``Price.cache_read_multiplier`` times the input price, written ones at
``Price.cache_write_multiplier``, the rest at the input price. Reasoning
tokens (``completion_tokens_details.reasoning_tokens``) are part of
``completion_tokens`` and bill as output.

Confidence: with ``logprobs=True`` it is the probability of the emitted label
(the product of the probabilities of the tokens spelling it, see
:func:`alband.annotators.parsing.label_span_probability`); otherwise, or when
the server returns no usable logprobs, the self-reported JSON confidence.

Flags for servers and models that differ: ``json_mode`` sends
``response_format={"type": "json_object"}``; ``max_tokens_param`` chooses
``max_completion_tokens`` (current OpenAI models; reasoning tokens count
towards it) or the older ``max_tokens`` (some local servers);
``reasoning_effort`` (e.g. ``"none"`` or ``"low"``) keeps reasoning models
from spending ``max_tokens`` on reasoning. Reasoning models reject
``temperature`` and ``logprobs``; leave them unset there.

A non-null ``message.refusal`` or ``finish_reason == "content_filter"`` is
recorded as an invalid annotation.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from alband.annotators.llm_common import (
    BilledUsage,
    LLMAnnotator,
    ProviderAdapter,
    ProviderReply,
    nonnegative_int,
    token_counts,
)
from alband.annotators.prompts import RenderedPrompt
from alband.costs.prices import Price, Usage, usage_cost_usd
from alband.errors import AlbandError

# Keyword arguments of ``chat.completions.create`` this annotator may send;
# anything else in the request body goes through ``extra_body``.
_SDK_FIELDS = frozenset({"model", "messages", "max_completion_tokens", "max_tokens", "response_format",
                         "logprobs", "top_logprobs", "temperature", "reasoning_effort", "seed", "stop",
                         "top_p", "service_tier", "prompt_cache_key", "user", "metadata", "store", "verbosity"})


def openai_billed_usage(usage: Any, price: Price) -> tuple[BilledUsage | None, str | None]:
    """Dollars for an OpenAI ``usage`` object, or ``(None, problem)`` if it is unusable."""
    counts, problem = token_counts(usage, ("prompt_tokens", "completion_tokens"),
                                   ("cached_tokens", "cache_write_tokens"), optional_in="prompt_tokens_details")
    if counts is None:
        return None, problem
    prompt, completion = counts["prompt_tokens"], counts["completion_tokens"]
    cached, written = counts["cached_tokens"], counts["cache_write_tokens"]
    if cached + written > prompt:
        return None, (f"cached_tokens ({cached}) + cache_write_tokens ({written}) exceed "
                      f"prompt_tokens ({prompt}), of which they are a part")
    normalised = Usage(input_tokens=prompt - cached - written, output_tokens=completion,
                       cache_write_tokens=written, cache_read_tokens=cached)
    details = {"uncached_input_tokens": prompt - cached - written, "cache_write_tokens": written,
               "cache_read_tokens": cached}
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, dict):
        reasoning = nonnegative_int(completion_details.get("reasoning_tokens"))
        if reasoning is not None:
            details["reasoning_tokens"] = reasoning
    return BilledUsage(normalised, usage_cost_usd(price, normalised), prompt, completion, details), None


class OpenAIChatCompletions(ProviderAdapter):
    """OpenAI Chat Completions (``openai.OpenAI().chat.completions``) or a compatible server.

    ``json_mode``, ``logprobs``, ``max_tokens_param`` and ``reasoning_effort``
    are described in the module docstring.
    """

    name = "openai"
    default_endpoint = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    sdk_module = "openai"
    client_class = "OpenAI"
    create_path = ("chat", "completions")
    sdk_fields = _SDK_FIELDS

    def __init__(self, json_mode: bool = True, logprobs: bool = False,
                 max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
                 reasoning_effort: str | None = None) -> None:
        if max_tokens_param not in ("max_completion_tokens", "max_tokens"):
            raise AlbandError(f"max_tokens_param must be 'max_completion_tokens' or 'max_tokens', "
                              f"got {max_tokens_param!r}")
        self.json_mode = bool(json_mode)
        self.logprobs = bool(logprobs)
        self.max_tokens_param = max_tokens_param
        self.reasoning_effort = reasoning_effort

    def build_request(self, rendered: RenderedPrompt, *, model: str, max_tokens: int,
                      temperature: float | None) -> dict:
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "system", "content": rendered.system}]
            + [dict(message) for message in rendered.messages],
            self.max_tokens_param: max_tokens,
        }
        if self.json_mode:
            request["response_format"] = {"type": "json_object"}
        if self.logprobs:
            request["logprobs"] = True
        if temperature is not None:
            request["temperature"] = temperature
        if self.reasoning_effort is not None:
            request["reasoning_effort"] = self.reasoning_effort
        return request

    def read_reply(self, body: dict, price: Price) -> ProviderReply:
        usage, problem = openai_billed_usage(body.get("usage"), price)
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        content = message.get("content")
        finish_reason = choice.get("finish_reason")
        refusal = message.get("refusal")
        if refusal is not None:
            refusal = str(refusal)
        elif finish_reason == "content_filter":
            refusal = "content_filter"
        return ProviderReply(
            text=content if isinstance(content, str) else None,
            response_id=str(body.get("id") or ""),
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
            refusal=refusal,
            usage=usage,
            usage_problem=problem,
            token_logprobs=_token_logprobs(choice.get("logprobs")),
        )


class OpenAIAnnotator(LLMAnnotator):
    """Labels items through ``openai.OpenAI().chat.completions`` (OpenAI or compatible server).

    The API key is read from ``api_key_env`` (default ``OPENAI_API_KEY``) at
    the first live call; ``api_key_env=None`` sends a placeholder key.
    ``json_mode``, ``logprobs``, ``max_tokens_param`` and ``reasoning_effort``
    are described in the module docstring. Every other keyword (``base_url``,
    ``max_tokens``, ``timeout_s``, ``max_retries``, ``cache_dir``,
    ``temperature``, ``instructions``, ``label_descriptions``, ``examples``,
    ``extra_body``, ``per_message_overhead_tokens``, ``request_overhead_tokens``)
    is that of :class:`alband.annotators.llm_common.LLMAnnotator`.
    """

    def __init__(
        self,
        name: str,
        model: str,
        label_names: Sequence[str],
        price: Price,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        json_mode: bool = True,
        logprobs: bool = False,
        max_tokens_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
        reasoning_effort: str | None = None,
        **options: Any,
    ) -> None:
        try:
            api = OpenAIChatCompletions(json_mode, logprobs, max_tokens_param, reasoning_effort)
        except AlbandError as err:
            raise AlbandError(f"annotator {name!r}: {err}") from None
        super().__init__(name, model, label_names, price, api=api, api_key_env=api_key_env, **options)

    @property
    def json_mode(self) -> bool:
        return self.api.json_mode

    @property
    def logprobs(self) -> bool:
        return self.api.logprobs

    @property
    def max_tokens_param(self) -> str:
        return self.api.max_tokens_param

    @property
    def reasoning_effort(self) -> str | None:
        return self.api.reasoning_effort


def _token_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return None
    tokens = []
    for entry in logprobs["content"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        logprob = entry.get("logprob")
        if isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
            return None
        tokens.append((entry["token"], float(logprob)))
    return tokens or None
