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
    """An annotation request failed and billed nothing: release its reservation.

    Raised after the SDK's own retries are exhausted (HTTP 429/5xx/4xx), when
    the server cannot be reached, when the API key is missing, or when a
    human quits. The message names the annotator and the cause, never a key.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
