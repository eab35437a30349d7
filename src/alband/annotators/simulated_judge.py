"""The simulated preference judge of the core, behind the live :class:`~alband.annotators.base.Annotator` protocol.

It answers every pair as :func:`alband.simulate.judge_model.judge_answers`
does for the same key (flip rate, position bias for the pair as shown,
Bradley-Terry margin noise where the true margin is known, ties), and prices
it as the judge's :class:`~alband.simulate.annotator_model.SimulatedAnnotator`,
so a live preference run with a simulated judge buys what the simulator
predicts, pair for pair. A tie is a paid invalid answer
(``invalid_reason = "tie"``). Research use: it needs the pool's gold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.simulate.judge_model import PairJudge, answer_probabilities, judge_answers


@dataclass
class SimulatedLivePairJudge:
    """Answers pairs of a pool whose gold preferences are known (module docstring).

    ``key`` is the run's annotate key; ``gold``, ``true_margin`` (or None),
    ``text_chars`` and ``text_bytes`` are per pool index.
    """

    name: str
    judge: PairJudge
    key: object
    gold: np.ndarray
    text_chars: np.ndarray
    text_bytes: np.ndarray
    true_margin: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._priced = SimulatedLiveAnnotator(self.name, self.judge.annotator, self.key, self.gold,
                                              self.text_chars, self.text_bytes)
        pool = jnp.arange(len(self.gold))
        margin = None if self.true_margin is None else jnp.asarray(self.true_margin)
        self._answers = np.asarray(judge_answers(self.judge, self.key, pool, jnp.asarray(self.gold), margin))
        p_first = np.asarray(answer_probabilities(self.judge, jnp.asarray(self.gold), margin))
        self._confidence = np.where(self._answers == 0, p_first, 1.0 - p_first)

    def expected_cost_usd(self) -> np.ndarray:
        return self._priced.expected_cost_usd()

    def max_cost_usd(self, item: Item) -> float:
        return self._priced.max_cost_usd(item)

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        return self._priced.max_cost_usd_many(texts)

    @property
    def label_names(self) -> tuple[str, ...]:
        from alband.annotators.pair_orders import PAIR_LABELS

        return PAIR_LABELS

    def answers(self) -> np.ndarray:
        """Every pool pair's answer (0 first, 1 second, -1 tie), as the simulator draws them."""
        return self._answers

    def annotate(self, item: Item) -> Annotation:
        i = item.pool_index
        priced = self._priced.annotate(item)
        answer = int(self._answers[i])
        if answer < 0:
            return Annotation(i, item.item_id, self.name, None, priced.cost_usd, priced.input_tokens,
                              priced.output_tokens, extra={"invalid_reason": "tie"})
        return Annotation(i, item.item_id, self.name, answer, priced.cost_usd, priced.input_tokens,
                          priced.output_tokens, confidence=float(self._confidence[i]))
