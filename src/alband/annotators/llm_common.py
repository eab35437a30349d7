"""What every LLM annotator shares: the cost bound, the call, the money rules.

**Cost bound** (:meth:`LLMAnnotator.max_cost_usd`, reserved before a call).
Byte-level BPE tokenizers emit tokens of at least one byte, so the UTF-8 byte
count of the prompt bounds its token count. Chat formatting adds a few tokens
per message and per request, hence::

    input_tokens  <= bytes(system) + sum bytes(message) + o_msg * (n_messages + 1) + o_req
    output_tokens <= max_tokens
    max_cost = input_bound * p_in * m + max_tokens * p_out + usd_per_label      (/ 1e6 per token)

with ``m = max(1, cache_write_multiplier, cache_read_multiplier)`` (2 for
Anthropic 1-hour cache writes): a token can be billed as plain input, cache
write or cache read, and the bound holds whichever it is. Reasoning/thinking
tokens count towards ``max_tokens`` and bill as output, so they are covered.

**What a call costs.** The provider's reported usage, turned into dollars by
:func:`alband.costs.usage_cost_usd` after the provider's conventions are
normalised (see the two provider modules). Outcomes:

* success: cost from usage; the label may still be invalid (off-label,
  refusal, unparseable): an invalid answer was paid for all the same;
* a 200 response whose body is not JSON, or that lacks a usable ``usage``,
  or a read timeout / dropped connection after the request was sent: the
  provider may have billed it, the amount is unknown, so the annotation is
  invalid and charged the *bound* (``extra["cost_is_upper_bound"] = True``);
* an HTTP error (429, 5xx, 4xx), a refused connection or a missing API
  key: nothing was billed; :class:`AnnotatorError` is raised (``retry`` says
  whether the attempt may be retried: 408/409/429/5xx and unreachable servers
  are ``"transient"``, with the server's ``retry-after-ms`` / ``retry-after``
  in ``retry_after_s``; 400/413/422 refuse this item's request, ``"item"``;
  a missing key and other 4xx are ``"fatal"``) and the caller releases the
  reservation.

A timeout or a dropped connection is returned as a paid invalid annotation
with ``extra["retryable"] = True``: the caller charges it in full and may try
again.

**One attempt per call.** The SDK client is built with ``max_retries=0``:
the SDK's own retries would send requests that may be billed without a
reservation. Retries, backoff and ``retry-after`` are
:mod:`alband.live.paid_call`'s, which reserves and records every attempt;
``max_retries`` here is the number of further attempts it makes.

**Idempotency.** :attr:`ProviderAdapter.idempotency_header` names the header
a provider's API reads an idempotency key from; neither the Anthropic
Messages API nor OpenAI Chat Completions documents one, so both leave it
unset and a request the provider billed before a kill may be billed again
when the run resumes (the ledger counts both).

Prices must be those of the service tier actually used (a priority or
fast tier bills more than the list price; batch less).

**Secrets.** The API key is read from the environment variable
``api_key_env`` when the first live call is made, handed to the SDK client
and nowhere else. Every text a response produces is redacted by
:func:`alband.annotators.redaction.redact_secrets` (the key's exact value and
credential-shaped tokens) before it is parsed, cached, logged, raised or
returned: the reply's text and refusal as soon as they are read (so that a
shortened quote in ``invalid_reason`` never holds part of a key), the body
before it is cached, every error message, and finally every string of the
returned :class:`~alband.annotators.base.Annotation`.

**Cache.** With ``cache_dir``, response bodies are stored under
``sha256(provider, endpoint, request)`` (:mod:`alband.annotators.cache`); a
hit replays the body, costs ``$0`` and makes no HTTP request.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import logging
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.cache import ResponseCache, request_key
from alband.annotators.parsing import label_span_probability, parse_label_answer
from alband.annotators.prompts import DEFAULT_INSTRUCTIONS, ClassificationPrompt, RenderedPrompt
from alband.annotators.redaction import redact_secrets, redact_strings
from alband.costs.prices import Price, Usage
from alband.errors import AlbandError, AnnotatorError  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

#: Anthropic bills 1-hour cache writes at twice the input price (5-minute writes
#: use :attr:`Price.cache_write_multiplier`).
ONE_HOUR_CACHE_WRITE_MULTIPLIER = 2.0
#: Request fields the annotator owns: overriding them through ``extra_body``
#: would change the prompt or the output limit the cost bound is computed from.
RESERVED_REQUEST_FIELDS = frozenset({"model", "messages", "system", "max_tokens", "max_completion_tokens",
                                     "n", "stream"})
#: Transport errors raised before a request reached the server (nothing billed).
_NEVER_SENT_ERRORS = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})
#: Placeholder key sent to servers that need none (``api_key_env=None``).
NO_KEY_PLACEHOLDER = "no-key"


@dataclass(frozen=True)
class BilledUsage:
    """A response's usage normalised to :class:`Usage`, and its dollar cost."""

    usage: Usage
    cost_usd: float
    input_tokens: int
    output_tokens: int
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderReply:
    """The parts of a provider response an annotation needs."""

    text: str | None
    response_id: str = ""
    finish_reason: str | None = None
    refusal: str | None = None
    usage: BilledUsage | None = None
    usage_problem: str | None = None
    token_logprobs: list[tuple[str, float]] | None = None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with the secrets and credential-shaped tokens redacted (:func:`.redaction.redact_secrets`)."""
    return redact_secrets(text, secrets)


def nonnegative_int(value: Any) -> int | None:
    """``value`` if it is an int >= 0 (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def token_counts(usage: Any, required: Sequence[str], optional: Sequence[str] = (), *,
                 optional_in: str | None = None) -> tuple[dict[str, int] | None, str | None]:
    """The token counts of a provider's ``usage`` object, or ``(None, problem)``.

    Every ``required`` field must be a count (an int >= 0); an ``optional`` one
    (read from the sub-object ``optional_in`` when named, which may be absent)
    counts 0 when absent or null and must otherwise be a count.
    """
    if not isinstance(usage, dict):
        return None, "no 'usage' object" if usage is None else f"'usage' is {type(usage).__name__}"
    counts = {key: nonnegative_int(usage.get(key)) for key in required}
    if any(count is None for count in counts.values()):
        return None, ", ".join(f"{key}={usage.get(key)!r}" for key in required) + " are not token counts"
    source = usage if optional_in is None else usage.get(optional_in)
    source = source if isinstance(source, dict) else {}
    where = "" if optional_in is None else f"{optional_in}."
    for key in optional:
        value = source.get(key)
        counts[key] = 0 if value is None else nonnegative_int(value)
        if counts[key] is None:
            return None, f"{where}{key}={value!r} is not a token count"
    return counts, None


class ProviderAdapter(ABC):
    """One provider's wire conventions, held by an :class:`LLMAnnotator`.

    It names the SDK and its client class, sends a request through the SDK's
    raw-response ``create`` call, builds the provider's request body from a
    rendered prompt, and reads text and billed usage from a response body.
    Everything about money, caching, parsing and errors stays in the annotator.
    """

    #: Provider name (part of the cache key and of error messages).
    name: ClassVar[str]
    #: Endpoint used when neither ``base_url`` nor :attr:`base_url_env` is set.
    default_endpoint: ClassVar[str]
    #: Environment variable the SDK reads the base URL from.
    base_url_env: ClassVar[str]
    #: Module of the provider's SDK (imported on first use).
    sdk_module: ClassVar[str]
    #: Client class in :attr:`sdk_module`.
    client_class: ClassVar[str]
    #: Attribute path from the client to the resource whose ``create`` sends a request.
    create_path: ClassVar[tuple[str, ...]]
    #: Keyword arguments of that ``create``; other request fields go through ``extra_body``.
    sdk_fields: ClassVar[frozenset[str]]
    #: Header the provider's API reads an idempotency key from (None: the API documents none).
    idempotency_header: ClassVar[str | None] = None

    def sdk(self):
        """The SDK module (for its client and exception classes)."""
        return importlib.import_module(self.sdk_module)

    def new_client(self, api_key: str, *, base_url: str | None, timeout_s: float, max_retries: int):
        """A configured SDK client."""
        client_class = getattr(self.sdk(), self.client_class)
        return client_class(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries)

    def post(self, client, request: dict, *, idempotency_key: str | None = None) -> tuple[str, int]:
        """Send ``request`` once; return the response body text and the retries the SDK took (0)."""
        known = {key: value for key, value in request.items() if key in self.sdk_fields}
        extra = {key: value for key, value in request.items() if key not in self.sdk_fields}
        resource = functools.reduce(getattr, self.create_path, client)
        headers = {self.idempotency_header: idempotency_key} if self.idempotency_header and idempotency_key else None
        raw = resource.with_raw_response.create(**known, extra_body=extra or None, extra_headers=headers)
        response = raw.http_response
        response.read()
        return response.text, int(getattr(raw, "retries_taken", 0) or 0)

    @abstractmethod
    def build_request(self, rendered: RenderedPrompt, *, model: str, max_tokens: int,
                      temperature: float | None) -> dict:
        """The JSON request body (model, prompt, parameters) for one item, before ``extra_body``."""

    @abstractmethod
    def read_reply(self, body: dict, price: Price) -> ProviderReply:
        """Text, billed usage and metadata of a decoded response body."""

    def cache_write_multiplier_bound(self, price: Price) -> float:
        """Largest cache-write multiplier a response can bill at ``price``."""
        return price.cache_write_multiplier


class LLMAnnotator:
    """Labels items through a provider's chat API (see module docstring).

    ``api`` is the :class:`ProviderAdapter` of the provider;
    :class:`~alband.annotators.anthropic_annotator.AnthropicAnnotator` and
    :class:`~alband.annotators.openai_annotator.OpenAIAnnotator` build it from
    their provider options and pass every other argument here.
    """

    def __init__(
        self,
        name: str,
        model: str,
        label_names: Sequence[str],
        price: Price,
        *,
        api: ProviderAdapter,
        base_url: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 64,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        cache_dir: str | os.PathLike | None = None,
        temperature: float | None = None,
        instructions: str = DEFAULT_INSTRUCTIONS,
        label_descriptions: Mapping[str, str] | None = None,
        examples: Iterable[tuple[str, str]] = (),
        extra_body: Mapping[str, Any] | None = None,
        per_message_overhead_tokens: int = 8,
        request_overhead_tokens: int = 64,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise AlbandError(f"annotator name must be non-empty text, got {name!r}")
        if not isinstance(model, str) or not model.strip():
            raise AlbandError(f"annotator {name!r}: model must be non-empty text, got {model!r}")
        if not isinstance(price, Price):
            raise AlbandError(f"annotator {name!r}: price must be an alband.costs.Price, got {type(price).__name__}")
        for field_name, value, low in (("max_tokens", max_tokens, 1), ("max_retries", max_retries, 0),
                                       ("per_message_overhead_tokens", per_message_overhead_tokens, 0),
                                       ("request_overhead_tokens", request_overhead_tokens, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise AlbandError(f"annotator {name!r}: {field_name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise AlbandError(f"annotator {name!r}: timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        if temperature is not None and not (isinstance(temperature, (int, float)) and temperature >= 0):
            raise AlbandError(f"annotator {name!r}: temperature must be a number >= 0 or None, got {temperature!r}")
        if not isinstance(api, ProviderAdapter):
            raise AlbandError(f"annotator {name!r}: api must be a ProviderAdapter, got {type(api).__name__}")
        self.name = name
        self.api = api
        self.model = model
        self.price = price
        self.base_url = base_url
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env.strip()):
            raise AlbandError(f"annotator {name!r}: api_key_env must name an environment variable or be None, "
                              f"got {api_key_env!r}")
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.temperature = temperature
        self.extra_body = dict(extra_body or {})
        clashes = sorted(RESERVED_REQUEST_FIELDS & set(self.extra_body))
        if clashes:
            raise AlbandError(f"annotator {name!r}: extra_body may not set {clashes!r}; the annotator sets "
                              "them itself (use the max_tokens argument for the output limit)")
        self.per_message_overhead_tokens = per_message_overhead_tokens
        self.request_overhead_tokens = request_overhead_tokens
        self.prompt = ClassificationPrompt(tuple(label_names), instructions, label_descriptions, tuple(examples))
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self._client_lock = threading.Lock()
        self._client_instance = None
        self._secrets: tuple[str, ...] = ()

    #: :func:`alband.live.paid_call.paid_call` passes ``idempotency_key`` to :meth:`annotate`.
    accepts_idempotency_key = True

    @property
    def provider(self) -> str:
        """The provider's name (``"anthropic"``, ``"openai"``)."""
        return self.api.name

    # ------------------------------------------------------------------- public
    @property
    def label_names(self) -> tuple[str, ...]:
        return self.prompt.label_names

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (part of the cache key)."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        from_env = os.environ.get(self.api.base_url_env)
        return (from_env or self.api.default_endpoint).rstrip("/")

    def with_examples(self, examples: Iterable[tuple[str, str]]) -> "LLMAnnotator":
        """A copy using these few-shot examples (sharing client and cache)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.prompt = self.prompt.with_examples(examples)
        return clone

    def input_token_bound(self, item: Item) -> int:
        """Upper bound on the input tokens of ``item``'s request (module docstring)."""
        return self._input_token_bound(self._render(item))

    def max_cost_usd(self, item: Item) -> float:
        """Upper bound on the dollars :meth:`annotate` can bill for ``item``."""
        return self._max_cost(self._render(item))

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`max_cost_usd` of the item of each text, float64, without rendering a prompt per text.

        The prompt template (few-shot examples included) is rendered once; each
        text adds its UTF-8 bytes (:meth:`ClassificationPrompt.utf8_bytes_many`).
        The same float64 operations in the same order as the per-item bound
        give the same dollars, bit for bit.
        """
        input_bound = self.prompt.utf8_bytes_many(texts) + self._format_overhead_tokens(self.prompt.render(""))
        return np.asarray(self._cost_bound(input_bound), dtype=np.float64)

    def annotate(self, item: Item, *, idempotency_key: str | None = None) -> Annotation:
        """One attempt at labelling ``item`` (module docstring: outcomes and money); every stored text redacted."""
        return self._redacted_annotation(self._annotate(item, idempotency_key=idempotency_key))

    def _annotate(self, item: Item, *, idempotency_key: str | None = None) -> Annotation:
        rendered = self._render(item)
        request = self._request(rendered)
        bound = self.max_cost_usd(item)
        started = time.perf_counter()
        key = request_key(self.provider, self.endpoint, request) if self.cache is not None else None
        if key is not None:
            body = self.cache.get(key)
            if body is not None:
                replayed = self._annotation(item, body, bound, time.perf_counter() - started,
                                            retries=0, cache_key=key, cache_hit=True)
                if replayed is not None:
                    return replayed
                log.warning("annotator %s: cache entry %s unreadable; asking the provider again", self.name, key)
        client = self._client()
        try:
            body, retries = self.api.post(client, request, idempotency_key=idempotency_key)
        except Exception as err:  # noqa: BLE001 - classified below, re-raised if unknown
            return self._failure(item, err, bound, time.perf_counter() - started)
        annotation = self._annotation(item, body, bound, time.perf_counter() - started,
                                      retries=retries, cache_key=key, cache_hit=False)
        if key is not None and not annotation.extra.get("cost_is_upper_bound"):
            try:
                self.cache.put(key, body, provider=self.provider, model=self.model, secrets=self._secrets)
            except AlbandError as err:
                log.warning("annotator %s: response not cached: %s", self.name, err)
        return annotation

    def max_cost_of(self, rendered: RenderedPrompt) -> float:
        """Upper bound on the dollars :meth:`complete` can bill for ``rendered`` (module docstring)."""
        return self._max_cost(rendered)

    def complete(self, rendered: RenderedPrompt, *, subject: str) -> "Completion":
        """One attempt at any prompt (not a label): the reply's text and what it billed; every text redacted.

        The same request, client, price and failure rules as :meth:`annotate`
        (module docstring), for callers that bring their own prompt (a
        selection of items to label): an HTTP error or a missing key raises
        :class:`AnnotatorError`; a timeout or a dropped connection returns a
        completion billed at the bound without an answer
        (``billed_without_answer``); an unreadable body or unusable usage
        returns no text, charged the bound. The response cache is not used.
        ``subject`` names the call in log lines and errors.
        """
        request = self._request(rendered)
        bound = self._max_cost(rendered)
        started = time.perf_counter()
        client = self._client()
        try:
            body_text, _ = self.api.post(client, request)
        except Exception as err:  # noqa: BLE001 - classified by _failure (raises unless billed)
            failed = self._failure(Item(-1, subject, ""), err, bound, time.perf_counter() - started)
            return Completion(None, bound, bound, 0, 0, "", failed.extra.get("invalid_reason", "no answer"),
                              billed_without_answer=True)
        try:
            body = json.loads(body_text)
            if not isinstance(body, dict):
                raise ValueError(f"expected a JSON object, got {type(body).__name__}")
            reply = self._redacted_reply(self.api.read_reply(body, self.price))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            reason = f"malformed response body ({type(err).__name__}: {redact_secrets(str(err), self._secrets)[:200]})"
            return Completion(None, bound, bound, 0, 0, "", reason)
        if reply.usage is None:
            return Completion(reply.text, bound, bound, 0, 0, reply.response_id,
                              f"response has no usable usage ({reply.usage_problem}); charged the bound")
        usage = reply.usage
        reason = None if reply.refusal is None else f"refusal: {reply.refusal}"
        return Completion(reply.text if reply.refusal is None else None, usage.cost_usd, bound, usage.input_tokens,
                          usage.output_tokens, reply.response_id, reason)

    # ----------------------------------------------------------------- internals
    def _render(self, item: Item) -> RenderedPrompt:
        """The system text and messages sent for ``item`` (subclasses asking other questions override it)."""
        return self.prompt.render(item.text)

    def _redacted_annotation(self, annotation: Annotation) -> Annotation:
        """``annotation`` with every text it holds redacted (the last guard before the ledger)."""
        return dataclasses.replace(
            annotation, raw=redact_secrets(annotation.raw, self._secrets),
            response_id=redact_secrets(annotation.response_id, self._secrets),
            extra=redact_strings(annotation.extra, self._secrets))

    def _redacted_reply(self, reply: ProviderReply) -> ProviderReply:
        """``reply`` with its texts redacted before they are parsed or quoted.

        Token logprobs are dropped when the text changed: their pieces spell
        the unredacted text (and would no longer line up with it).
        """
        text = redact_secrets(reply.text, self._secrets) if reply.text is not None else None
        return dataclasses.replace(
            reply, text=text,
            response_id=redact_secrets(reply.response_id, self._secrets),
            finish_reason=redact_secrets(reply.finish_reason, self._secrets) if reply.finish_reason else None,
            refusal=redact_secrets(reply.refusal, self._secrets) if reply.refusal is not None else None,
            usage_problem=redact_secrets(reply.usage_problem, self._secrets) if reply.usage_problem else None,
            token_logprobs=reply.token_logprobs if text == reply.text else None)

    def _request(self, rendered: RenderedPrompt) -> dict:
        request = self.api.build_request(rendered, model=self.model, max_tokens=self.max_tokens,
                                         temperature=self.temperature)
        request.update(self.extra_body)
        return request

    def _input_token_bound(self, rendered: RenderedPrompt) -> int:
        return rendered.utf8_bytes() + self._format_overhead_tokens(rendered)

    def _format_overhead_tokens(self, rendered: RenderedPrompt) -> int:
        """Chat formatting tokens: per message (the system text counts as one) and per request."""
        n_messages = len(rendered.messages) + 1
        return self.per_message_overhead_tokens * n_messages + self.request_overhead_tokens

    def _max_cost(self, rendered: RenderedPrompt) -> float:
        return self._cost_bound(self._input_token_bound(rendered))

    def _cost_bound(self, input_tokens):
        """Dollars for ``input_tokens`` (an int or an int64 array) at the dearest input rate, plus max output."""
        multiplier = max(1.0, self.api.cache_write_multiplier_bound(self.price), self.price.cache_read_multiplier)
        input_usd = input_tokens * self.price.input_usd_per_mtok * multiplier
        output_usd = self.max_tokens * self.price.output_usd_per_mtok
        return (input_usd + output_usd) / 1e6 + self.price.usd_per_label

    def _client(self):
        with self._client_lock:
            if self._client_instance is None:
                if self.api_key_env:
                    api_key = os.environ.get(self.api_key_env, "")
                    if not api_key.strip():
                        raise AnnotatorError(
                            f"annotator {self.name!r}: environment variable {self.api_key_env} is not set; "
                            f"the {self.provider} API key is read from the environment only "
                            "(use api_key_env=None for a local server that needs no key)"
                        )
                else:
                    api_key = NO_KEY_PLACEHOLDER
                self._secrets = (api_key,) if api_key != NO_KEY_PLACEHOLDER else ()
                # max_retries=0: every attempt is reserved and recorded by the caller (module docstring).
                self._client_instance = self.api.new_client(api_key, base_url=self.base_url,
                                                            timeout_s=self.timeout_s, max_retries=0)
            return self._client_instance

    def _where(self) -> str:
        return f"annotator {self.name!r} ({self.provider} model {self.model!r} at {self.endpoint})"

    def _failure(self, item: Item, err: Exception, bound: float, latency_s: float) -> Annotation:
        """Raise :class:`AnnotatorError` if nothing was billed, else a paid invalid annotation."""
        sdk = self.api.sdk()
        detail = redact_secrets(str(err) or type(err).__name__, self._secrets)
        if isinstance(err, sdk.APIStatusError):
            status = getattr(err, "status_code", None)
            transient = isinstance(status, int) and (status in (408, 409, 429) or status >= 500)
            retry = "transient" if transient else ("item" if status in (400, 413, 422) else "fatal")
            raise AnnotatorError(f"{self._where()}: HTTP {status}: {detail}", status_code=status, retry=retry,
                                 retry_after_s=_retry_after_s(getattr(err, "response", None))) from None
        if isinstance(err, sdk.APIConnectionError):
            cause = err.__cause__
            # By class name: the SDKs sit on httpx2 (or on httpx in older releases).
            never_sent = type(cause).__name__ in _NEVER_SENT_ERRORS
            if never_sent:
                raise AnnotatorError(
                    f"{self._where()}: cannot connect: "
                    f"{redact_secrets(str(cause) or type(cause).__name__, self._secrets)}", retry="transient"
                ) from None
            if isinstance(err, sdk.APITimeoutError):
                reason = f"no response within {self.timeout_s:g} s; the provider may have billed the request"
            else:
                reason = (f"connection lost after the request was sent ({type(cause).__name__ if cause else detail}); "
                          "the provider may have billed the request")
            log.warning("%s: item %s: %s; charged the bound $%.6f", self._where(), item.item_id, reason, bound)
            annotation = self._paid_invalid(item, bound, latency_s, reason)
            annotation.extra["retryable"] = True
            return annotation
        if isinstance(err, AlbandError):
            raise err
        raise AnnotatorError(f"{self._where()}: request failed: {type(err).__name__}: {detail}") from None

    def _paid_invalid(self, item: Item, bound: float, latency_s: float, reason: str,
                      response_id: str = "", raw: str = "", retries: int = 0) -> Annotation:
        return Annotation(
            pool_index=item.pool_index, item_id=item.item_id, annotator=self.name, label=None,
            cost_usd=bound, latency_s=latency_s, response_id=response_id, raw=raw,
            extra={"invalid_reason": reason, "cost_is_upper_bound": True, "cost_bound_usd": bound,
                   "model": self.model, "retries": retries, "cache_hit": False},
        )

    def _annotation(self, item: Item, body_text: str, bound: float, latency_s: float, *,
                    retries: int, cache_key: str | None, cache_hit: bool) -> Annotation | None:
        """The annotation for a response body (``None`` for an unreadable cached body)."""
        try:
            body = json.loads(body_text)
            if not isinstance(body, dict):
                raise ValueError(f"expected a JSON object, got {type(body).__name__}")
            reply = self._redacted_reply(self.api.read_reply(body, self.price))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
            if cache_hit:
                return None
            reason = f"malformed response body ({type(err).__name__}: {redact_secrets(str(err), self._secrets)[:200]})"
            log.warning("%s: item %s: %s; charged the bound $%.6f", self._where(), item.item_id, reason, bound)
            return self._paid_invalid(item, bound, latency_s, reason, retries=retries)

        extra: dict[str, Any] = {"model": self.model, "retries": retries, "cache_hit": cache_hit,
                                 "cost_bound_usd": bound, "finish_reason": reply.finish_reason}
        if reply.usage is None:
            if cache_hit:
                return None
            reason = f"response has no usable usage ({reply.usage_problem}); the cost is unknown"
            log.warning("%s: item %s: %s; charged the bound $%.6f", self._where(), item.item_id, reason, bound)
            return self._paid_invalid(item, bound, latency_s, reason, reply.response_id,
                                      redact_secrets(reply.text or "", self._secrets), retries)

        usage = reply.usage
        extra.update(usage.details)
        if reply.refusal is not None:
            label, confidence, source = None, float("nan"), "none"
            extra["invalid_reason"] = f"refusal: {reply.refusal}" if reply.refusal else "refusal"
        else:
            parsed = parse_label_answer(reply.text, self.prompt.label_names)
            label = parsed.label
            extra["parse_method"] = parsed.method
            if parsed.invalid_reason:
                extra["invalid_reason"] = parsed.invalid_reason
            confidence, source = float("nan"), "none"
            if label is not None and reply.token_logprobs:
                confidence = label_span_probability(reply.token_logprobs, reply.text or "", parsed.span)
                source = "logprobs" if not math.isnan(confidence) else "none"
            if math.isnan(confidence) and not math.isnan(parsed.confidence):
                confidence, source = parsed.confidence, "self_reported"
        extra["confidence_source"] = source

        if cache_hit:
            extra.update(cache_key=cache_key, original_cost_usd=usage.cost_usd,
                         original_input_tokens=usage.input_tokens, original_output_tokens=usage.output_tokens)
            cost, input_tokens, output_tokens = 0.0, 0, 0
        else:
            cost, input_tokens, output_tokens = usage.cost_usd, usage.input_tokens, usage.output_tokens
            if cost > bound * (1 + 1e-9) + 1e-15:
                extra["cost_bound_exceeded"] = True
                log.error("%s: item %s cost $%.9f, above its bound $%.9f: the token bound's assumptions "
                          "failed (raise request_overhead_tokens in its [annotators] table)", self._where(), item.item_id, cost, bound)
        return Annotation(
            pool_index=item.pool_index, item_id=item.item_id, annotator=self.name, label=label,
            cost_usd=cost, input_tokens=input_tokens, output_tokens=output_tokens, confidence=confidence,
            latency_s=latency_s, response_id=reply.response_id,
            raw=redact_secrets(reply.text if reply.text is not None else (reply.refusal or ""), self._secrets),
            extra=extra,
        )


@dataclass(frozen=True)
class Completion:
    """What one :meth:`LLMAnnotator.complete` attempt returned: text (None: no usable answer) and money."""

    text: str | None
    cost_usd: float
    bound_usd: float
    input_tokens: int
    output_tokens: int
    response_id: str
    problem: str | None = None  # why there is no usable answer, or why the cost is the bound
    billed_without_answer: bool = False  # a timeout or dropped connection: charged in full, may be retried


def _retry_after_s(response: Any) -> float | None:
    """Seconds a response's ``retry-after-ms`` or ``retry-after`` (seconds) header asks to wait, if any."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except (TypeError, ValueError):
            continue  # an HTTP date or garbage: ignored (the backoff applies)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
