"""The pure parts of generation: filters (hypothesis properties where they are invariants), targets, prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alband.generation.filters import (
    consistency,
    free_filters,
    near_duplicates,
    novelty,
    share_room,
    unit_rows,
)
from alband.generation.prompt import ConsistencyPrompt, GenerationPrompt
from alband.generation.targets import (
    confusion_matrix,
    largest_remainders,
    plan_items,
    weak_spots,
)

rows = arrays(np.float64, st.tuples(st.integers(0, 12), st.integers(1, 5)),
              elements=st.floats(-3, 3, allow_nan=False, width=32))


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(0, 1))
def test_near_duplicate_removal_is_idempotent_and_leaves_rows_floor_apart(x, floor):
    keep = near_duplicates(x, floor)
    kept = x[keep]
    assert near_duplicates(kept, floor).all()  # scanning the kept rows again keeps them all
    u = unit_rows(kept)
    gaps = 1.0 - u @ u.T
    off = ~np.eye(len(kept), dtype=bool)
    assert np.all(gaps[off] >= floor - 1e-12)
    if len(x):
        assert keep[0]  # the first row always stays


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0, 1))
def test_share_room_never_lets_the_synthetic_share_exceed_the_cap_and_is_the_largest_such(n_real, n_syn, share):
    room = share_room(n_real, n_syn, share)
    if share >= 1.0:
        return
    if room > 0:
        assert n_syn + room <= share * (n_real + n_syn + room)
    assert n_syn + room + 1 > share * (n_real + n_syn + room + 1)  # one more would break it


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 20), st.floats(0.0, 0.95), st.integers(1, 12))
def test_free_filters_accept_at_most_the_share_cap(n_real, n_syn, share, n):
    rng = np.random.default_rng(n + n_real)
    x = rng.normal(size=(n, 4))
    verdicts = free_filters(np.zeros(n, np.int64), x, np.zeros((0, 4)), n_classes=2, floor=0.0, n_real=n_real,
                            n_synthetic=n_syn, max_share=share)
    passed = sum(v.passed for v in verdicts)
    assert passed <= share_room(n_real, n_syn, share)
    assert n_syn + passed <= share * (n_real + n_syn + passed) + 1e-9 or passed == 0


def test_free_filters_give_the_first_reason_an_item_fails():
    reference = np.eye(3)[:1]  # the pool: one row along axis 0
    x = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0],
                  [0.0, 0.7, 0.7]])
    labels = np.array([0, 1, 1, 0, 5, 1])
    verdicts = free_filters(labels, x, reference, n_classes=2, floor=0.1, n_real=6, n_synthetic=1, max_share=0.25)
    assert [v.rejected for v in verdicts] == [None, "not_novel", "duplicate", "not_embeddable", "unknown_label",
                                              "share_cap"]
    assert verdicts[1].checks["novelty"] == pytest.approx(0.0)


def test_novelty_and_consistency():
    assert novelty(np.array([[2.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]))[0] == pytest.approx(0.0)
    assert novelty(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))[0] == pytest.approx(1 - np.sqrt(0.5))
    assert novelty(np.ones((2, 2)), np.zeros((0, 2))).tolist() == [1.0, 1.0]
    assert consistency(1, np.array([1, 1, 0, -1])) == 0.5
    assert consistency(1, np.zeros(0)) == 0.0


def test_weak_spots_find_the_confused_pair_and_plan_towards_it():
    n_classes = 3
    val_true = np.array([0, 0, 1, 1, 2, 2, 2])
    val_pred = np.array([1, 1, 0, 1, 2, 2, 2])  # classes 0 and 1 confused, 2 learnt
    val_probs = np.eye(n_classes)[val_pred]
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]])
    queried = np.array([True, False, False, False])
    spots = weak_spots(probs, queried, np.array([2, 2, 2, 0]), n_classes, val_true=val_true, val_probs=val_probs,
                       n_examples=2)
    assert spots.confused_pairs[0] == (0, 1, int(confusion_matrix(val_true, val_pred, 3)[[0, 1], [1, 0]].sum()))
    assert spots.low_confidence.tolist() == [3, 1]  # least confident first, the queried row never
    assert spots.weakness.sum() == pytest.approx(1.0)
    assert spots.weakness[2] < min(spots.weakness[0], spots.weakness[1])
    plan = plan_items(spots, 10, probs)
    counts = np.bincount([p.label for p in plan], minlength=3)
    assert counts.tolist() == largest_remainders(spots.weakness, 10).tolist() and counts.sum() == 10
    assert {p.contrast for p in plan if p.label in (0, 1)} <= {0, 1} and all(
        p.contrast != p.label for p in plan)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(1, 8), elements=st.floats(0, 10, allow_nan=False)), st.integers(0, 50))
def test_largest_remainders_sum_to_n_and_stay_within_one_of_the_quota(weights, n):
    counts = largest_remainders(weights, n)
    total = weights.sum()
    if total <= 0:
        return
    assert counts.sum() == n
    assert np.all(np.abs(counts - n * weights / total) < 1.0 + 1e-9)


def test_generation_prompt_shows_the_plan_and_reads_tolerantly():
    prompt = GenerationPrompt(("pos", "neg"))
    spots = weak_spots(np.array([[0.5, 0.5]]), np.array([False]), np.array([0]), 2, n_examples=1)
    rendered = prompt.render(plan_items(spots, 3, np.array([[0.5, 0.5]])), ["an unsure  text"])
    assert "pos" in rendered.system and "an unsure text" in rendered.messages[0]["content"]
    reply = "Here: " + json.dumps({"items": [{"text": " A ", "label": " POS "}, {"text": "", "label": "neg"},
                                             {"label": "neg"}, {"text": "b", "label": 3}, {"text": "c", "label": "neg"}]})
    items = prompt.parse(reply, 2)
    assert [(i.text, i.label) for i in items] == [("A", 0), ("b", -1)]
    assert prompt.parse("no json at all", 4) == []
    check = ConsistencyPrompt(("pos", "neg"))
    assert check.parse('{"labels": ["neg", "maybe"]}', 3) == [1, -1, -1]
