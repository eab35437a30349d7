"""One paid call under the ledger protocol: reserve, attempt(s), settle / overrun / release / skip (shell).

Every attempt that may be billed is reserved and recorded before it is sent
(one ledger row per attempt, :mod:`alband.store.ledger`)::

    for attempt in 1..max_attempts:
        reserve max_cost in the budget guard (the caller holds the first)
        reserve a ledger row (kind, key, annotator, attempt)
        call the provider once (the SDK's own retries are off)
        answer           -> settle row and guard with the real cost; done
        answer > bound   -> settle the real cost, mark the overrun, raise CostOverrun
        billed, no answer (timeout, dropped connection)
                         -> 'charged' at the whole reservation; back off, try again
        HTTP 408/409/429/5xx, no connection (nothing billed)
                         -> release; back off (honouring retry-after), try again
        HTTP 400-like (this request is refused)
                         -> release; skip the item
        a fatal error (missing key, 401/403/404, a human who quits)
                         -> release; raise
        anything else (a crash, an interrupt)
                         -> the row stays 'reserved': it may have been billed
    all attempts failed  -> a 'skipped' row: the item is given up, and a resumed
                            run does not buy it again

The wait before attempt ``n + 1`` is ``min(cap, base * 2**(n-1))`` scaled by a
jitter factor in ``[0.5, 1)``, or the server's ``retry-after`` when it asks
for longer, never more than ``max_retry_after_s``: a server asking for an
hour does not hold the run for an hour; the attempt fails and the item is
skipped after the last one. Jitter comes from a seeded
:class:`random.Random` and sleeping from an injectable function, so tests run
without waiting.

Charges that are not labels (an LLM selection prompt, a generated item, a
verification) follow the same protocol through :func:`paid_charge`, keyed by
``(kind, key, annotator)``: counted in the same budget and ledger, found on
resume by their key and never bought twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from alband.annotation import Annotation, Item
from alband.annotators.base import Annotator
from alband.errors import AlbandError, AnnotatorError, BudgetExhausted
from alband.store.budget_guard import BudgetGuard, Reservation
from alband.store.ledger import KIND_LABEL, Ledger

log = logging.getLogger(__name__)


class CostOverrun(AlbandError):
    """A call was billed above its reservation: settled at its real cost; the run stops buying."""

    def __init__(self, message: str, *, actual_usd: float, reserved_usd: float) -> None:
        super().__init__(message)
        self.actual_usd = actual_usd
        self.reserved_usd = reserved_usd


@dataclass(frozen=True)
class Skipped:
    """An item (or charge) given up after its attempts failed; recorded in the ledger as ``'skipped'``.

    ``label`` is None and ``cost_usd`` 0, so that code reading answers sees an
    invalid answer that cost nothing more (the failed attempts' charges are in
    the ledger).
    """

    key: str
    annotator: str
    reason: str
    label: None = None
    cost_usd: float = 0.0


@dataclass
class RetryPolicy:
    """Bounded attempts with exponential backoff and jitter, honouring ``retry-after`` up to a bound."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    seed: int | None = 0
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise AlbandError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
            if not getattr(self, name) >= 0:
                raise AlbandError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        self._rng = random.Random(self.seed)

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next."""
        with self._lock:
            jitter = 0.5 + 0.5 * self._rng.random()
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)) * jitter
        if retry_after_s is not None and retry_after_s > backoff:
            return min(float(retry_after_s), self.max_retry_after_s)
        return backoff


def retry_policy_for(annotator, key: str = "") -> RetryPolicy:
    """The annotator's own policy (``retry_policy`` attribute), else ``max_retries + 1`` attempts (default 3).

    The jitter is seeded by the purchase's key: reproducible, and different
    for purchases in flight together, so that their retries do not line up.
    """
    policy = getattr(annotator, "retry_policy", None)
    if isinstance(policy, RetryPolicy):
        return policy
    retries = getattr(annotator, "max_retries", 2)
    return RetryPolicy(max_attempts=int(retries) + 1, seed=zlib.crc32(key.encode("utf-8")))


def idempotency_key(ledger: Ledger, kind: str, key: str, annotator: str) -> str:
    """A key naming one purchase, the same for every attempt and across resumes of the run."""
    run = str(ledger.get_meta("config_hash", "")) or str(ledger.path.resolve())
    return "alband-" + hashlib.sha256(f"{run}\0{kind}\0{key}\0{annotator}".encode()).hexdigest()[:40]


def overrun_advice(annotator_name: str, annotator) -> str:
    """The setting that makes an annotator's reservation safe, for the overrun message."""
    if hasattr(annotator, "request_overhead_tokens"):
        return (f"raise request_overhead_tokens (now {annotator.request_overhead_tokens}) or "
                f"per_message_overhead_tokens (now {annotator.per_message_overhead_tokens}) in "
                f"[annotators.{annotator_name}], or check its prices, so that the reservation bounds what the "
                "provider bills")
    return f"check the prices of [annotators.{annotator_name}]: the reservation must bound what it bills"


def paid_call(ledger: Ledger, guard: BudgetGuard, annotator: Annotator, round_index: int, item: Item,
              max_cost: float, reservation: Reservation | None, *,
              retry: RetryPolicy | None = None) -> Annotation | Skipped:
    """Buy ``annotator``'s label of ``item`` under the protocol of the module docstring.

    ``reservation`` (``max_cost`` dollars, already held in ``guard``) covers the
    first attempt; later attempts reserve their own, and an attempt the budget
    cannot cover ends the item as skipped. Returns the settled annotation or
    :class:`Skipped`; raises :class:`CostOverrun` after settling an overrun and
    :class:`AnnotatorError` on a fatal error.
    """
    if getattr(annotator, "accepts_idempotency_key", False):
        key = idempotency_key(ledger, KIND_LABEL, item.item_id, annotator.name)

        def attempt() -> Annotation:
            return annotator.annotate(item, idempotency_key=key)
    else:
        def attempt() -> Annotation:
            return annotator.annotate(item)

    def settle(row: int, annotation: Annotation) -> bool:
        return ledger.settle(row, annotation)

    return _purchase(ledger, guard, KIND_LABEL, item.item_id, annotator.name, annotator, round_index,
                     item.pool_index, item.item_id, max_cost, reservation, attempt, settle,
                     retry or retry_policy_for(annotator, item.item_id))


@dataclass(frozen=True)
class ChargeResult:
    """What a paid call that produces no label returns to :func:`paid_charge`: its cost and its output."""

    cost_usd: float
    output: str = ""
    response_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    extra: dict = field(default_factory=dict)
    billed_without_answer: bool = False  # a timeout or dropped connection: charged, then retried
    latency_s: float | None = None  # the attempt's wall seconds; None: :func:`paid_charge` times ``call``


def paid_charge(ledger: Ledger, guard: BudgetGuard, kind: str, key: str, payer: str, max_cost: float,
                call: Callable[[], ChargeResult], *, round_index: int = 0, retry: RetryPolicy | None = None,
                subject: str = "") -> ChargeResult | Skipped:
    """Pay for a call that produces no label (``kind`` e.g. ``'selection'``), once per ``(kind, key, payer)``.

    The same protocol as :func:`paid_call`, in the same ledger and budget. A
    resumed run gets the settled charge back from the ledger (its output in
    :attr:`ChargeResult.output`) without paying again; a skipped one stays
    skipped. ``call`` makes one attempt: it returns a :class:`ChargeResult`
    or raises :class:`AnnotatorError`. ``subject`` is stored as the row's
    ``item_id`` (default: ``key``).
    """
    done = ledger.charge_for(kind, key, payer)
    if done is not None:
        return ChargeResult(done.cost_usd, done.raw or "", done.response_id or "", done.input_tokens or 0,
                            done.output_tokens or 0, dict(done.extra), latency_s=done.latency_s)
    skipped = ledger.skip_for(key, payer, kind=kind)
    if skipped is not None:
        return Skipped(key, payer, skipped.extra.get("reason", "skipped"))
    reservation = guard.reserve(max_cost)  # BudgetExhausted: the caller decides

    def timed_call() -> ChargeResult:
        start = time.perf_counter()
        result = call()
        if isinstance(result, ChargeResult) and result.latency_s is None:
            result = dataclasses.replace(result, latency_s=time.perf_counter() - start)
        return result

    def settle(row: int, result: ChargeResult) -> bool:
        return ledger.settle_charge(row, result.cost_usd, response_id=result.response_id, raw=result.output,
                                    input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                                    extra=result.extra, latency_s=result.latency_s)

    return _purchase(ledger, guard, kind, key, payer, None, round_index, None, subject or key, max_cost,
                     reservation, timed_call, settle, retry or RetryPolicy())


def _billed_without_answer(result) -> str | None:
    """Why ``result`` is a billed attempt without an answer (to be charged and retried), else None."""
    if isinstance(result, ChargeResult):
        return "billed without an answer" if result.billed_without_answer else None
    extra = getattr(result, "extra", None) or {}
    return extra.get("invalid_reason", "billed without an answer") if extra.get("retryable") else None


def _purchase(ledger: Ledger, guard: BudgetGuard, kind: str, key: str, payer: str, annotator, round_index: int,
              pool_index: int | None, item_id: str, max_cost: float, reservation: Reservation | None,
              attempt_call: Callable, settle: Callable, policy: RetryPolicy):
    """The attempt loop shared by :func:`paid_call` and :func:`paid_charge` (module docstring)."""
    first = ledger.attempt_count(key, payer, kind=kind) + 1  # attempts of a killed run keep their numbers
    last_problem = "no attempt made"
    for n in range(1, policy.max_attempts + 1):
        if reservation is None:
            try:
                reservation = guard.reserve(max_cost)
            except BudgetExhausted:
                reason = f"the budget cannot cover attempt {n} after: {last_problem}"
                ledger.skip(round_index, pool_index, item_id, payer, reason, kind=kind, key=key)
                return Skipped(key, payer, reason)
        try:
            row = ledger.reserve(round_index, pool_index, item_id, payer, max_cost, kind=kind, key=key,
                                 attempt=first + n - 1)
        except BaseException:
            guard.release(reservation)  # nothing was sent
            raise
        try:
            result = attempt_call()
        except AnnotatorError as err:
            ledger.release(row, reason=str(err)[:500])
            guard.release(reservation)
            reservation = None
            if err.retry == "fatal":
                raise
            last_problem = str(err)
            if err.retry == "item":
                break
            if n < policy.max_attempts:
                if err.retry_after_s is not None and err.retry_after_s > policy.max_retry_after_s:
                    log.warning("%s: the server asked to wait %.0f s; waiting the %.0f s bound instead", payer,
                                err.retry_after_s, policy.max_retry_after_s)
                policy.sleep(policy.delay_s(n, err.retry_after_s))
            continue
        # Any other exception leaves the row 'reserved': the attempt may have been billed.
        unanswered = _billed_without_answer(result)
        if unanswered is not None:
            charged = float(result.cost_usd) if result.cost_usd and result.cost_usd > 0 else max_cost
            ledger.charge(row, charged, reason=unanswered)
            if charged > reservation.amount_usd:
                guard.settle_overrun(reservation, charged)
            else:
                guard.settle(reservation, charged)
            reservation = None
            last_problem = unanswered
            if n < policy.max_attempts:
                policy.sleep(policy.delay_s(n))
            continue
        cost = float(result.cost_usd)
        if settle(row, result):
            guard.settle_overrun(reservation, cost)
            raise CostOverrun(
                f"{payer} billed ${cost:.6f} for {_what(kind, key)}, above its reservation ${max_cost:.6f}: the "
                f"real cost is in the ledger (marked overrun) and the run stopped buying; "
                f"{overrun_advice(payer, annotator)}",
                actual_usd=cost, reserved_usd=max_cost)
        guard.settle(reservation, max(0.0, min(cost, reservation.amount_usd)))
        return result
    if reservation is not None:
        guard.release(reservation)
    reason = f"gave up after {n} attempt(s): {last_problem}"[:1000]
    log.warning("%s: %s %s", payer, _what(kind, key), reason)
    ledger.skip(round_index, pool_index, item_id, payer, reason, kind=kind, key=key)
    return Skipped(key, payer, reason)


def _what(kind: str, key: str) -> str:
    return f"item {key!r}" if kind == KIND_LABEL else f"{kind} charge {key!r}"
