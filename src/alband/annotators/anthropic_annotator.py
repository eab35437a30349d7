"""An annotator backed by the Anthropic Messages API (``anthropic`` SDK).

Usage normalisation (Anthropic conventions, see :mod:`alband.costs.prices`):
``cache_creation_input_tokens`` and ``cache_read_input_tokens`` are billed *in
addition to* ``input_tokens``; 5-minute cache writes cost
``Price.cache_write_multiplier`` (1.25) times the input price, 1-hour writes
(``usage.cache_creation.ephemeral_1h_input_tokens``) twice it, reads
``Price.cache_read_multiplier`` (0.1). Thinking tokens are part of
``output_tokens`` and bill as output. The annotation's ``input_tokens`` is
the total prompt size, ``input + cache writes + cache reads``.

Model knobs the API has changed over time are passed through, not assumed:
``temperature`` (current Claude models reject non-default sampling
parameters, and the installed SDK has no such argument: it is sent in the
body only when set), ``thinking`` (e.g. ``{"type": "disabled"}``) and
``effort`` (``output_config.effort``). Thinking counts towards ``max_tokens``:
with thinking on, raise ``max_tokens`` or lower ``effort``, otherwise the
answer may be cut off (recorded as invalid, still paid).

A ``stop_reason`` of ``"refusal"`` is recorded as an invalid annotation.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from alband.annotators.llm_common import (
    ONE_HOUR_CACHE_WRITE_MULTIPLIER,
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

# Keyword arguments of ``messages.create`` in the installed SDK; anything else
# in the request body is sent through ``extra_body``.
_SDK_FIELDS = frozenset({"model", "max_tokens", "messages", "system", "thinking", "output_config",
                         "metadata", "stop_sequences", "cache_control", "service_tier"})


def anthropic_billed_usage(usage: Any, price: Price) -> tuple[BilledUsage | None, str | None]:
    """Dollars for an Anthropic ``usage`` object, or ``(None, problem)`` if it is unusable."""
    counts, problem = token_counts(usage, ("input_tokens", "output_tokens"),
                                   ("cache_creation_input_tokens", "cache_read_input_tokens"))
    if counts is None:
        return None, problem
    uncached, output = counts["input_tokens"], counts["output_tokens"]
    written, read = counts["cache_creation_input_tokens"], counts["cache_read_input_tokens"]
    one_hour = 0
    breakdown = usage.get("cache_creation")
    if isinstance(breakdown, dict):
        one_hour = min(nonnegative_int(breakdown.get("ephemeral_1h_input_tokens")) or 0, written)
    usage_5m = Usage(input_tokens=uncached, output_tokens=output,
                     cache_write_tokens=written - one_hour, cache_read_tokens=read)
    cost = usage_cost_usd(price, usage_5m) + (
        one_hour * price.input_usd_per_mtok * ONE_HOUR_CACHE_WRITE_MULTIPLIER / 1e6)
    details = {"uncached_input_tokens": uncached, "cache_write_tokens": written,
               "cache_write_1h_tokens": one_hour, "cache_read_tokens": read}
    output_details = usage.get("output_tokens_details")
    if isinstance(output_details, dict) and nonnegative_int(output_details.get("thinking_tokens")) is not None:
        details["reasoning_tokens"] = output_details["thinking_tokens"]
    return BilledUsage(usage_5m, cost, uncached + written + read, output, details), None


class AnthropicMessages(ProviderAdapter):
    """The Anthropic Messages API (``anthropic.Anthropic().messages``).

    ``prompt_cache`` (``"5m"``, ``"1h"`` or ``None``) marks the system text for
    prompt caching; ``thinking`` and ``effort`` are sent as given when set.
    """

    name = "anthropic"
    default_endpoint = "https://api.anthropic.com"
    base_url_env = "ANTHROPIC_BASE_URL"
    sdk_module = "anthropic"
    client_class = "Anthropic"
    create_path = ("messages",)
    sdk_fields = _SDK_FIELDS

    def __init__(self, prompt_cache: Literal["5m", "1h"] | None = None, thinking: dict | None = None,
                 effort: str | None = None) -> None:
        if prompt_cache not in (None, "5m", "1h"):
            raise AlbandError(f"prompt_cache must be None, '5m' or '1h', got {prompt_cache!r}")
        self.prompt_cache = prompt_cache
        self.thinking = dict(thinking) if thinking is not None else None
        self.effort = effort

    def cache_write_multiplier_bound(self, price: Price) -> float:
        if self.prompt_cache == "1h":
            return max(price.cache_write_multiplier, ONE_HOUR_CACHE_WRITE_MULTIPLIER)
        return price.cache_write_multiplier

    def build_request(self, rendered: RenderedPrompt, *, model: str, max_tokens: int,
                      temperature: float | None) -> dict:
        if self.prompt_cache is None:
            system: Any = rendered.system
        else:
            system = [{"type": "text", "text": rendered.system,
                       "cache_control": {"type": "ephemeral", "ttl": self.prompt_cache}}]
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": system,
            "messages": [dict(message) for message in rendered.messages],
        }
        if temperature is not None:
            request["temperature"] = temperature
        if self.thinking is not None:
            request["thinking"] = self.thinking
        if self.effort is not None:
            request["output_config"] = {"effort": self.effort}
        return request

    def read_reply(self, body: dict, price: Price) -> ProviderReply:
        usage, problem = anthropic_billed_usage(body.get("usage"), price)
        content = body.get("content")
        texts = [block.get("text") for block in content or []
                 if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)]
        stop_reason = body.get("stop_reason")
        refusal = None
        if stop_reason == "refusal":
            details = body.get("stop_details")
            refusal = ""
            if isinstance(details, dict):
                refusal = " ".join(str(details[key]) for key in ("category", "explanation") if details.get(key))
        return ProviderReply(
            text="".join(texts) if texts else None,
            response_id=str(body.get("id") or ""),
            finish_reason=stop_reason if isinstance(stop_reason, str) else None,
            refusal=refusal,
            usage=usage,
            usage_problem=problem,
        )


class AnthropicAnnotator(LLMAnnotator):
    """Labels items with a Claude model through ``anthropic.Anthropic().messages``.

    ``price`` is the model's :class:`~alband.costs.Price` (see
    :func:`alband.annotators.pricing_table.load_price_table`). The API key is
    read from ``api_key_env`` (default ``ANTHROPIC_API_KEY``) at the first live
    call; ``api_key_env=None`` sends a placeholder, for local servers.
    ``prompt_cache="5m"`` or ``"1h"`` marks the system text (labels,
    instructions, examples) for Anthropic prompt caching; ``thinking`` and
    ``effort`` are described in the module docstring. Every other keyword
    (``base_url``, ``max_tokens``, ``timeout_s``, ``max_retries``,
    ``cache_dir``, ``temperature``, ``instructions``, ``label_descriptions``,
    ``examples``, ``extra_body``, ``per_message_overhead_tokens``,
    ``request_overhead_tokens``) is that of
    :class:`alband.annotators.llm_common.LLMAnnotator`.
    """

    def __init__(
        self,
        name: str,
        model: str,
        label_names: Sequence[str],
        price: Price,
        *,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        prompt_cache: Literal["5m", "1h"] | None = None,
        thinking: dict | None = None,
        effort: str | None = None,
        **options: Any,
    ) -> None:
        try:
            api = AnthropicMessages(prompt_cache, thinking, effort)
        except AlbandError as err:
            raise AlbandError(f"annotator {name!r}: {err}") from None
        super().__init__(name, model, label_names, price, api=api, api_key_env=api_key_env, **options)

    @property
    def prompt_cache(self) -> Literal["5m", "1h"] | None:
        return self.api.prompt_cache

    @property
    def thinking(self) -> dict | None:
        return self.api.thinking

    @property
    def effort(self) -> str | None:
        return self.api.effort
