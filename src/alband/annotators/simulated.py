"""The simulated annotator of the core, behind the live :class:`~alband.annotators.base.Annotator` protocol.

It answers with the same noisy label, tokens and dollars as
:mod:`alband.simulate.annotator_model` (the functions are the same), so a live
run with simulated annotators buys exactly what ``simulate`` predicts for the
same seed. Research use: it needs the gold labels of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from alband.annotation import Annotation, Item
from alband.annotators.base import utf8_byte_lengths
from alband.simulate.annotator_model import (
    SimulatedAnnotator,
    annotation_cost_usd,
    noisy_labels,
    reserve_usd,
    token_counts,
)


@dataclass
class SimulatedLiveAnnotator:
    """Labels items of a pool whose gold labels are known, through a noise model.

    ``key`` is the run's annotate key (:func:`alband.rounds.run_keys`);
    ``gold``, ``text_chars`` and ``text_bytes`` are per pool index.
    """

    name: str
    model: SimulatedAnnotator
    key: object
    gold: np.ndarray
    text_chars: np.ndarray
    text_bytes: np.ndarray

    def __post_init__(self) -> None:
        # Per-item prices are computed once, vectorised, with the core's float32 arithmetic.
        self._cost = np.asarray(annotation_cost_usd(self.model, jnp.asarray(self.text_chars)), np.float64)
        self._reserve = np.asarray(reserve_usd(self.model, jnp.asarray(self.text_bytes)), np.float64)
        # Every item's answer, drawn once in one vectorised call: the draw is keyed by the
        # pool index, so this equals asking item by item (and the simulator's batches).
        pool = jnp.arange(len(self.gold))
        self._answers = np.asarray(noisy_labels(self.model, self.key, pool, jnp.asarray(self.gold)))
        self._agreement = np.diag(np.asarray(self.model.confusion))
        tokens_in, tokens_out = token_counts(self.model, jnp.asarray(self.text_chars))
        self._tokens_in = np.asarray(tokens_in)
        self._tokens_out = np.asarray(tokens_out)

    def expected_cost_usd(self) -> np.ndarray:
        """Dollars each pool item costs (what the policy sees as ``ctx.cost_usd``)."""
        return self._cost

    def max_cost_usd(self, item: Item) -> float:
        return float(self._reserve[item.pool_index])

    def max_cost_usd_many(self, texts: Sequence[str]) -> np.ndarray:
        """The reservation of each text's item: the core's byte bound on the texts' UTF-8 lengths.

        Equal to :meth:`max_cost_usd` for items whose text is the pool's
        (``text_bytes`` holds the same UTF-8 lengths); elementwise float32
        arithmetic, so the result does not depend on how many texts are asked.
        """
        text_bytes = utf8_byte_lengths(texts).astype(np.int32)
        return np.asarray(reserve_usd(self.model, jnp.asarray(text_bytes)), np.float64)

    def annotate(self, item: Item) -> Annotation:
        i = item.pool_index
        return Annotation(
            pool_index=i,
            item_id=item.item_id,
            annotator=self.name,
            label=int(self._answers[i]),
            cost_usd=float(self._cost[i]),
            input_tokens=int(self._tokens_in[i]),
            output_tokens=int(self._tokens_out[i]),
            confidence=float(self._agreement[self.gold[i]]),
        )
