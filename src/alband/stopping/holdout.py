"""The hold-out split: a labelled validation set carved out of the test rows, the same way everywhere.

``validation_split(n_rows, n_validation)`` holds out ``n_validation`` of the
``n_rows`` test rows, drawn with a fixed seed (so the live loop, the
simulator and the study hold out the same rows); accuracy is then measured on
the other rows only, so a rule reading the validation accuracy never sees the
rows the reported accuracy comes from. The validation labels are treated as
given (not charged to the labelling budget), which favours the rules that use
them: say so when comparing.
"""

from __future__ import annotations

import numpy as np

from alband.errors import AlbandError


def validation_split(n_rows: int, n_validation: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(validation rows, remaining rows)``, each sorted, from a seeded permutation of ``range(n_rows)``."""
    if not 0 < n_validation < n_rows:
        raise AlbandError(
            f"validation_rows must be between 1 and {n_rows - 1} (the test set has {n_rows} rows), got {n_validation}"
        )
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[:n_validation]), np.sort(order[n_validation:])
