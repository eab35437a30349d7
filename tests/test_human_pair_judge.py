"""The human judge of pairs: shown in the item's A/B order, answers mapped to pool terms, billed as the human annotator.

The end-to-end runs drive ``alband run`` / ``alband resume`` through a scripted
person who reads what the judge shows (standard output) and answers on
standard input.
"""

from __future__ import annotations

import io
import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.annotation import Item
from alband.annotators.base import Annotator
from alband.annotators.human_pair_judge import HumanPairJudge
from alband.annotators.pair_orders import order_items, pair_item
from alband.cli.main import main
from alband.config import parse_config
from alband.costs import Budget
from alband.errors import AlbandError, AnnotatorError
from alband.live.paid_call import paid_call
from alband.runner import load_task
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger

PROMPT = "How do I keep basil alive indoors?"
FIRST = "Give it six hours of sun and pinch the flower buds."
SECOND = "Basil is a herb."


class Clock:
    """Each answer takes the next scripted number of seconds."""

    def __init__(self, *durations: float) -> None:
        self.now, self.durations, self.started = 50.0, list(durations), False

    def __call__(self) -> float:
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def judge(answers: str, **kwargs) -> tuple[HumanPairJudge, io.StringIO]:
    output = io.StringIO()
    kwargs.setdefault("clock", Clock(*([20.0] * 10)))
    return HumanPairJudge("ann", input_stream=io.StringIO(answers), output_stream=output, **kwargs), output


def shown(output: str) -> tuple[str, str]:
    """The texts shown as A and B in the last pair of ``output``."""
    last = output.rsplit("Response A:\n", 1)[1]
    a, rest = last.split("\n\nResponse B:\n", 1)
    return a, rest.split("\n\n", 1)[0]


@settings(max_examples=60, deadline=None)
@given(first=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
       second=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
       order=st.sampled_from(["AB", "BA"]), letter=st.sampled_from(["a", "b", "A", "B"]))
def test_an_answer_in_the_shown_order_is_the_label_in_pool_order(first, second, order, letter):
    first, second = f"1:{first}", f"2:{second}"  # distinct, whatever hypothesis draws
    item = [i for i in order_items(pair_item(7, "p7", PROMPT, first, second), True) if i.part("order") == order][0]
    annotator, output = judge(f"{letter}\n", price_per_label=0.2)
    answer = annotator.annotate(item)
    a, b = shown(output.getvalue())
    chosen = a if letter.casefold() == "a" else b
    assert chosen == (first, second)[answer.label]  # the response the person picked, in pool terms
    assert {a, b} == {first, second} and (a == first) == (order == "AB")
    assert answer.extra["judge_answer"] == letter.upper() and answer.extra["order"] == order
    assert answer.item_id == f"p7#{order}" and answer.cost_usd == 0.2


def test_the_pair_is_shown_with_its_prompt_and_the_question():
    annotator, output = judge("\nmaybe\nB\n", price_per_label=0.1)
    assert isinstance(annotator, Annotator) and annotator.label_names == ("first", "second")
    answer = annotator.annotate(pair_item(3, "p3", PROMPT, FIRST, SECOND))
    text = output.getvalue()
    assert "[pair 3 | id p3]" in text and f"Prompt:\n{PROMPT}" in text
    assert "better response [a, b, t = tie, s = skip, q = quit]" in text and "not an answer: 'maybe'" in text
    assert answer.label == 1 and answer.raw == "B"


def test_tie_is_a_billed_invalid_judgement_and_skip_bills_time_only():
    annotator, _ = judge("tie\ns\n", price_per_label=0.1, price_per_hour=36.0)
    item = pair_item(3, "p3", PROMPT, FIRST, SECOND)
    tie, skip = annotator.annotate(item), annotator.annotate(item)
    assert tie.label is None and tie.extra["invalid_reason"] == "tie" and tie.extra["judge_answer"] == "tie"
    assert math.isclose(tie.cost_usd, 0.1 + 36.0 * 20.0 / 3600)
    assert skip.label is None and skip.extra["invalid_reason"] == "skipped"
    assert math.isclose(skip.cost_usd, 36.0 * 20.0 / 3600) and skip.extra["billed_seconds"] == 20.0
    assert annotator.max_cost_usd(item) == pytest.approx(0.1 + 36.0 * 300 / 3600)


def test_without_ties_a_tie_is_asked_again_and_a_plain_item_is_refused():
    annotator, output = judge("t\na\n", allow_tie=False)
    answer = annotator.annotate(pair_item(3, "p3", PROMPT, FIRST, SECOND))
    assert answer.label == 0 and "not an answer: 't'" in output.getvalue() and "t = tie" not in output.getvalue()
    with pytest.raises(AlbandError, match="is not a pair"):
        annotator.max_cost_usd(Item(1, "plain", "just a text"))


def test_quit_under_the_ledger_protocol_bills_nothing(tmp_path):
    annotator, _ = judge("q\n", price_per_label=0.5, price_per_hour=10.0)
    item = pair_item(3, "p3", PROMPT, FIRST, SECOND)
    guard = BudgetGuard(Budget(5.0))
    bound = annotator.max_cost_usd(item)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        with pytest.raises(AnnotatorError, match="quit at item 'p3'"):
            paid_call(ledger, guard, annotator, 0, item, bound, guard.reserve(bound))
        assert [r.status for r in ledger.rows()] == ["released"] and ledger.spent_usd() == 0.0
    assert guard.budget.spent_usd == 0.0 and guard.budget.reserved_usd == 0.0


# ------------------------------------------------------------------------------------------------ end to end
FEE, HOURLY = 0.05, 36.0


class Person:
    """Reads the pairs the judge prints and answers from a script: 'helpful', 'tie', 'skip' or 'quit'.

    'helpful' picks the letter showing the response that starts with 'Helpful' (the gold 'chosen').
    """

    def __init__(self, script: list[str]) -> None:
        self.script, self.out, self.asked = list(script), io.StringIO(), []

    def write(self, text: str) -> int:
        return self.out.write(text)

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        if not self.script:
            return ""
        what = self.script.pop(0)
        a, b = shown(self.out.getvalue())
        self.asked.append((a, b, what))
        return {"helpful": "a" if a.startswith("Helpful") else "b", "tie": "t", "skip": "s", "quit": "q"}[what] + "\n"


def _write_config(tmp_path, both_orders: bool):
    rows = [{"id": f"t{i}", "prompt": f"Question {i} about topic {i * 7}?", "chosen": f"Helpful answer {i} with care.",
             "rejected": f"Rude reply {i}."} for i in range(12)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = f"""
[data]
kind = "pairs"
source = "trl"
path = "prefs.jsonl"
embedder = "tfidf"
dims = 4
test_fraction = 0.25

[policy]
name = "pair_uncertainty"

[loop]
batch_size = 2
rounds = 2
initial_labels = 2

[budget]
usd = 1.0

[annotators.judge]
kind = "human"
usd_per_label = {FEE}
usd_per_hour = {HOURLY}
max_seconds_per_item = 10
both_orders = {str(both_orders).lower()}
"""
    (tmp_path / "run.toml").write_text(text)
    return parse_config(text, source=str(tmp_path / "run.toml"), base_dir=tmp_path)


def _drive(monkeypatch, script: list[str], argv: list[str]) -> tuple[int, Person]:
    person = Person(script)
    monkeypatch.setattr(sys, "stdin", person)
    monkeypatch.setattr(sys, "stdout", person)
    return main(argv), person


@pytest.mark.parametrize("both_orders", [False, True])
def test_a_run_with_a_human_judge_quit_and_resumed(tmp_path, monkeypatch, capsys, both_orders):
    config = _write_config(tmp_path, both_orders)
    task = load_task(config)
    run = str(tmp_path / "run")
    asks = 2 if both_orders else 1
    # The first requests: two helpful answers, a tie, a skip, then the person quits.
    code, first = _drive(monkeypatch, ["helpful"] * 2 + ["tie", "skip", "quit"],
                         ["run", str(tmp_path / "run.toml"), "--out", run, "--quiet"])
    assert code == 2 and "quit at item" in capsys.readouterr().err
    assert [what for *_, what in first.asked] == ["helpful"] * 2 + ["tie", "skip", "quit"]
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        rows = ledger.rows()
        assert [r.status for r in rows] == ["settled"] * 4 + ["released"]
        assert ledger.spent_usd() == pytest.approx(sum(r.cost_usd for r in rows[:4]))
        tie, skip = rows[2], rows[3]
    assert tie.label is None and tie.extra["invalid_reason"] == "tie"
    assert tie.cost_usd == pytest.approx(FEE + HOURLY * tie.extra["billed_seconds"] / 3600)
    assert skip.label is None and skip.extra["invalid_reason"] == "skipped"
    assert skip.cost_usd == pytest.approx(HOURLY * skip.extra["billed_seconds"] / 3600) and skip.cost_usd < FEE

    code, second = _drive(monkeypatch, ["helpful"] * 40, ["resume", run, "--quiet"])
    assert code == 0, capsys.readouterr().err
    n_pairs = 2 + 2 * 2
    # Nothing answered is asked again: the resumed run asks the quit request and the rest.
    assert len(first.asked) - 1 + len(second.asked) == asks * n_pairs
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        settled = ledger.settled()
        assert ledger.spent_usd() == pytest.approx(sum(a.cost_usd for a in settled)) and ledger.spent_usd() <= 1.0
    assert len(settled) == asks * n_pairs and len({a.item_id for a in settled}) == len(settled)
    assert len({a.pool_index for a in settled}) == n_pairs
    for a in settled:  # every answer in pool terms: the helpful response is the gold preference
        if a.extra.get("judge_answer") in ("A", "B"):
            assert a.label == int(task.y[a.pool_index]), a.item_id
            order = a.extra["order"]
            assert order == (a.item_id.rsplit("#", 1)[1] if both_orders else "AB")
    orders = {a.extra.get("order") for a in settled if "order" in a.extra}
    assert orders == ({"AB", "BA"} if both_orders else {"AB"})


def test_a_human_judge_of_pairs_without_texts_is_one_line(tmp_path, capsys):
    (tmp_path / "run.toml").write_text("""
[data]
kind = "pairs"
source = "synthetic_candidates"
n_prompts = 10
k = 3
dims = 4

[policy]
name = "random_pairs"

[loop]
batch_size = 2
rounds = 1
initial_labels = 2

[budget]
usd = 1.0

[annotators.judge]
kind = "human"
usd_per_label = 0.1
""")
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[annotators.judge]: a human judge reads each pair's prompt and responses" in err[0]
