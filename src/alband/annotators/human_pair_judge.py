"""A human judge of preference pairs at a terminal (or any text stream): show the pair, read A, B or tie.

The person sees the prompt and the two responses in the item's order
(:mod:`alband.annotators.pair_orders`: in order ``AB`` response A is the
pool's first, in ``BA`` its second) and answers ``a``, ``b``, ``t`` / ``tie``
(when ties are allowed), ``s`` to skip or ``q`` to quit; anything else is
asked again. Answers are recorded in pool terms, exactly as the LLM judge's
(:class:`alband.annotators.pair_judge.LLMPairJudge`):

=========  ===============  ===============  =========================================
answer     order ``AB``     order ``BA``     recorded as
=========  ===============  ===============  =========================================
``a``      label 0 (first)  label 1 (second)  a valid label
``b``      label 1          label 0           a valid label
``tie``    --               --                invalid, ``invalid_reason = "tie"``
``s``      --               --                invalid, ``invalid_reason = "skipped"``
``q``      --               --                nothing recorded, nothing billed; the run stops
=========  ===============  ===============  =========================================

``extra["judge_answer"]`` keeps the verdict as shown (``"A"``, ``"B"``,
``"tie"``) and ``extra["order"]`` the order.

Price, as :class:`alband.annotators.human.HumanAnnotator`'s (whose loop,
clock and serialisation this class keeps): ``price_per_label`` for each
judgement given -- a tie is a judgement (the person compared the two and
found neither better), so it is billed like an answer, as an LLM judge's
tie is paid -- plus ``price_per_hour`` for the time from showing the pair to
the answer, capped at ``max_seconds_per_item``; a skip bills the time only,
a quit nothing. ``max_cost_usd = price_per_label + price_per_hour * t_max / 3600``.

``both_orders`` asks every pair twice, once per order, as two separate paid
requests (:func:`alband.annotators.pair_orders.order_items`), the pair's
label kept only when both agree.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

from alband.annotation import Item
from alband.annotators.human import HumanAnnotator, Reply
from alband.annotators.pair_orders import PAIR_LABELS, label_of_answer, pair_parts, shown_responses

_TIE = {"t", "tie"}


class HumanPairJudge(HumanAnnotator):
    """Asks a person which of two responses is better (module docstring)."""

    _answer_noun = "an answer"

    def __init__(
        self,
        name: str,
        price_per_label: float = 0.0,
        price_per_hour: float | None = None,
        input_stream: TextIO | None = None,
        output_stream: TextIO | None = None,
        *,
        allow_tie: bool = True,
        both_orders: bool = False,
        max_seconds_per_item: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, PAIR_LABELS, price_per_label, price_per_hour, input_stream, output_stream,
                         max_seconds_per_item=max_seconds_per_item, clock=clock)
        self.allow_tie = bool(allow_tie)
        self.both_orders = bool(both_orders)

    def max_cost_usd(self, item: Item) -> float:
        pair_parts(item)  # a plain item is refused before anything is reserved
        return super().max_cost_usd(item)

    def _question(self) -> str:
        tie = ", t = tie" if self.allow_tie else ""
        return f"better response [a, b{tie}, s = skip, q = quit]: "

    def _reply(self, answer: str, item: Item) -> Reply | None:
        command = answer.casefold()
        order = pair_parts(item)[3]
        if command in ("a", "b"):
            verdict = command.upper()
            return Reply(label_of_answer(verdict, order), True, {"judge_answer": verdict, "order": order})
        if self.allow_tie and command in _TIE:
            return Reply(None, True, {"judge_answer": "tie", "order": order, "invalid_reason": "tie"})
        return None

    def _show(self, item: Item, sink: TextIO) -> None:
        prompt, a, b = shown_responses(item)
        sink.write(f"\n[pair {item.pool_index} | id {item.item_id}]\nPrompt:\n{prompt}\n\n"
                   f"Response A:\n{a}\n\nResponse B:\n{b}\n\n")
        sink.flush()
