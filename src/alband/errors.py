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
    """An annotation request failed and billed nothing (after the SDK's retries)."""
