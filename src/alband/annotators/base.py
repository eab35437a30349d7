"""The annotator interface shared by simulated, LLM and human annotators.

An annotator answers :meth:`Annotator.max_cost_usd` *before* a request (the
amount the budget reserves: an upper bound on the dollars the request can
cost) and :meth:`Annotator.annotate` to make it. The actual cost of the
returned :class:`Annotation` never exceeds the reservation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class Item:
    """One pool item as annotators see it: its pool index, stable id and text."""

    pool_index: int
    item_id: str
    text: str = ""


@dataclass(frozen=True)
class Annotation:
    """The outcome of one annotation request.

    ``label`` is a class index in ``0..C-1``, or ``None`` when the answer was
    invalid (off-label, refusal, unparseable); ``valid`` says which. Money and
    tokens are recorded either way: an invalid answer was still paid for.
    """

    pool_index: int
    item_id: str
    annotator: str
    label: int | None
    cost_usd: float
    input_tokens: int = 0
    output_tokens: int = 0
    confidence: float = float("nan")
    latency_s: float = 0.0
    response_id: str = ""
    raw: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.label is not None


@runtime_checkable
class Annotator(Protocol):
    """Labels items; knows its price. ``name`` is unique within a run."""

    name: str

    def max_cost_usd(self, item: Item) -> float:
        """An upper bound on the dollars :meth:`annotate` can bill for ``item``."""
        ...

    def annotate(self, item: Item) -> Annotation:
        """Label one item (blocking)."""
        ...


def annotate_all(annotator: Annotator, items: Sequence[Item]) -> list[Annotation]:
    """Label items one after another (reference helper for tests)."""
    return [annotator.annotate(item) for item in items]
