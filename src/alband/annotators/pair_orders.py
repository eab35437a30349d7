"""A preference pair as a request: its item, the orders it is shown in, and the verdict of both orders.

A pool row of a pair task is (prompt, response shown first, response shown
second); the pool's order is already a fair coin per pair drawn with the
run's key (:mod:`alband.data.pairs`). :func:`pair_item` makes its
:class:`~alband.annotation.Item`: ``parts`` hold ``prompt``, ``first``,
``second`` and ``order``, and ``text`` shows the whole pair to a person (and
contains every part verbatim, so its bytes bound the parts').

``order`` says which response a judge sees as ``A``: ``"AB"`` shows the
pool's first as A, ``"BA"`` its second. Answers are always recorded in pool
terms (label 0 = the pool's first response preferred, 1 = its second), so
two answers to the same pair can be compared whatever order each saw.

**Both orders** (:func:`order_items`). LLM judges favour a position (Zheng
et al. 2023, "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena"; Wang
et al. 2023, "Large language models are not fair evaluators"). Asking
``AB`` and ``BA`` as two separate requests -- two items with their own ids
(``<pair id>#AB``, ``<pair id>#BA``), each reserved, paid and settled on its
own -- and keeping the answer only when both agree cancels a pure position
preference: a judge answering "A" whatever it sees gives the pool's first in
``AB`` and the pool's second in ``BA``, which disagree.
:func:`combine_orders` returns the pair's verdict: the common answer, or
invalid (a tie, a refusal or an off-format answer in either order, or
orders that disagree), with the reason.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from alband.annotation import Annotation, Item
from alband.errors import AlbandError

#: Label names of a pair task, in label-index order (0 = the pool's first response preferred).
PAIR_LABELS = ("first", "second")
ORDERS = ("AB", "BA")
ORDER_SEPARATOR = "#"


def pair_text(prompt: str, first: str, second: str) -> str:
    """The pair as a person reads it (each text verbatim)."""
    return f"Prompt:\n{prompt}\n\nResponse 1 (first):\n{first}\n\nResponse 2 (second):\n{second}"


def pair_item(pool_index: int, pair_id: str, prompt: str, first: str, second: str, order: str = "AB") -> Item:
    """The item of pool row ``pool_index`` shown in ``order`` (module docstring)."""
    if order not in ORDERS:
        raise AlbandError(f"order must be one of {ORDERS}, got {order!r}")
    return Item(pool_index, pair_id, pair_text(prompt, first, second),
                (("prompt", prompt), ("first", first), ("second", second), ("order", order)))


def pair_parts(item: Item) -> tuple[str, str, str, str]:
    """``(prompt, first, second, order)`` of a pair item; an :class:`AlbandError` names what is missing."""
    values = [item.part(name) for name in ("prompt", "first", "second", "order")]
    missing = [name for name, value in zip(("prompt", "first", "second", "order"), values) if value is None]
    if missing:
        raise AlbandError(f"item {item.item_id!r} is not a pair (no part {', '.join(missing)}); "
                          "pair judges take items of a preference task")
    prompt, first, second, order = values
    if order not in ORDERS:
        raise AlbandError(f"item {item.item_id!r}: order must be 'AB' or 'BA', got {order!r}")
    text_bytes = len(item.text.encode("utf-8"))
    if text_bytes < sum(len(t.encode("utf-8")) for t in (prompt, first, second)):
        raise AlbandError(f"item {item.item_id!r}: its text is shorter than its prompt and responses; the text "
                          "must contain them verbatim (alband.annotators.pair_orders.pair_item)")
    return prompt, first, second, order


def shown_responses(item: Item) -> tuple[str, str, str]:
    """``(prompt, A, B)``: the pair as a judge sees it in the item's order (A is shown first)."""
    prompt, first, second, order = pair_parts(item)
    return (prompt, first, second) if order == "AB" else (prompt, second, first)


def label_of_answer(answer: str, order: str) -> int:
    """The pool-terms label of a judge's ``"A"`` or ``"B"`` given in ``order`` (0 = the pool's first preferred).

    ``A`` is the pool's first response in order ``AB`` and its second in ``BA``.
    """
    if answer not in ("A", "B") or order not in ORDERS:
        raise AlbandError(f"a pair answer is 'A' or 'B' in order 'AB' or 'BA', got {answer!r} in {order!r}")
    return 0 if (answer == "A") == (order == "AB") else 1


def order_items(item: Item, both_orders: bool) -> list[Item]:
    """The requests that judge ``item``: itself (order AB), or one item per order with ids ``<id>#AB``, ``<id>#BA``."""
    if not both_orders:
        return [item]
    return [Item(item.pool_index, f"{item.item_id}{ORDER_SEPARATOR}{order}", item.text,
                 tuple((key, order if key == "order" else text) for key, text in item.parts))
            for order in ORDERS]


def pair_id_of(item_id: str) -> str:
    """The pair id of a request's item id (``<pair id>#AB`` -> ``<pair id>``)."""
    head, separator, tail = item_id.rpartition(ORDER_SEPARATOR)
    return head if separator and tail in ORDERS else item_id


class PairVerdict(NamedTuple):
    """A pair's answer after its orders: ``label`` in pool terms or ``None`` with ``reason``."""

    label: int | None
    reason: str = ""
    confidence: float = float("nan")


def combine_orders(answers: Sequence[Annotation]) -> PairVerdict:
    """The verdict of a pair's answers (one per order asked; module docstring)."""
    if not answers:
        raise AlbandError("a pair verdict needs at least one answer")
    invalid = [a for a in answers if a.label is None]
    if invalid:
        return PairVerdict(None, invalid[0].extra.get("invalid_reason", "invalid answer"))
    labels = {a.label for a in answers}
    if len(labels) > 1:
        return PairVerdict(None, "the orders disagree (position bias)")
    confidences = [a.confidence for a in answers]
    return PairVerdict(answers[0].label, "", min(confidences) if all(c == c for c in confidences) else float("nan"))
