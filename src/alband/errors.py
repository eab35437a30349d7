"""The one exception type users see: a readable message naming the problem.

The CLI turns an :class:`AlbandError` into one line on stderr and exit code 2.
Messages name the file, field or row at fault, e.g.
``data/items.csv, row 17: label 'sprots' is not in the label set``.
"""

from __future__ import annotations


class AlbandError(Exception):
    """A user-facing error: bad input, a bad config, a broken run directory."""


class BudgetExhausted(AlbandError):
    """The budget cannot cover the largest possible cost of the next request."""


class AnnotatorError(AlbandError):
    """An annotation attempt failed and billed nothing: release its reservation.

    Raised on an HTTP error (429/5xx/4xx), when the server cannot be reached,
    when the API key is missing, or when a human quits. The message names the
    annotator and the cause, never a key. ``retry`` says what the caller
    (:mod:`alband.live.paid_call`) does next: ``"transient"`` (408, 409, 429,
    5xx, no connection: try again after a backoff, at least ``retry_after_s``
    when the server said so), ``"item"`` (this item's request is refused, e.g.
    400: skip the item) or ``"fatal"`` (a missing key, 401/403/404, a human
    who quits: stop the run).
    """

    RETRY_KINDS = ("transient", "item", "fatal")

    def __init__(self, message: str, *, status_code: int | None = None, retry: str = "fatal",
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        if retry not in self.RETRY_KINDS:
            raise ValueError(f"retry must be one of {self.RETRY_KINDS}, got {retry!r}")
        self.status_code = status_code
        self.retry = retry
        self.retry_after_s = retry_after_s
