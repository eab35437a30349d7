"""A scriptable local server speaking the Anthropic Messages and OpenAI Chat wire formats.

The unmodified SDK clients talk to it through ``base_url``:
``anthropic.Anthropic(base_url=server.url)`` posts to ``/v1/messages`` and
``openai.OpenAI(base_url=server.openai_base_url)`` to ``/v1/chat/completions``.
It is a stdlib :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 (port 0,
``TCP_NODELAY`` so small responses are not held back by Nagle's algorithm).

Each request takes the next :class:`Reply` from a FIFO queue
(:meth:`FakeLLMServer.enqueue`); with an empty queue, ``server.responder``
(a function of the :class:`RecordedRequest`) decides, else
``server.default_reply``. A reply scripts: the answer text, usage numbers
(or none at all), an HTTP error status (with ``retry-after-ms``), a delay,
a malformed body, a refusal, token logprobs, or a dropped connection.
Every request is recorded (path, headers, JSON body) for assertions; both
``x-api-key`` and ``Authorization: Bearer`` are accepted.

**Billing.** The server keeps what a provider would bill: every request it
answered with a 200 (a body with usage, a malformed body, an answer the
client stopped waiting for, a connection dropped after the answer was
computed) is appended to ``server.billed`` as a :class:`Billing` (the
response id, the item text's marker, the billed token counts); an HTTP error
bills nothing. ``server.wait_idle()`` waits for delayed answers to finish.

**Fault mixes.** :class:`FaultMix` is a responder drawing, per request and
from a seeded generator, a 429, a 500, a timeout (an answer slower than the
client waits), a dropped connection, an over-billed answer (usage far above
any bound), a malformed body or an answer echoing a secret, else the
answer of ``FaultMix.answer``.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

AUTO = "auto"

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                     429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


@dataclass
class Reply:
    """One scripted response. ``usage=AUTO`` derives plausible counts from the request."""

    text: str | None = '{"label": "positive", "confidence": 0.9}'
    status: int = 200
    usage: dict | str | None = AUTO
    retry_after_ms: int | None = 1
    delay_s: float = 0.0
    raw_body: bytes | None = None
    stop_reason: str | None = None
    refusal: str | None = None
    logprobs: list[tuple[str, float]] | None = None
    drop_connection: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Billing:
    """One request the server would bill: its response id, prompt text and billed tokens."""

    response_id: str
    prompt_text: str
    input_tokens: int
    output_tokens: int
    reached_client: bool


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    @property
    def auth_scheme(self) -> str | None:
        if self.headers.get("authorization", "").lower().startswith("bearer "):
            return "bearer"
        if "x-api-key" in self.headers:
            return "x-api-key"
        return None

    @property
    def prompt_text(self) -> str:
        """All prompt text of a chat request (system + messages), joined by newlines."""
        body = self.body if isinstance(self.body, dict) else {}
        parts = []
        system = body.get("system")
        if isinstance(system, str):
            parts.append(system)
        elif isinstance(system, list):
            parts += [block.get("text", "") for block in system if isinstance(block, dict)]
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
        return "\n".join(parts)


def auto_usage_counts(request: RecordedRequest, text: str | None) -> tuple[int, int]:
    """Plausible (input, output) token counts: about 4 bytes a token, within every bound."""
    body = request.body if isinstance(request.body, dict) else {}
    input_tokens = len(request.prompt_text.encode("utf-8")) // 4 + 5
    output_tokens = max(1, len((text or "").encode("utf-8")) // 4)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(limit, int):
        output_tokens = min(output_tokens, limit)
    return input_tokens, output_tokens


def split_tokens(text: str, size: int = 3) -> list[str]:
    """``text`` cut into pieces of ``size`` characters (a stand-in tokenizer)."""
    return [text[i:i + size] for i in range(0, len(text), size)]


class FakeLLMServer:
    """See the module docstring. Use as a context manager or via the pytest fixture."""

    def __init__(self, api_key: str | None = "test-key") -> None:
        self.api_key = api_key
        self.default_reply = Reply()
        self.responder: Callable[[RecordedRequest], Reply] | None = None
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.billed: list[Billing] = []
        self._busy = 0

    # ---------------------------------------------------------------- control
    def start(self) -> "FakeLLMServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget queued replies, recorded requests, the responder and the default."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.billed.clear()
            self.responder = None
            self.default_reply = Reply()

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no request is being answered (delayed answers included)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy == 0:
                    return
            time.sleep(0.01)
        raise TimeoutError("the fake server is still answering")

    def _bill(self, billing: Billing) -> None:
        with self._lock:
            self.billed.append(billing)

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # --------------------------------------------------------------- internals
    def _next(self, request: RecordedRequest) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(request)
            self._counter += 1
            number = self._counter
            if self._queue:
                return self._queue.popleft(), number
            responder = self.responder
        return (responder(request) if responder is not None else self.default_reply), number

    def _authorised(self, request: RecordedRequest) -> bool:
        if self.api_key is None:
            return True
        return (request.headers.get("authorization") == f"Bearer {self.api_key}"
                or request.headers.get("x-api-key") == self.api_key)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLMServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw)
        if self.path.rstrip("/").endswith("/v1/messages"):
            flavour = "anthropic"
        elif self.path.rstrip("/").endswith("/v1/chat/completions"):
            flavour = "openai"
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
            return
        if not self.fake._authorised(request):
            with self.fake._lock:
                self.fake.requests.append(request)
            self._send(401, _error_body(flavour, 401, "invalid credentials"), {})
            return
        with self.fake._lock:
            self.fake._busy += 1
        try:
            self._answer(request, flavour)
        finally:
            with self.fake._lock:
                self.fake._busy -= 1

    def _answer(self, request: RecordedRequest, flavour: str) -> None:
        reply, number = self.fake._next(request)
        if reply.delay_s > 0 and self.fake._stopping.wait(reply.delay_s):
            return
        response_id = f"msg_{number:06d}" if flavour == "anthropic" else f"chatcmpl-{number:06d}"
        if reply.status == 200:  # the answer was computed: a provider bills it, whatever reaches the client
            if isinstance(reply.usage, dict):
                tokens = _usage_tokens(reply.usage)
            else:
                tokens = auto_usage_counts(request, None if reply.refusal is not None else reply.text)
            billing = (response_id, request.prompt_text, *tokens)
        else:
            billing = None
        if reply.drop_connection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if billing is not None:
                self.fake._bill(Billing(*billing, reached_client=False))
            return
        headers = dict(reply.headers)
        if reply.status != 200 and reply.retry_after_ms is not None:
            headers.setdefault("retry-after-ms", str(reply.retry_after_ms))
        if reply.raw_body is not None:
            sent = self._send_bytes(reply.status, reply.raw_body, headers)
        elif reply.status != 200:
            sent = self._send(reply.status, _error_body(flavour, reply.status, f"scripted HTTP {reply.status}"),
                              headers)
        elif flavour == "anthropic":
            sent = self._send(200, _anthropic_body(request, reply, number), headers)
        else:
            sent = self._send(200, _openai_body(request, reply, number), headers)
        if billing is not None:
            self.fake._bill(Billing(*billing, reached_client=sent))

    def _send(self, status: int, payload: dict, headers: dict[str, str]) -> bool:
        return self._send_bytes(status, json.dumps(payload).encode("utf-8"), headers)

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> bool:
        """Send a response; False when the client had gone (it will never see it)."""
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False


def _usage_tokens(usage: dict) -> tuple[int, int]:
    """(input, output) tokens of a scripted usage object, in either provider's names (non-counts bill 0)."""
    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    if "prompt_tokens" in usage:
        return count("prompt_tokens"), count("completion_tokens")
    return (count("input_tokens") + count("cache_creation_input_tokens") + count("cache_read_input_tokens"),
            count("output_tokens"))


@dataclass
class FaultMix:
    """A seeded responder mixing faults with answers (module docstring); probabilities per request."""

    rate_limited: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    dropped: float = 0.0
    overbilled: float = 0.0
    malformed: float = 0.0
    echo_secret: float = 0.0
    seed: int = 0
    timeout_delay_s: float = 0.4
    secret: str = "sk-echoed-secret"
    answer: Callable[[RecordedRequest], Reply] | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, request: RecordedRequest) -> Reply:
        answer = (self.answer or film_review_reply)(request)
        with self._lock:
            draw = self._rng.random()
        for probability, fault in ((self.rate_limited, "rate_limited"), (self.server_error, "server_error"),
                                   (self.timeout, "timeout"), (self.dropped, "dropped"),
                                   (self.overbilled, "overbilled"), (self.malformed, "malformed"),
                                   (self.echo_secret, "echo_secret")):
            if draw < probability:
                return self._fault(fault, answer)
            draw -= probability
        return answer

    def _fault(self, fault: str, answer: Reply) -> Reply:
        if fault == "rate_limited":
            return Reply(status=429, retry_after_ms=1)
        if fault == "server_error":
            return Reply(status=500, retry_after_ms=None)
        if fault == "timeout":
            return Reply(text=answer.text, delay_s=self.timeout_delay_s)
        if fault == "dropped":
            return Reply(text=answer.text, drop_connection=True)
        if fault == "overbilled":
            return Reply(text=answer.text, usage={"prompt_tokens": 400_000, "completion_tokens": 5,
                                                  "total_tokens": 400_005,
                                                  "input_tokens": 400_000, "output_tokens": 5})
        if fault == "malformed":
            return Reply(raw_body=b'{"id": "x", "choices": [')
        return Reply(text=json.dumps({"label": "pos", "confidence": 0.5, "note": self.secret}))


def _error_body(flavour: str, status: int, message: str) -> dict:
    if flavour == "anthropic":
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                      "param": None, "code": None}}


def _anthropic_body(request: RecordedRequest, reply: Reply, number: int) -> dict:
    text = None if reply.refusal is not None else reply.text
    body: dict[str, Any] = {
        "id": f"msg_{number:06d}",
        "type": "message",
        "role": "assistant",
        "model": (request.body or {}).get("model", "unknown"),
        "content": [{"type": "text", "text": text}] if text is not None else [],
        "stop_reason": "refusal" if reply.refusal is not None else (reply.stop_reason or "end_turn"),
        "stop_sequence": None,
    }
    if reply.refusal is not None:
        body["stop_details"] = {"type": "refusal", "category": None, "explanation": reply.refusal}
    if reply.usage == AUTO:
        input_tokens, output_tokens = auto_usage_counts(request, text)
        body["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    elif reply.usage is not None:
        body["usage"] = reply.usage
    return body


def _openai_body(request: RecordedRequest, reply: Reply, number: int) -> dict:
    text = None if reply.refusal is not None else reply.text
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": reply.stop_reason or "stop",
        "message": {"role": "assistant", "content": text, "refusal": reply.refusal},
        "logprobs": None,
    }
    if reply.logprobs is not None:
        choice["logprobs"] = {"content": [
            {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8")), "top_logprobs": []}
            for token, logprob in reply.logprobs], "refusal": None}
    body: dict[str, Any] = {
        "id": f"chatcmpl-{number:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": (request.body or {}).get("model", "unknown"),
        "choices": [choice],
    }
    if reply.usage == AUTO:
        prompt, completion = auto_usage_counts(request, text)
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}
    elif reply.usage is not None:
        body["usage"] = reply.usage
    return body


@pytest.fixture
def fake_llm_server():
    """A started :class:`FakeLLMServer` (key ``test-key``), stopped after the test."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared_fake_llm_server():
    """One server per test module; call ``reset()`` before scripting it."""
    with FakeLLMServer() as server:
        yield server


def write_film_reviews(folder, n: int = 60) -> None:
    """``folder/reviews.csv``: ``n`` one-line film reviews labelled pos (odd k) or neg (even k)."""
    from pathlib import Path

    lines = ["text,label"]
    for k in range(n):
        lines.append(f"a good and lovely film number {k},pos" if k % 2 else f"a bad and dull film number {k},neg")
    (Path(folder) / "reviews.csv").write_text("\n".join(lines) + "\n")


def film_review_reply(request: RecordedRequest) -> Reply:
    """The right label of a :func:`write_film_reviews` item, as a JSON answer with confidence 0.8."""
    label = "pos" if "good" in request.prompt_text.rsplit("film number", 1)[0][-40:] else "neg"
    return Reply(text=json.dumps({"label": label, "confidence": 0.8}))
