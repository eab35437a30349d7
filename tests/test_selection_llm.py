"""LLM selection (ActiveLLM / SelectLLM) through the live loop, against the local wire-format server.

A selection round end to end (charged in the ledger and the budget), replies
with bad indices repaired and counted, a resumed run that does not pay for a
selection twice, and the simulator replaying the recorded selections to the
live run's items and accuracies.
"""

from __future__ import annotations

import json
import re

import jax
import numpy as np
import pytest

from alband.annotators.openai_annotator import OpenAIAnnotator
from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.costs.prices import Price
from alband.loop import LoopSettings, live_rounds
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.selection.llm_selector import KIND_SELECTION, LLMSelector
from alband.selection.prompt import SelectionPrompt
from alband.selection.replay import read_cache, recorded_selections, selected_indices, write_cache
from alband.selection.reply import parse_selection
from alband.simulate import EpisodeConfig, simulate
from alband.store.ledger import Ledger
from alband.task import Task

from fake_llm_server import Reply, fake_llm_server  # noqa: F401 - fixture
from helpers import blobs, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)
BATCH = 6


def _task() -> Task:
    x, y, xt, yt, chars = blobs()
    texts = [f"text {i} " + "w" * int(c % 40) for i, c in enumerate(chars)]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


def test_parse_selection_repairs_and_counts():
    parsed = parse_selection('Sure! {"indices": [3, 3, "x", 99, 0, "2", 5.0, 2.5, 1, 4], "reasons": "r"}', n=10, k=4)
    assert parsed.positions == (2, 1, 4, 0)  # 3, "2", 5.0, 1 (0-based)
    assert parsed.parse_method == "json_object" and parsed.reasons == "r"
    assert parsed.repairs == {"duplicate": 1, "out_of_range": 2, "non_integer": 2, "surplus": 1, "shortfall": 0}
    assert parse_selection("indices: 2, 7 and 2", n=5, k=3).repairs == {
        "duplicate": 1, "out_of_range": 1, "non_integer": 0, "surplus": 0, "shortfall": 2}
    assert parse_selection(None, n=5, k=3).repairs["shortfall"] == 3


def _shown_numbers(prompt: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\[(\d+)\]", prompt, re.MULTILINE)]


def _selector(server, task, *, mode="iterative", shortlist="uniform", n=20):
    llm = OpenAIAnnotator("selector-llm", "test-model", task.label_names, Price(2.0, 10.0),
                          base_url=server.openai_base_url, api_key_env="ALBAND_TEST_KEY", max_tokens=200,
                          max_retries=1)
    prompt = SelectionPrompt("cot", label_names=task.label_names)
    return LLMSelector("selector", llm, prompt, ids=task.ids, texts=task.texts, seed=3, n_candidates=n,
                       shortlist=make_policy(shortlist) if shortlist not in ("uniform", "kmeans") else shortlist,
                       mode=mode, fallback=make_policy("random"))


def _reply(request) -> Reply:
    """Picks numbers 1, 2, 3 with a repeat, a word and an invented number: three to fill."""
    shown = _shown_numbers(request.prompt_text)
    assert shown == list(range(1, len(shown) + 1))
    return Reply(text=json.dumps({"reasons": "diverse", "indices": [2, 2, "three", 999, 1, 3]}))


def _cot_reply(request) -> Reply:
    """:func:`_reply`, after checking the prompt is chain-of-thought with the label set."""
    assert "The labels are: a, b, c" in request.prompt_text and "step by step" in request.prompt_text
    return _reply(request)


def _run(task, ledger_path, selector, budget=5.0):
    settings = LoopSettings(LEARNER, make_policy("entropy"), BATCH, BATCH, 4, seed=3, budget_usd=budget)
    model = llm_annotator()
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(3).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(ledger_path, create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd(),
                                  selector=selector))
        rows = ledger.rows()
    return settings, model, events, rows


@pytest.mark.parametrize("shortlist", ["margin", "kmeans"])
def test_selection_rounds_end_to_end_repaired_charged_replayed(tmp_path, fake_llm_server, monkeypatch, shortlist):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.responder = _cot_reply
    task = _task()
    selector = _selector(fake_llm_server, task, shortlist=shortlist)
    settings, model, events, rows = _run(task, tmp_path / "ledger.sqlite", selector)
    charges = [r for r in rows if r.kind == KIND_SELECTION]
    assert len(charges) == len(events) == 5 == fake_llm_server.request_count
    for row, event, record in zip(charges, events, selector.records):
        assert row.status == "settled" and row.cost_usd > 0 and row.cost_usd <= row.reserved_usd
        extra = row.extra
        assert extra["repairs"] == {"duplicate": 1, "out_of_range": 1, "non_integer": 1, "surplus": 0, "shortfall": 3}
        assert extra["picked"] == [extra["candidates"][1], extra["candidates"][0], extra["candidates"][2]]
        assert len(extra["filled"]) == 3 and extra["fallback"] == "random"
        bought = [task.ids[i] for i in event.proposed]
        assert bought == extra["picked"] + extra["filled"] == record.picked + record.filled
        assert len(set(bought)) == BATCH
    label_dollars = sum(r.cost_usd for r in rows if r.kind == "label")
    assert events[-1].spent_usd == pytest.approx(label_dollars + sum(r.cost_usd for r in charges))

    # Resume: the whole run again over the same ledger: nothing asked of the server, same items.
    again = _selector(fake_llm_server, task, shortlist=shortlist)
    _, _, events2, rows2 = _run(task, tmp_path / "ledger.sqlite", again)
    assert fake_llm_server.request_count == 5 and len(rows2) == len(rows)
    assert [e.proposed for e in events2] == [e.proposed for e in events]
    assert {r.outcome for r in again.records} == {"reused"}

    # The simulator replays the recorded selections (via a cache file) to the live run.
    with Ledger.open(tmp_path / "ledger.sqlite", create=False, read_only=True) as ledger:
        records = recorded_selections(ledger)
    write_cache(records, tmp_path / "selections.jsonl")
    chosen = selected_indices(read_cache(tmp_path / "selections.jsonl"), 3, task.ids, n_initial=BATCH,
                              batch_size=BATCH, n_rounds=4)
    trace = simulate(EpisodeConfig(LEARNER, settings.policy, BATCH, BATCH, 4), task.episode_data(), model, 5.0,
                     jax.random.PRNGKey(3), chosen)
    sim_items = [np.asarray(trace.initial_index).tolist()] + np.asarray(trace.query_index).tolist()
    assert sim_items == [e.proposed for e in events]
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy), atol=1e-6)


def test_cold_start_selects_round_zero_only_and_budget_counts(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.responder = lambda request: Reply(
        text=json.dumps({"indices": list(range(1, BATCH + 1)), "reasons": "first ones"}))
    task = _task()
    selector = _selector(fake_llm_server, task, mode="cold_start")
    _, _, events, rows = _run(task, tmp_path / "ledger.sqlite", selector)
    assert fake_llm_server.request_count == 1
    (charge,) = [r for r in rows if r.kind == KIND_SELECTION]
    assert charge.round == 0 and charge.extra["repairs"]["shortfall"] == 0
    assert [task.ids[i] for i in events[0].proposed] == charge.extra["candidates"][:BATCH]


def test_a_refused_selection_call_leaves_the_batch_to_the_fallback(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.default_reply = Reply(status=400)
    task = _task()
    selector = _selector(fake_llm_server, task, mode="cold_start")
    _, _, events, rows = _run(task, tmp_path / "ledger.sqlite", selector)
    (skipped,) = [r for r in rows if r.kind == KIND_SELECTION and r.status == "skipped"]
    assert selector.records[0].outcome == "skipped" and len(selector.records[0].filled) == BATCH
    assert len(set(events[0].proposed)) == BATCH


_BASE = """
[data]
source = "table"
path = "reviews.csv"

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 2
initial_labels = 8

[budget]
usd = 1.0

[annotators.sim]
kind = "simulated"

[selector]
model = "m"
"""


@pytest.mark.parametrize("extra,message", [
    ('mode = "both"', "[selector] mode must be one of cold_start, iterative"),
    ('prompt = "fancy"', "[selector] prompt must be one of plain, cot"),
    ("k = 32", "[selector] k = 32 must equal [loop] initial_labels = 8"),
    ('mode = "iterative"\nk = 8', "[selector] k = 8 must equal [loop] batch_size = 4"),
    ('shortlist = "margin"', "[selector] shortlist: 'margin' ranks items with a model"),
    ('fallback = "no_such_policy"', "[selector] fallback:"),
    ("n_candidates = 0", "[selector] n_candidates must be >= 1"),
    ('provider = "cohere"', "[selector] provider must be 'openai' or 'anthropic'"),
    ('mode = "meta_arm"', "[selector] mode: 'meta_arm' makes the selector an arm of a meta-bandit"),
    ("temperature = 0.5", "[selector]: unknown key 'temperature'"),
])
def test_selector_section_errors_are_one_line(extra, message):
    from alband.config import parse_config
    from alband.errors import AlbandError

    with pytest.raises(AlbandError) as err:
        parse_config(_BASE + extra + "\n", source="run.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_selector_section_defaults():
    from alband.config import parse_config

    selector = parse_config(_BASE, source="run.toml").selector
    assert (selector.n_candidates, selector.shortlist, selector.prompt, selector.show_labels, selector.mode,
            selector.fallback, selector.llm["max_tokens"]) == (200, "uniform", "plain", True, "cold_start",
                                                                "random", 1024)


def test_selector_as_an_arm_of_the_meta_bandit(tmp_path, fake_llm_server, monkeypatch):
    """albl over (entropy, llm_selection): the LLM is asked, and paid, only in the rounds its arm is drawn."""
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.responder = _reply
    task = _task()
    llm = OpenAIAnnotator("selector-llm", "test-model", task.label_names, Price(2.0, 10.0),
                          base_url=fake_llm_server.openai_base_url, api_key_env="ALBAND_TEST_KEY", max_tokens=200)
    selector = LLMSelector("selector", llm, SelectionPrompt("plain"), ids=task.ids, texts=task.texts, seed=3,
                           n_candidates=20, shortlist=make_policy("margin"), mode="meta_arm",
                           fallback=make_policy("random"), meta_arm=1)
    policy = make_policy("albl", strategies=("entropy", "llm_selection"), horizon=8)
    settings = LoopSettings(LEARNER, policy, BATCH, BATCH, 8, seed=3, budget_usd=5.0)
    model = llm_annotator()
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(3).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd(),
                                  selector=selector))
        records = recorded_selections(ledger)
    selected = [r.round for r in records]
    assert 0 < len(selected) < 8 and 0 not in selected and fake_llm_server.request_count == len(selected)
    chosen = selected_indices(records, 3, task.ids, n_initial=BATCH, batch_size=BATCH, n_rounds=8)
    trace = simulate(EpisodeConfig(LEARNER, policy, BATCH, BATCH, 8), task.episode_data(), model, 5.0,
                     jax.random.PRNGKey(3), chosen)
    assert np.asarray(trace.query_index).tolist() == [e.proposed for e in events[1:]]
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy), atol=1e-6)


def test_selector_meta_arm_config_runs_with_albl():
    from alband.config import parse_config

    text = _BASE.replace('name = "entropy"', 'name = "albl"\nstrategies = ["entropy", "llm_selection"]')
    config = parse_config(text + 'mode = "meta_arm"\nk = 4\n', source="run.toml")
    assert config.selector.mode == "meta_arm"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_selection_reply_is_redacted_before_the_ledger(tmp_path, fake_llm_server, monkeypatch, provider):
    from alband.annotators.anthropic_annotator import AnthropicAnnotator

    secret = "sk-selection-secret-never-written"
    fake_llm_server.api_key = secret
    monkeypatch.setenv("ALBAND_TEST_KEY", secret)
    fake_llm_server.responder = lambda request: Reply(
        text=json.dumps({"indices": [1, 2, 3, 4, 5, 6], "reasons": f"my key is {secret}"}))
    task = _task()
    cls, base = ((OpenAIAnnotator, fake_llm_server.openai_base_url) if provider == "openai"
                 else (AnthropicAnnotator, fake_llm_server.anthropic_base_url))
    llm = cls("selector-llm", "test-model", task.label_names, Price(2.0, 10.0), base_url=base,
              api_key_env="ALBAND_TEST_KEY", max_tokens=200)
    selector = LLMSelector("selector", llm, SelectionPrompt("plain", label_names=None), ids=task.ids,
                           texts=task.texts, seed=3, n_candidates=20, mode="cold_start",
                           fallback=make_policy("random"))
    _, _, events, rows = _run(task, tmp_path / "ledger.sqlite", selector)
    (charge,) = [r for r in rows if r.kind == KIND_SELECTION]
    assert charge.status == "settled" and charge.extra["repairs"]["shortfall"] == 0
    assert charge.cost_usd == pytest.approx((charge.input_tokens * 2.0 + charge.output_tokens * 10.0) / 1e6)
    assert "The labels are" not in fake_llm_server.requests[0].prompt_text  # show_labels off
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the API key was written to {path}"


def test_kmeans_candidates_one_per_cluster_distinct_and_unqueried():
    from alband.selection.candidates import kmeans_candidates, uniform_candidates

    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], np.float32)
    group = np.repeat(np.arange(4), 30)
    x = jax.numpy.asarray(centers[group] + rng.normal(size=(120, 2)).astype(np.float32))
    queried = np.zeros(120, bool)
    queried[:10] = True
    picks = np.asarray(kmeans_candidates(jax.random.PRNGKey(1), x, jax.numpy.asarray(queried), 4))
    assert sorted(group[picks]) == [0, 1, 2, 3] and not queried[picks].any()
    many = np.asarray(kmeans_candidates(jax.random.PRNGKey(2), x, jax.numpy.asarray(queried), 40))
    assert len(set(many.tolist())) == 40 and not queried[many].any()
    uniform = np.asarray(uniform_candidates(jax.random.PRNGKey(3), jax.numpy.asarray(queried), 110))
    assert sorted(uniform.tolist()) == list(range(10, 120))


def test_a_dropped_selection_call_is_charged_in_full_then_retried(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.enqueue(Reply(drop_connection=True))
    fake_llm_server.responder = _reply
    task = _task()
    selector = _selector(fake_llm_server, task, mode="cold_start")
    _, _, events, rows = _run(task, tmp_path / "ledger.sqlite", selector)
    charges = [r for r in rows if r.kind == KIND_SELECTION]
    assert [r.status for r in charges] == ["charged", "settled"] and fake_llm_server.request_count == 2
    assert charges[0].cost_usd == charges[0].reserved_usd  # it may have been billed: counted at its bound
    assert events[-1].spent_usd == pytest.approx(sum(r.cost_usd for r in rows))
    assert [task.ids[i] for i in events[0].proposed] == charges[1].extra["picked"] + charges[1].extra["filled"]


def test_alband_simulate_refuses_a_selector_section():
    from alband.cli.simulate import simulate_config
    from alband.config import parse_config
    from alband.errors import AlbandError

    with pytest.raises(AlbandError, match=r"run.toml: \[selector\]: an LLM's selections cannot be simulated"):
        simulate_config(parse_config(_BASE, source="run.toml"), seeds=1)
