"""What an annotation request asks and what it returns: :class:`Item` and :class:`Annotation`.

Plain records shared by the annotators (which take an :class:`Item` and
return an :class:`Annotation`), the store (whose ledger records each
:class:`Annotation` with its dollars) and the loop. They live outside
:mod:`alband.annotators` so that the store need not import the annotators.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One pool item as annotators see it: its pool index, stable id and text.

    ``parts`` holds the named texts of a structured request, in order, for
    annotators that ask something other than "label this text" (a preference
    judge reads ``prompt``, ``first``, ``second`` and ``order``); ``text`` is
    then the whole request as a person reads it and contains every part
    verbatim, so its UTF-8 bytes bound the parts'. Plain items have none.
    """

    pool_index: int
    item_id: str
    text: str = ""
    parts: tuple[tuple[str, str], ...] = ()

    def part(self, name: str) -> str | None:
        """The text of the part called ``name``, or ``None``."""
        return next((text for key, text in self.parts if key == name), None)


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
