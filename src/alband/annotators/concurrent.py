"""Annotating a batch with bounded concurrency under a dollar budget.

Items are taken in order. Before item ``k`` is sent, its largest possible
cost (:meth:`Annotator.max_cost_usd`) is reserved with the
:class:`~alband.store.budget_guard.BudgetGuard`; after the call, the
reservation is settled with the actual cost (which never exceeds it), or
released when the call failed without billing (:class:`AnnotatorError`).
At every instant ``spent + reserved <= limit``, so the budget cannot be
overspent however many calls are in flight.

When item ``k``'s reservation does not fit, the batch waits for calls in
flight to settle (their actual costs free the unused part of their
reservations) and tries again; it stops when nothing is in flight and item
``k`` still does not fit. The annotated items are therefore exactly the
sequential rule of :func:`alband.costs.affordable_prefix` (item ``k`` is
annotated iff ``spent + sum_{j<k} actual_j + reserve_k <= limit``), whatever
the number of workers.

Each call is one attempt (LLM annotators turn the SDK's retries off): a failed
attempt is released and reported, not retried here. Retrying with a fresh
reservation per attempt is :mod:`alband.live.paid_call`'s job.

Threads only run :meth:`Annotator.annotate`; the budget guard and every
callback run on the calling thread, so the callbacks may write to a SQLite
ledger opened there. ``on_settled(item, annotation, reservation)`` is
called for every settled call -- each paid call, and each cache hit at $0 --
so the caller can commit it; ``on_reserved(item, reservation)`` before a
call is sent; ``on_released(item, reservation, error)`` when a reservation
is released. Calls in flight are always waited for and settled, also when
a callback raises or the batch is interrupted.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable

from alband.annotation import Annotation, Item
from alband.annotators.base import Annotator
from alband.annotators.llm_common import AnnotatorError
from alband.annotators.redaction import redact_secrets
from alband.errors import AlbandError, BudgetExhausted
from alband.store.budget_guard import BudgetGuard, Reservation

log = logging.getLogger(__name__)

_TOLERANCE_USD = 1e-12

OnSettled = Callable[[Item, Annotation, Reservation], None]
OnReserved = Callable[[Item, Reservation], None]
OnReleased = Callable[[Item, Reservation, BaseException], None]
OnFailed = Callable[[Item, AnnotatorError], None]


def annotate_concurrently(
    annotator: Annotator,
    items: Iterable[Item],
    guard: BudgetGuard,
    *,
    max_workers: int = 4,
    on_settled: OnSettled,
    on_reserved: OnReserved | None = None,
    on_released: OnReleased | None = None,
    on_failed: OnFailed | None = None,
) -> list[Annotation]:
    """Annotate ``items`` in order with at most ``max_workers`` calls in flight.

    Returns the settled annotations in item order. The batch ends cleanly when
    the budget cannot cover the next item (no exception). A failed call
    (:class:`AnnotatorError`, nothing billed) has its reservation released;
    with ``on_failed`` it is reported there and the batch goes on, without it
    the batch stops submitting and the first error is raised once the calls
    in flight are settled. An annotation costing more than its reservation
    (a wrong ``max_cost_usd``) is settled at the reservation, passed to
    ``on_settled`` with its true cost, and raises :class:`AlbandError` at the end.
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise AlbandError(f"max_workers must be an integer >= 1, got {max_workers!r}")
    items = list(items)
    settled: dict[int, Annotation] = {}
    in_flight: dict[Future, tuple[int, Item, Reservation]] = {}
    errors: list[BaseException] = []
    next_position = 0
    submitting = True

    def settle(future: Future) -> None:
        position, item, reservation = in_flight.pop(future)
        error = future.exception()
        if error is None:
            annotation: Annotation = future.result()
            charged = annotation.cost_usd
            if charged > reservation.amount_usd + _TOLERANCE_USD:
                guard.settle(reservation, reservation.amount_usd)
                errors.append(AlbandError(
                    f"annotator {annotation.annotator!r} billed ${charged:.9f} for item {item.item_id!r}, more "
                    f"than its reservation ${reservation.amount_usd:.9f}: its max_cost_usd bound is wrong; "
                    "the budget guard recorded the reservation, the ledger the true cost"))
            else:
                guard.settle(reservation, max(0.0, charged))
            settled[position] = annotation
            on_settled(item, annotation, reservation)
            return
        if isinstance(error, AnnotatorError):
            guard.release(reservation)
            if on_released is not None:
                on_released(item, reservation, error)
            if on_failed is not None:
                on_failed(item, error)
            else:
                errors.append(error)
            return
        # An unexpected exception: the request may have been sent and billed,
        # so the reservation is charged in full (the conservative choice).
        conservative = Annotation(
            pool_index=item.pool_index, item_id=item.item_id, annotator=getattr(annotator, "name", "?"),
            label=None, cost_usd=reservation.amount_usd,
            extra={"invalid_reason": redact_secrets(f"annotator raised {type(error).__name__}: {error}"),
                   "cost_is_upper_bound": True})
        guard.settle(reservation, reservation.amount_usd)
        settled[position] = conservative
        errors.append(error)
        on_settled(item, conservative, reservation)

    def settle_all_done(futures) -> None:
        for future in futures:
            try:
                settle(future)
            except BaseException as err:  # a callback failed: keep settling the others
                errors.append(err)

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="alband-annotate") as pool:
        try:
            while True:
                while submitting and not errors and next_position < len(items) and len(in_flight) < max_workers:
                    item = items[next_position]
                    amount = annotator.max_cost_usd(item)
                    try:
                        reservation = guard.reserve(amount)
                    except BudgetExhausted:
                        if not in_flight:
                            log.info("budget exhausted before item %s (needs $%.6f): %d of %d items sent",
                                     item.item_id, amount, next_position, len(items))
                            submitting = False
                        break
                    try:
                        if on_reserved is not None:
                            on_reserved(item, reservation)
                        future = pool.submit(annotator.annotate, item)
                    except BaseException as err:
                        guard.release(reservation)
                        if on_released is not None:
                            on_released(item, reservation, err)
                        raise
                    in_flight[future] = (next_position, item, reservation)
                    next_position += 1
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                settle_all_done(done)
        except BaseException as err:
            errors.insert(0, err)
        finally:
            while in_flight:
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                settle_all_done(done)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            log.warning("annotate_concurrently: %d further error(s) after the first: %s",
                        len(errors) - 1, "; ".join(f"{type(e).__name__}: {e}" for e in errors[1:4]))
        raise first
    return [settled[position] for position in sorted(settled)]
