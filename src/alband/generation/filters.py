"""The filters a generated item passes before it is trained on (pure), in the order they run.

The free filters run first, so that no money is spent checking an item that
would be dropped anyway; the paid ones (:mod:`.generator`) run on the
survivors only:

1. **known label**: the label the generator gave is one of the task's;
2. **embeddable**: the item's embedding is not the zero vector (a TF-IDF
   embedder gives zero to a text with no word of the corpus' vocabulary: it
   would carry nothing to the learner);
3. **novelty floor**: with unit rows, ``novelty(i) = 1 - max_j cos(x_i, r_j)``
   over the reference rows ``r`` (the pool and the synthetic items accepted in
   earlier rounds); the item passes when ``novelty(i) >= floor``. A floor of
   0 only drops exact copies' direction (cosine 1 gives novelty 0, which
   passes: use a floor > 0 to drop them);
4. **near-duplicates**: the items of the batch are scanned in order and item
   ``i`` is kept when ``1 - cos(x_i, x_j) >= floor`` for every earlier kept
   ``j`` (:func:`near_duplicates`). Greedy, so idempotent: the kept items are
   pairwise at least ``floor`` apart, and scanning them again keeps them all;
5. **synthetic-share cap**: with ``r`` real labels and ``s`` synthetic items
   already accepted, at most :func:`share_room` more are accepted, the
   largest ``t`` with ``s + t <= share * (r + s + t)``; the cap holds when
   the item is accepted and only loosens as real labels are bought;
6. **self-consistency** (paid, :mod:`.generator`): ``k`` independent
   labellings of the item by the generating model; the item passes when the
   share of them equal to its label is at least ``min_agreement``
   (:func:`consistency`);
7. **verifier** (paid): a second annotator's label equals the item's.

The share cap counts items that pass filters 1-4, before the paid checks:
an item rejected later frees nothing in the same round, so the cap can only
be undershot, never exceeded. What the filters do not guarantee is written
in theory/llm_selection.md, "Generation".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

REASONS = ("unknown_label", "not_embeddable", "not_novel", "duplicate", "share_cap", "inconsistent",
           "verifier_disagrees", "unaffordable")


@dataclass
class Verdicts:
    """What the filters found for one item; ``rejected`` is the first filter it failed (None: accepted)."""

    rejected: str | None = None
    checks: dict = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        if self.rejected is None:
            self.rejected = reason

    @property
    def passed(self) -> bool:
        return self.rejected is None


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float64."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embeddable(x: np.ndarray) -> np.ndarray:
    """(n,) bool: rows that are not the zero vector."""
    return np.linalg.norm(np.asarray(x, np.float64), axis=1) > 0


def novelty(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(n,) ``1 - max_j cos(x_i, reference_j)``; 1 against an empty reference."""
    if len(reference) == 0:
        return np.ones(len(x))
    return 1.0 - np.max(unit_rows(x) @ unit_rows(reference).T, axis=1)


def near_duplicates(x: np.ndarray, floor: float, candidates: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool kept mask: rows scanned in order, kept when at least ``floor`` from every earlier kept row.

    Only ``candidates`` (a bool mask, default all) are scanned; the others are
    not kept. Idempotent (module docstring).
    """
    u = unit_rows(x)
    keep = np.zeros(len(u), bool)
    scan = np.ones(len(u), bool) if candidates is None else np.asarray(candidates, bool)
    for i in np.flatnonzero(scan):
        kept = np.flatnonzero(keep)
        if kept.size == 0 or np.all(1.0 - u[kept] @ u[i] >= floor):
            keep[i] = True
    return keep


def share_room(n_real: int, n_synthetic: int, max_share: float) -> int:
    """How many more synthetic items keep ``synthetic / (real + synthetic) <= max_share`` (module docstring)."""
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must be in [0, 1], got {max_share!r}")
    if max_share >= 1.0:
        return 2**31 - 1
    t = max(0, math.floor(max_share * n_real / (1.0 - max_share)) - n_synthetic + 1)
    while t > 0 and (n_synthetic + t) > max_share * (n_real + n_synthetic + t):  # exact on the floats used
        t -= 1
    return t


def consistency(label: int, samples: np.ndarray) -> float:
    """The share of ``samples`` (the ``k`` labellings of one item, -1 for none) equal to ``label``; 0 for k = 0."""
    samples = np.asarray(samples)
    return float(np.mean(samples == label)) if samples.size else 0.0


def free_filters(labels: np.ndarray, x: np.ndarray, reference: np.ndarray, *, n_classes: int, floor: float,
                 n_real: int, n_synthetic: int, max_share: float) -> list[Verdicts]:
    """Filters 1-5 of the module docstring on one batch: one :class:`Verdicts` per item, in order."""
    labels = np.asarray(labels, np.int64)
    verdicts = [Verdicts() for _ in range(len(labels))]
    known = (labels >= 0) & (labels < n_classes)
    can_embed = embeddable(x) if len(labels) else np.zeros(0, bool)
    new = novelty(x, reference) if len(labels) else np.zeros(0)
    alive = known & can_embed & (new >= floor)
    unique = near_duplicates(x, floor, alive) if len(labels) else np.zeros(0, bool)
    room = share_room(n_real, n_synthetic, max_share)
    for i, v in enumerate(verdicts):
        v.checks["novelty"] = round(float(new[i]), 6)
        if not known[i]:
            v.reject("unknown_label")
        elif not can_embed[i]:
            v.reject("not_embeddable")
        elif new[i] < floor:
            v.reject("not_novel")
        elif not unique[i]:
            v.reject("duplicate")
        elif room <= 0:
            v.reject("share_cap")
        else:
            room -= 1
    return verdicts
