"""The annotator interface shared by simulated, LLM and human annotators.

An annotator answers :meth:`Annotator.max_cost_usd` *before* a request (the
amount the budget reserves: an upper bound on the dollars the request can
cost) and :meth:`Annotator.annotate` to make it. The actual cost of the
returned :class:`~alband.annotation.Annotation` never exceeds the reservation.
:meth:`Annotator.max_cost_usd_many` is the same bound for many texts at once,
as one float64 array, equal item by item to :meth:`Annotator.max_cost_usd`.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from alband.annotation import Annotation, Item
from alband.errors import AlbandError


@runtime_checkable
class Annotator(Protocol):
    """Labels items; knows its price. ``name`` is unique within a run."""

    name: str

    def max_cost_usd(self, item: Item) -> float:
        """An upper bound on the dollars :meth:`annotate` can bill for ``item``."""
        ...

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        """``max_cost_usd`` of the item of each text, float64 dollars, computed at once."""
        ...

    def annotate(self, item: Item) -> Annotation:
        """Label one item (blocking)."""
        ...


def annotate_all(annotator: Annotator, items: Sequence[Item]) -> list[Annotation]:
    """Label items one after another (reference helper for tests)."""
    return [annotator.annotate(item) for item in items]


def checked_texts(texts: Iterable[str]) -> Sequence[str]:
    """``texts`` as a sequence of strings; an :class:`AlbandError` names the first that is not one."""
    if isinstance(texts, (str, bytes)):
        raise AlbandError(f"texts must be a sequence of strings, got a single {type(texts).__name__}")
    if not hasattr(texts, "__len__") or not hasattr(texts, "__getitem__"):
        texts = list(texts)
    bad = next((position for position, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise AlbandError(f"texts[{bad}] must be a string, got {type(texts[bad]).__name__}")
    return texts


def utf8_byte_lengths(texts: Iterable[str]) -> np.ndarray:
    """The UTF-8 byte length of every text, int64 (the token bound of a byte-level BPE)."""
    texts = checked_texts(texts)
    try:
        return np.fromiter(map(len, map(str.encode, texts)), np.int64, count=len(texts))
    except UnicodeEncodeError:
        for position, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise AlbandError(f"texts[{position}] cannot be encoded as UTF-8 ({err.reason} at character "
                                  f"{err.start})") from None
        raise
