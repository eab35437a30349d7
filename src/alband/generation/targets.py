"""Where the learner is weak, and which labels the generated items of a round should carry (pure).

Three signals, each a vector over the ``C`` classes, summed into the
*weakness* ``w`` of each class:

* **confusion** (the validation set, when the run has one): with ``M`` the
  confusion matrix (``M[t, p]`` validation items of true class ``t``
  predicted ``p``), the off-diagonal mass of the symmetrised matrix
  ``S = M + M'`` normalised to sum 1; class ``c`` gets ``sum_j S[c, j]``
  (its share of the errors, as truth or as prediction), and the most
  confused pairs are the largest entries of ``S`` above the diagonal;
* **low confidence**: the ``n_examples`` unqueried pool items of smallest
  max-probability (least confidence, Lewis & Gale 1994); class ``c`` gets
  the share of them the learner predicts as ``c``, and their texts are shown
  to the generator as the region to write near;
* **under-representation**: with ``n_c`` the labels of class ``c`` bought so
  far, ``u_c = max(0, 1/C - n_c / sum n)`` normalised to sum 1 (all zero when
  the labels are balanced).

``w = confusion + low_confidence + under_representation + 1/C`` (the last term
keeps every class reachable), and the ``n`` items of a round are given
labels by largest remainders of ``n * w / sum w`` (Hamilton's method: each
class gets ``floor`` of its quota, the rest go to the largest fractional
parts, ties to the lower class index), so the plan is deterministic. Each
planned item names the class it should be told apart from: for a class in a
confused pair, its partner in the most confused pair it belongs to;
otherwise the class the learner most often predicts instead on the
low-confidence items, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeakSpots:
    """What :func:`weak_spots` found (module docstring)."""

    weakness: np.ndarray  # (C,) float64, sums to 1
    confused_pairs: tuple[tuple[int, int, int], ...]  # (class a, class b, errors between them), most first
    low_confidence: np.ndarray  # (m,) pool indices, least confident first
    class_counts: np.ndarray  # (C,) labels bought per class


@dataclass(frozen=True)
class PlannedItem:
    """One item the generator is asked for: its label and the class it should be told apart from (-1: none)."""

    label: int
    contrast: int


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``M[t, p]`` = number of items of true class ``t`` predicted ``p`` (int64, (C, C))."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def _normalised(v: np.ndarray) -> np.ndarray:
    total = float(np.sum(v))
    return v / total if total > 0 else np.zeros_like(v, np.float64)


def weak_spots(probs: np.ndarray, queried: np.ndarray, train_labels: np.ndarray, n_classes: int, *,
               val_true: np.ndarray | None = None, val_probs: np.ndarray | None = None,
               n_examples: int = 5, n_pairs: int = 3) -> WeakSpots:
    """The weakness of each class, the confused pairs and the least confident items (module docstring).

    ``probs``: (N, C) the learner's probabilities on the pool; ``queried``: (N,)
    bool; ``train_labels``: the valid labels bought so far; ``val_true`` /
    ``val_probs``: the validation labels and the learner's probabilities on
    them (None without a validation set).
    """
    probs = np.asarray(probs, np.float64)
    confusion = np.zeros(n_classes)
    pairs: list[tuple[int, int, int]] = []
    if val_true is not None and val_probs is not None and len(val_true):
        m = confusion_matrix(val_true, np.argmax(val_probs, axis=1), n_classes)
        s = m + m.T
        np.fill_diagonal(s, 0)
        confusion = _normalised(s.sum(axis=1).astype(np.float64))
        upper = [(int(s[a, b]), a, b) for a in range(n_classes) for b in range(a + 1, n_classes) if s[a, b] > 0]
        pairs = [(a, b, count) for count, a, b in sorted(upper, key=lambda t: (-t[0], t[1], t[2]))[:n_pairs]]
    free = np.flatnonzero(~np.asarray(queried, bool))
    confidence = probs[free].max(axis=1) if free.size else np.zeros(0)
    order = np.lexsort((free, confidence))[:n_examples]
    low = free[order]
    low_conf = _normalised(np.bincount(np.argmax(probs[low], axis=1), minlength=n_classes).astype(np.float64)) \
        if low.size else np.zeros(n_classes)
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=n_classes)[:n_classes]
    total = counts.sum()
    under = _normalised(np.maximum(0.0, 1.0 / n_classes - counts / total)) if total else np.zeros(n_classes)
    weakness = _normalised(confusion + low_conf + under + 1.0 / n_classes)
    return WeakSpots(weakness, tuple(pairs), low, counts)


def largest_remainders(weights: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to ``n``, proportional to ``weights`` (Hamilton's method, module docstring)."""
    quota = n * _normalised(np.asarray(weights, np.float64))
    counts = np.floor(quota).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        order = np.lexsort((np.arange(len(quota)), -(quota - counts)))
        counts[order[:rest]] += 1
    return counts


def plan_items(spots: WeakSpots, n: int, probs: np.ndarray | None = None) -> list[PlannedItem]:
    """The ``n`` items of a round: labels by largest remainders of the weakness, each with its contrast class."""
    n_classes = len(spots.weakness)
    partner = {}
    for a, b, _ in spots.confused_pairs:
        partner.setdefault(a, b)
        partner.setdefault(b, a)
    fallback = -1
    if probs is not None and spots.low_confidence.size:
        predicted = np.argmax(np.asarray(probs)[spots.low_confidence], axis=1)
        fallback = int(np.bincount(predicted, minlength=n_classes).argmax())
    plan = []
    for label, count in enumerate(largest_remainders(spots.weakness, n).tolist()):
        contrast = partner.get(label, fallback if fallback != label else -1)
        plan += [PlannedItem(label, contrast)] * count
    return plan
