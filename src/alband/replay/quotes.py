"""Price quotes a router may see before paying: cost as a linear function of prompt length.

A realised cost in an outcome matrix is ``(input tokens x p_in + output tokens
x p_out)``, and the output length of an answer is only known after the call;
on GSM8K, for instance, longer GPT-4 answers are more often wrong. Letting a
router see the realised cost before deciding would leak that. So routers see
a *quote*: for each arm ``k`` and task ``t``, the least-squares line

    quote_ik = alpha_kt + beta_kt * chars_i

fitted to the arm's realised costs on the task's items (``chars_i`` = length
of the item's text), clipped to the range of those costs. It stands in for
"price list x counted input tokens + typical output": per-item input length is
known before the call, per-item output length is not. With fewer than 3 items
or a constant length, the quote is the task mean. The replay still charges the
realised cost.
"""

from __future__ import annotations

import numpy as np

from alband.replay.data import OutcomeMatrix


def price_quotes(matrix: OutcomeMatrix) -> np.ndarray:
    """(n, K) float64 quotes (0 where the arm is unavailable); module docstring."""
    chars = np.array([len(t) for t in matrix.texts], dtype=np.float64)
    tasks = np.array(matrix.tasks, dtype=object)
    quotes = np.zeros_like(matrix.cost_usd)
    for task in sorted(set(matrix.tasks)):
        rows = np.flatnonzero(tasks == task)
        for k in range(matrix.n_arms):
            sel = rows[matrix.available[rows, k]]
            if sel.size == 0:
                continue
            c = matrix.cost_usd[sel, k]
            x = chars[sel]
            if sel.size >= 3 and np.ptp(x) > 0:
                design = np.stack([np.ones_like(x), x], 1)
                coef, *_ = np.linalg.lstsq(design, c, rcond=None)
                q = coef[0] + coef[1] * x
            else:
                q = np.full_like(c, c.mean())
            quotes[sel, k] = np.clip(q, c.min(), c.max())
    return quotes
