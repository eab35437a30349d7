"""A human annotator at a terminal (or any text stream): show the item, read a label.

The item is shown with numbered labels; the answer is a number, a label name
(case and punctuation ignored), ``s`` to skip (recorded as invalid) or ``q``
to quit (raises :class:`AnnotatorError`: nothing is billed and the caller
stops). Anything else is asked again. Commands are checked first: a label
literally named ``s`` or ``q`` is chosen by its number.

Price: ``price_per_label`` dollars for each label given, plus, with
``price_per_hour``, the time from showing the item to the answer, capped at
``max_seconds_per_item``::

    cost = price_per_label * [answered] + price_per_hour * min(t, t_max) / 3600

so ``max_cost_usd = price_per_label + price_per_hour * t_max / 3600`` bounds
it. A skip bills the time but not the per-label fee. Calls are serialised
(one person answers one item at a time), so the annotator is safe to use
from :func:`alband.annotators.concurrent.annotate_concurrently`.

A subclass changes what is shown (:meth:`HumanAnnotator._show`), the
question (:meth:`HumanAnnotator._question`) and how an answer reads
(:meth:`HumanAnnotator._reply`, a :class:`Reply`); the loop, the commands,
the clock and the price are this class's
(:class:`alband.annotators.human_pair_judge.HumanPairJudge` shows a pair).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Callable, NamedTuple, Sequence, TextIO

import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.base import checked_texts
from alband.annotators.llm_common import AnnotatorError
from alband.annotators.prompts import normalize_label
from alband.errors import AlbandError

_SKIP = {"s", "skip"}
_QUIT = {"q", "quit"}


class Reply(NamedTuple):
    """How one answer is recorded: its label (None: invalid), whether the per-label fee is due, extra fields.

    A label is ``Reply(label, True)``; a skip ``Reply(None, False,
    {"invalid_reason": "skipped"})``; a judgement that gives no label (a
    pair judge's tie) ``Reply(None, True, {"invalid_reason": ...})``.
    """

    label: int | None
    fee_due: bool
    extra: dict = {}


SKIPPED = Reply(None, False, {"invalid_reason": "skipped"})


class HumanAnnotator:
    """Asks a person for labels through ``input_stream`` / ``output_stream``."""

    def __init__(
        self,
        name: str,
        label_names: Sequence[str],
        price_per_label: float = 0.0,
        price_per_hour: float | None = None,
        input_stream: TextIO | None = None,
        output_stream: TextIO | None = None,
        *,
        max_seconds_per_item: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise AlbandError(f"annotator name must be non-empty text, got {name!r}")
        names = tuple(label_names)
        if len(names) < 2:
            raise AlbandError(f"annotator {name!r}: needs at least 2 labels, got {list(names)!r}")
        keys = [normalize_label(label) for label in names]
        if not all(keys) or len(set(keys)) != len(keys):
            raise AlbandError(f"annotator {name!r}: label names must be non-empty and distinct once case and "
                              f"punctuation are ignored, got {list(names)!r}")
        for field_name, value in (("price_per_label", price_per_label), ("price_per_hour", price_per_hour)):
            if value is None and field_name == "price_per_hour":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
                raise AlbandError(f"annotator {name!r}: {field_name} must be a finite number of dollars >= 0, "
                                  f"got {value!r}")
        if isinstance(max_seconds_per_item, bool) or not isinstance(max_seconds_per_item, (int, float)) \
                or not (0 < max_seconds_per_item < math.inf):
            raise AlbandError(f"annotator {name!r}: max_seconds_per_item must be a finite number > 0, "
                              f"got {max_seconds_per_item!r}")
        self.name = name
        self.label_names = names
        self.price_per_label = float(price_per_label)
        self.price_per_hour = None if price_per_hour is None else float(price_per_hour)
        self.max_seconds_per_item = float(max_seconds_per_item)
        self._input = input_stream
        self._output = output_stream
        self._clock = clock
        self._lookup = {key: index for index, key in enumerate(keys)}
        self._lock = threading.Lock()

    def max_cost_usd(self, item: Item) -> float:
        return self._bound_usd()

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`max_cost_usd` of each text's item: the same bound for every item."""
        return np.full(len(checked_texts(texts)), self._bound_usd(), np.float64)

    def annotate(self, item: Item) -> Annotation:
        with self._lock:
            source = self._input if self._input is not None else sys.stdin
            sink = self._output if self._output is not None else sys.stdout
            self._show(item, sink)
            started = self._clock()
            while True:
                sink.write(self._question())
                sink.flush()
                line = source.readline()
                if line == "":
                    raise AnnotatorError(f"annotator {self.name!r}: input closed before an answer for item "
                                         f"{item.item_id!r}")
                answer = line.strip()
                command = answer.casefold()
                if not answer:
                    continue
                if command in _QUIT:
                    raise AnnotatorError(f"annotator {self.name!r}: quit at item {item.item_id!r}")
                reply = SKIPPED if command in _SKIP else self._reply(answer, item)
                if reply is not None:
                    break
                sink.write(f"  not {self._answer_noun}: {answer!r}\n")
            elapsed = max(0.0, self._clock() - started)
        billed_seconds = min(elapsed, self.max_seconds_per_item)
        cost = (self.price_per_label if reply.fee_due else 0.0) + self._time_cost(billed_seconds)
        return Annotation(
            pool_index=item.pool_index, item_id=item.item_id, annotator=self.name, label=reply.label,
            cost_usd=cost, latency_s=elapsed, raw=answer, extra={**reply.extra, "billed_seconds": billed_seconds},
        )

    def _bound_usd(self) -> float:
        return self.price_per_label + self._time_cost(self.max_seconds_per_item)

    def _time_cost(self, seconds: float) -> float:
        return 0.0 if self.price_per_hour is None else self.price_per_hour * seconds / 3600.0

    _answer_noun = "a label"

    def _question(self) -> str:
        return f"label [1-{len(self.label_names)} or name, s = skip, q = quit]: "

    def _reply(self, answer: str, item: Item) -> Reply | None:
        """The reply an answer (not a command) gives, or None when it is not understood (asked again)."""
        if answer.isdigit():
            number = int(answer)
            label = number - 1 if 1 <= number <= len(self.label_names) else None
        else:
            label = self._lookup.get(normalize_label(answer))
        return None if label is None else Reply(label, True)

    def _show(self, item: Item, sink: TextIO) -> None:
        sink.write(f"\n[item {item.pool_index} | id {item.item_id}]\n{item.text}\n")
        for number, label in enumerate(self.label_names, start=1):
            sink.write(f"  {number}) {label}\n")
        sink.flush()
