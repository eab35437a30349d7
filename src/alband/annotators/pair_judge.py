"""An LLM preference judge: one comparison per request, through the official Anthropic or OpenAI SDK.

:class:`LLMPairJudge` is an :class:`~alband.annotators.llm_common.LLMAnnotator`
(same client, one attempt per call, usage -> dollars, cost bound, cache,
redaction; retries belong to :mod:`alband.live.paid_call`) that renders a
pair :class:`~alband.annotation.Item` (:func:`alband.annotators.pair_orders.pair_item`)
through a :class:`~alband.annotators.pair_prompt.PairwisePrompt` in the
item's ``order`` and maps the answer back to pool terms:

=========  ===============  ===============  =======================================
answer     order ``AB``     order ``BA``     recorded as
=========  ===============  ===============  =======================================
``A``      label 0 (first)  label 1 (second)  a valid label
``B``      label 1          label 0           a valid label
``tie``    --               --                invalid, ``invalid_reason = "tie"``
=========  ===============  ===============  =======================================

A refusal or an off-format answer is invalid as for every LLM annotator; each
is paid all the same. ``extra["judge_answer"]`` keeps the raw verdict
(``"A"``, ``"B"``, ``"tie"`` or ``None``) and ``extra["order"]`` the order.

**Cost bound.** The request holds the template (:meth:`PairwisePrompt.template_utf8_bytes`)
plus the prompt's and the two responses' bytes; the item's ``text`` contains
all three verbatim, so ``template + bytes(text)`` bounds the request's bytes
and is what :meth:`max_cost_usd` and :meth:`max_cost_usd_many` reserve
(the two agree item by item; the chat-format overhead is added as for
every LLM annotator).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Sequence

import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.base import utf8_byte_lengths
from alband.annotators.llm_common import LLMAnnotator, ProviderAdapter
from alband.annotators.pair_orders import PAIR_LABELS, label_of_answer, pair_parts, shown_responses
from alband.annotators.pair_prompt import DEFAULT_PAIR_INSTRUCTIONS, JUDGE_ANSWERS, PairwisePrompt
from alband.annotators.prompts import RenderedPrompt
from alband.costs.prices import Price
from alband.errors import AlbandError

PROVIDERS = ("anthropic", "openai")
_DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def provider_adapter(provider: str, options: dict[str, Any]) -> ProviderAdapter:
    """The wire adapter of ``provider`` built from its own options (those of the provider's annotator)."""
    if provider == "anthropic":
        from alband.annotators.anthropic_annotator import AnthropicMessages

        return AnthropicMessages(**options)
    if provider == "openai":
        from alband.annotators.openai_annotator import OpenAIChatCompletions

        return OpenAIChatCompletions(**options)
    raise AlbandError(f"unknown judge provider {provider!r} (available: {', '.join(PROVIDERS)})")


class LLMPairJudge(LLMAnnotator):
    """Judges pair items (module docstring); ``provider`` is ``"anthropic"`` or ``"openai"``.

    ``provider_options`` are the adapter's (``prompt_cache``, ``thinking``,
    ``effort`` for Anthropic; ``json_mode``, ``logprobs``,
    ``max_tokens_param``, ``reasoning_effort`` for OpenAI); ``allow_tie``
    offers the judge a tie; ``both_orders`` tells the loop to ask every pair
    in both orders (two requests, :func:`alband.annotators.pair_orders.order_items`).
    Every other keyword is that of
    :class:`~alband.annotators.llm_common.LLMAnnotator` (few-shot examples
    and label descriptions do not apply to comparisons).
    """

    def __init__(self, name: str, model: str, price: Price, *, provider: Literal["anthropic", "openai"],
                 instructions: str = DEFAULT_PAIR_INSTRUCTIONS, allow_tie: bool = True, both_orders: bool = False,
                 provider_options: dict[str, Any] | None = None, api_key_env: str | None | object = ...,
                 **options: Any) -> None:
        for forbidden in ("examples", "label_descriptions"):
            if forbidden in options:
                raise AlbandError(f"annotator {name!r}: {forbidden} do not apply to a pair judge")
        try:
            api = provider_adapter(provider, dict(provider_options or {}))
            self.pair_prompt = PairwisePrompt(instructions, bool(allow_tie))
        except (AlbandError, TypeError) as err:
            raise AlbandError(f"annotator {name!r}: {err}") from None
        key_env = _DEFAULT_KEY_ENV[provider] if api_key_env is ... else api_key_env
        super().__init__(name, model, JUDGE_ANSWERS, price, api=api, api_key_env=key_env, **options)
        self._template_bytes = self.pair_prompt.template_utf8_bytes()
        self.both_orders = bool(both_orders)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The pair task's labels (answers are recorded in pool terms)."""
        return PAIR_LABELS

    def with_examples(self, examples) -> "LLMPairJudge":
        raise AlbandError(f"annotator {self.name!r}: a pair judge takes no few-shot examples")

    # ------------------------------------------------------------ cost bound
    def max_cost_usd(self, item: Item) -> float:
        """``template + bytes(item.text)`` input bytes plus the output bound, in dollars (module docstring)."""
        pair_parts(item)
        return float(self.max_cost_usd_many([item.text])[0])

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        rendered = self.pair_prompt.render("", "", "")
        input_bound = self._template_bytes + utf8_byte_lengths(texts) + self._format_overhead_tokens(rendered)
        return np.asarray(self._cost_bound(input_bound), dtype=np.float64)

    def input_token_bound(self, item: Item) -> int:
        rendered = self.pair_prompt.render("", "", "")
        return self._template_bytes + len(item.text.encode("utf-8")) + self._format_overhead_tokens(rendered)

    # ----------------------------------------------------------- the request
    def _render(self, item: Item) -> RenderedPrompt:
        return self.pair_prompt.render(*shown_responses(item))

    def _annotate(self, item: Item, *, idempotency_key: str | None = None) -> Annotation:
        answer = super()._annotate(item, idempotency_key=idempotency_key)
        order = item.part("order")
        extra = dict(answer.extra, order=order)
        verdict = None if answer.label is None else JUDGE_ANSWERS[answer.label]
        extra["judge_answer"] = verdict
        if verdict == "tie":
            extra["invalid_reason"] = "tie"
            return dataclasses.replace(answer, label=None, extra=extra)
        if verdict is None:
            return dataclasses.replace(answer, extra=extra)
        return dataclasses.replace(answer, label=label_of_answer(verdict, order), extra=extra)

