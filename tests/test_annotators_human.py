"""The human annotator with StringIO streams and a scripted clock."""

from __future__ import annotations

import io
import math

import pytest

from alband.annotation import Item
from alband.annotators.base import Annotator
from alband.annotators.concurrent import annotate_concurrently
from alband.annotators.human import HumanAnnotator
from alband.annotators.llm_common import AnnotatorError
from alband.costs import Budget
from alband.errors import AlbandError
from alband.store.budget_guard import BudgetGuard

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
ITEM = Item(4, "n-4", "Central bank raises rates again")


class Clock:
    """Advances by the scripted durations, one per call pair (start, end)."""

    def __init__(self, *durations: float) -> None:
        self.now = 100.0
        self.durations = list(durations)
        self.started = False

    def __call__(self) -> float:
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def human(answers: str, **kwargs) -> tuple[HumanAnnotator, io.StringIO]:
    output = io.StringIO()
    kwargs.setdefault("clock", Clock(*([12.0] * 10)))
    return HumanAnnotator("alice", LABELS, input_stream=io.StringIO(answers), output_stream=output,
                          **kwargs), output


@pytest.mark.parametrize("answer, label", [("3\n", 2), ("business\n", 2), ("  SCI-TECH \n", 3), ("1\n", 0)])
def test_number_or_name(answer, label):
    annotator, output = human(answer, price_per_label=0.08)
    assert isinstance(annotator, Annotator)
    annotation = annotator.annotate(ITEM)
    assert annotation.label == label and annotation.cost_usd == 0.08
    shown = output.getvalue()
    assert ITEM.text in shown and "n-4" in shown
    for number, name in enumerate(LABELS, start=1):
        assert f"{number}) {name}" in shown


def test_bad_answers_are_asked_again():
    annotator, output = human("\n7\npolitics\n2\n", price_per_label=0.1)
    annotation = annotator.annotate(ITEM)
    assert annotation.label == 1 and annotation.raw == "2"
    assert "not a label: '7'" in output.getvalue() and "not a label: 'politics'" in output.getvalue()


def test_skip_is_invalid_and_bills_only_time():
    annotator, _ = human("s\n", price_per_label=0.1, price_per_hour=36.0)
    annotation = annotator.annotate(ITEM)
    assert annotation.label is None and annotation.extra["invalid_reason"] == "skipped"
    assert math.isclose(annotation.cost_usd, 36.0 * 12.0 / 3600)


def test_hourly_cost_is_capped_and_bounded():
    annotator, _ = human("2\n2\n", price_per_hour=30.0, max_seconds_per_item=60.0, clock=Clock(45.0, 500.0))
    bound = annotator.max_cost_usd(ITEM)
    assert math.isclose(bound, 30.0 * 60 / 3600)
    quick, slow = annotator.annotate(ITEM), annotator.annotate(ITEM)
    assert math.isclose(quick.cost_usd, 30.0 * 45 / 3600) and quick.latency_s == 45.0
    assert slow.cost_usd == bound and slow.latency_s == 500.0 and slow.extra["billed_seconds"] == 60.0


def test_quit_and_closed_input_raise_and_bill_nothing():
    annotator, _ = human("q\n", price_per_label=1.0)
    guard = BudgetGuard(Budget(10.0))
    with pytest.raises(AnnotatorError, match="quit at item 'n-4'"):
        annotate_concurrently(annotator, [ITEM], guard, on_settled=lambda *a: None)
    assert guard.budget.spent_usd == 0.0 and guard.budget.reserved_usd == 0.0
    annotator, _ = human("")
    with pytest.raises(AnnotatorError, match="input closed"):
        annotator.annotate(ITEM)


def test_a_batch_of_humans_under_a_budget():
    annotator, _ = human("1\n2\n3\n4\n1\n", price_per_label=0.25)
    batch = [Item(k, f"i{k}", f"text {k}") for k in range(5)]
    guard = BudgetGuard(Budget(0.8))
    settled = []
    result = annotate_concurrently(annotator, batch, guard, max_workers=3,
                                   on_settled=lambda item, a, r: settled.append(a.cost_usd))
    assert len(result) == 3 and sum(settled) == guard.budget.spent_usd == 0.75
    assert sorted(a.label for a in result) == [0, 1, 2]


@pytest.mark.parametrize("kwargs, message", [
    ({"label_names": ["only"]}, "at least 2 labels"),
    ({"label_names": ["a", "A."]}, "distinct"),
    ({"price_per_label": -1}, "price_per_label"),
    ({"price_per_hour": float("inf")}, "price_per_hour"),
    ({"max_seconds_per_item": 0}, "max_seconds_per_item"),
])
def test_configuration_errors(kwargs, message):
    arguments = {"name": "h", "label_names": LABELS, **kwargs}
    with pytest.raises(AlbandError, match=message):
        HumanAnnotator(**arguments)
