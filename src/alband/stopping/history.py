"""The round history a stopping rule reads: one array per signal, index ``r`` = after round ``r``.

Round 0 is the seed set; rounds ``1..R`` are query rounds. Every array has
shape ``(R+1,)`` (a leading seed axis is added by ``vmap``). Signals that do
not exist at round 0 (kappa, change rate, batch uncertainty) are NaN there;
``validation_accuracy`` is NaN everywhere when the run has no validation set.
Comparisons with NaN are False, so a rule never fires on a missing signal.

The simulator builds it with :func:`alband.simulate.episode_history`; the live
loop appends one row per round and pads the rest (rules are causal: the flag
at round ``r`` depends only on rows ``0..r``, so padding never changes it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class StopHistory(NamedTuple):
    """Per-round signals of one run (module docstring)."""

    n_labeled: Array  # (R+1,) int32 valid labels bought so far
    n_queried: Array  # (R+1,) int32 annotations paid for so far
    spent_usd: Array  # (R+1,) float32 dollars spent so far
    exhausted: Array  # (R+1,) bool the budget could not cover an item at or before this round
    validation_accuracy: Array  # (R+1,) float32, NaN without a validation set
    kappa: Array  # (R+1,) float32 Cohen's kappa of rounds r-1 and r on the stop set, NaN at 0
    change_rate: Array  # (R+1,) float32 share of stop-set predictions that changed, NaN at 0
    mean_confidence: Array  # (R+1,) float32 mean max-probability on the stop set
    batch_uncertainty: Array  # (R+1,) float32 max least-confidence of the proposed batch, NaN at 0

    @property
    def n_rounds(self) -> int:
        """``R`` (the last index)."""
        return int(self.n_labeled.shape[-1]) - 1


_DTYPES = {
    "n_labeled": np.int32,
    "n_queried": np.int32,
    "spent_usd": np.float32,
    "exhausted": bool,
}


def history_from_rows(rows: list[dict], n_rounds: int) -> StopHistory:
    """A history of length ``n_rounds + 1`` from the rows observed so far, padded with the last row.

    ``rows[r]`` holds the :class:`StopHistory` fields of round ``r`` (plain
    numbers). Padding repeats the last row: causal rules give the same flag
    at every observed round whatever the padding.
    """
    if not rows:
        raise ValueError("a history needs at least round 0")
    if len(rows) > n_rounds + 1:
        raise ValueError(f"{len(rows)} rows for a history of {n_rounds} rounds")
    padded = rows + [rows[-1]] * (n_rounds + 1 - len(rows))
    return StopHistory(**{
        name: jnp.asarray(np.array([row[name] for row in padded], dtype=_DTYPES.get(name, np.float32)))
        for name in StopHistory._fields
    })
