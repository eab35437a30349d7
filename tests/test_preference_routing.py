"""Routing preference judgments between a cheap and a strong judge (and a gold 'human' judge).

``alband simulate`` with ``[routing]`` on a ``[data] kind = "pairs"`` config routes
stacked simulated judges; a live run of the same config buys the same pairs from
the same judges with the same answers, item for item (ties included), and the
money rules hold under random prices, budgets and routers.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.annotators.simulated_judge import SimulatedLivePairJudge
from alband.cli.simulate import simulate_main
from alband.config import parse_config
from alband.costs.prices import Price
from alband.cpu_threads import one_blas_thread
from alband.errors import AlbandError
from alband.loop import LoopSettings, RoutingSettings, live_rounds
from alband.models.registry import make_learner
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.routing import AuditConfig, ContextualTSConfig, bts_router, cascade_router, contextual_ts_router, \
    fixed_router, random_router
from alband.runner import load_task, loop_settings, simulated_pair_judge_model, start_run
from alband.simulate import EpisodeConfig, simulate, stack_annotators
from alband.simulate.judge_model import make_pair_judge
from alband.simulate.routed import arm_key
from alband.store.ledger import Ledger

NAMES = ("cheap", "strong", "human")
CONFIG = """
[data]
kind = "pairs"
source = "synthetic_candidates"
n_prompts = 40
k = 4
dims = 6
seed = 1

[policy]
name = "pair_bald"

[loop]
batch_size = 6
rounds = 5
initial_labels = 6
seed = {seed}

[budget]
usd = {budget}

[annotators.cheap]
kind = "simulated"
input_usd_per_mtok = 0.5
output_usd_per_mtok = 1.5
prompt_tokens = 400
output_tokens = 10
max_output_tokens = 40
beta = 1.0
position_bias = 0.2
tie_rate = 0.15

[annotators.strong]
kind = "simulated"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
prompt_tokens = 400
output_tokens = 10
max_output_tokens = 40
beta = 4.0
tie_rate = 0.05
label_weight = 0.9

[annotators.human]
kind = "simulated"
usd_per_label = 0.0003  # a gold "human", about the price of the cheap judge

[routing]
annotators = ["cheap", "strong", "human"]
{routing}
"""
ROUTINGS = {
    "cascade": 'router = "cascade"\nauditor = "human"\naudit_rate = 0.5\nmin_count = 2\nlabel_weight = "audited"',
    "contextual_ts": 'router = "contextual_ts"\nauditor = "human"\naudit_rate = 0.5',
    "bts": 'router = "bts"\nfeedback = "gold"',
}
#: Budgets at which each router pays several judges; BTS's runs out in the last round (the pacing
#: routers spend up to their budget without running out).
BUDGETS = {"bts": 0.01, "cascade": 0.0095, "contextual_ts": 0.0095}


def _config(tmp_path, router: str, budget: float, seed: int = 3):
    text = CONFIG.format(seed=seed, budget=budget, routing=ROUTINGS[router])
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path, parse_config(text, source=str(path), base_dir=tmp_path)


def _simulated(config, budget: float):
    """The config's routed episode built from the core's pieces, as ``alband simulate`` builds it."""
    task = load_task(config)
    settings_ = loop_settings(config, task)
    routing = config.routing
    episode = EpisodeConfig(settings_.learner, settings_.policy, settings_.n_initial, settings_.batch_size,
                            settings_.n_rounds, router=routing.build(),
                            auditor=-1 if routing.auditor is None else routing.arm(routing.auditor),
                            label_weight=routing.label_weight)
    judges = stack_annotators([simulated_pair_judge_model(config.annotators[name]) for name in NAMES])
    with one_blas_thread():  # as alband run and alband simulate run it
        return task, jax.block_until_ready(simulate(episode, task.episode_data(), judges, budget,
                                                    jax.random.PRNGKey(config.loop.seed)))


def _rows(first, rest):
    return [np.asarray(first).tolist()] + np.asarray(rest).tolist()


@pytest.mark.parametrize("router", ["bts", pytest.param("cascade", marks=pytest.mark.slow),
                                    pytest.param("contextual_ts", marks=pytest.mark.slow)])
def test_routed_preference_run_buys_what_simulate_predicts_pair_for_pair(tmp_path, router):
    budget = BUDGETS[router]
    path, config = _config(tmp_path, router, budget)
    task, trace = _simulated(config, budget)

    events = start_run(config, tmp_path / "run", quiet=True)
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        rows = ledger.rows()
        spent = ledger.spent_usd()

    index = _rows(trace.initial_index, trace.query_index)
    accepted = _rows(trace.initial_accepted, trace.query_accepted)
    arm = _rows(trace.initial_arm, trace.query_arm)
    query_label = np.asarray(trace.query_label)
    for r, event in enumerate(events):
        assert event.proposed == index[r] and event.accepted == accepted[r], f"round {r}"
        assert event.label_arms == arm[r], f"round {r}"
        if r:
            bought = np.asarray(accepted[r])
            np.testing.assert_array_equal(np.asarray(event.labels)[bought], query_label[r - 1][bought])
    n = len(events)
    np.testing.assert_allclose([e.spent_usd for e in events], np.asarray(trace.spent_usd)[:n], rtol=1e-5)
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy)[:n], atol=1e-6)
    exhausted = bool(trace.exhausted[n - 1])
    assert (events[-1].stop_reason == "budget exhausted") == exhausted and (exhausted or n == 6)
    if router == "bts":  # the budget ran out in the middle of a batch
        assert exhausted and not all(events[-1].accepted)

    # Money: within the budget, one settled row per (pair, judge), every label arm paid.
    assert spent <= budget and all(r.status == "settled" for r in rows)
    paid = [(r.pool_index, r.annotator) for r in rows]
    assert len(paid) == len(set(paid))
    for event in events:
        for i, a, k in zip(event.proposed, event.accepted, event.label_arms):
            assert (k >= 0) == a and (not a or (i, NAMES[k]) in paid)
    # Several judges were paid, and a tie (a paid invalid answer) was among the answers.
    assert {"cheap", "human"} <= {r.annotator for r in rows}
    assert any(r.label is None and r.extra.get("invalid_reason") == "tie" for r in rows)


@pytest.mark.slow
def test_alband_simulate_routes_the_judges_of_a_pairs_config(tmp_path, capsys):
    path, config = _config(tmp_path, "bts", BUDGETS["bts"])
    _, trace = _simulated(config, BUDGETS["bts"])
    assert simulate_main([str(path), "--seeds", "1", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["routing"]["annotators"] == list(NAMES) and out["routing"]["feedback"] == "gold"
    np.testing.assert_allclose(out["spent_usd_mean"], np.asarray(trace.spent_usd, np.float64), rtol=1e-6)
    np.testing.assert_allclose(out["test_accuracy_mean"], np.asarray(trace.test_accuracy, np.float64), atol=1e-6)


def test_a_stack_mixes_no_judges_with_annotators():
    from alband.simulate import make_simulated_annotator

    judge = make_pair_judge(Price(usd_per_label=0.01))
    with pytest.raises(AlbandError, match="one kind"):
        stack_annotators([judge, make_simulated_annotator(2, Price(usd_per_label=0.01))])
    stacked = stack_annotators([judge, make_pair_judge(Price(usd_per_label=0.02), tie_rate=0.3)])
    assert stacked.tie_rate.shape == (2,) and stacked.annotator.confusion.shape == (2, 2, 2)


# ------------------------------------------------------------------------------------ money under random settings
_TASK_TEXT = CONFIG.format(seed=0, budget=1.0, routing=ROUTINGS["bts"])
TASK = load_task(parse_config(_TASK_TEXT, source="pairs.toml"))
LEARNER = make_learner("bradley_terry", l2=1.0)
POLICY = make_policy("pair_uncertainty")
AUDITS = AuditConfig(rate=0.5, share=1.0)
ROUTERS = [fixed_router(0), random_router(), cascade_router((0, 1, 2)),
           contextual_ts_router(ContextualTSConfig(audit=AUDITS)), bts_router(AUDITS)]


def _judges(seed: int, prices, tie_rates):
    models = [make_pair_judge(Price(prices[0], 4 * prices[0]), beta=1.0, position_bias=0.2, tie_rate=tie_rates[0],
                              prompt_tokens=300, output_tokens=8, max_output_tokens=32),
              make_pair_judge(Price(prices[1], 5 * prices[1]), beta=4.0, tie_rate=tie_rates[1], prompt_tokens=300,
                              output_tokens=8, max_output_tokens=32),
              make_pair_judge(Price(usd_per_label=prices[2]))]
    annotate = run_keys(seed).annotate
    return [SimulatedLivePairJudge(name, model, arm_key(annotate, k), TASK.y, TASK.text_chars, TASK.text_bytes,
                                   TASK.true_margin) for k, (name, model) in enumerate(zip(NAMES, models))]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(router=st.integers(0, len(ROUTERS) - 1), budget=st.floats(1e-4, 0.05), seed=st.integers(0, 50),
       cheap=st.floats(0.05, 1.0), strong=st.floats(1.0, 20.0), human=st.floats(1e-5, 1e-2),
       ties=st.tuples(st.floats(0.0, 0.5), st.floats(0.0, 0.2)),
       feedback=st.sampled_from(["audit", "gold"]), weight=st.sampled_from(["none", "configured", "audited"]))
def test_routed_judges_stay_within_budget_and_buy_nothing_twice(
        tmp_path_factory, router, budget, seed, cheap, strong, human, ties, feedback, weight):
    settings_ = LoopSettings(LEARNER, POLICY, 4, 4, 3, seed=seed, budget_usd=budget)
    routing = RoutingSettings(ROUTERS[router], auditor=2 if feedback == "audit" else -1, feedback=feedback,
                              label_weight=weight)
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    with Ledger.open(path, create=True) as ledger:
        events = list(live_rounds(settings_, TASK, _judges(seed, (cheap, strong, human), ties), ledger,
                                  routing=routing, aux=TASK.aux))
        rows = ledger.rows()
        spent = ledger.spent_usd()
    bought = [a for e in events for a in e.bought]
    assert spent <= budget
    paid = [(r.pool_index, r.annotator) for r in rows]
    assert len(paid) == len(set(paid)) == len(bought) and all(r.status == "settled" for r in rows)
    assert spent == pytest.approx(sum(a.cost_usd for a in bought), rel=1e-12, abs=1e-15)
    for event in events:  # a label is the answer of the arm the event names, in pool terms, or -1
        answers = {(a.pool_index, a.annotator): a.label for a in bought}
        for i, a, k, label in zip(event.proposed, event.accepted, event.label_arms, event.labels):
            assert (k >= 0) == a
            if a:
                assert label == (-1 if answers[(i, NAMES[k])] is None else answers[(i, NAMES[k])])


def test_a_live_run_routes_pairs_between_a_simulated_and_an_llm_judge(tmp_path, monkeypatch):
    from alband.cli.main import main
    from fake_llm_server import FakeLLMServer, Reply

    def prefer_helpful(request) -> Reply:  # the response starting 'Helpful', wherever it is shown
        shown_a = request.prompt_text.split("<response_a>")[1].split("</response_a>")[0]
        return Reply(text=json.dumps({"label": "A" if "Helpful" in shown_a else "B", "confidence": 0.9}))

    monkeypatch.setenv("ALBAND_TEST_ROUTED_JUDGE_KEY", "test-key")
    rows = [{"id": f"t{i}", "prompt": f"Question {i} about topic {i * 7}?", "chosen": f"Helpful answer {i} with care.",
             "rejected": f"Rude reply {i}."} for i in range(30)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeLLMServer(api_key="test-key") as server:
        server.responder = prefer_helpful
        (tmp_path / "run.toml").write_text(f"""
[data]
kind = "pairs"
source = "trl"
path = "prefs.jsonl"
embedder = "tfidf"
dims = 4
test_fraction = 0.2

[policy]
name = "pair_uncertainty"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4

[budget]
usd = 1.0

[annotators.cheap]
kind = "simulated"
usd_per_label = 0.0001
flip_rate = 0.3
tie_rate = 0.2

[annotators.llm]
kind = "openai"
model = "judge-model"
base_url = "{server.openai_base_url}"
api_key_env = "ALBAND_TEST_ROUTED_JUDGE_KEY"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[routing]
router = "contextual_ts"
annotators = ["cheap", "llm"]
auditor = "llm"
audit_rate = 0.5
""")
        assert main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
        n_requests = len(server.requests)
    config = parse_config((tmp_path / "run.toml").read_text(), source="run.toml", base_dir=tmp_path)
    task = load_task(config)
    with Ledger.open(tmp_path / "run" / "ledger.sqlite", create=False, read_only=True) as ledger:
        settled = ledger.settled()
        assert ledger.spent_usd() <= 1.0 and all(r.status == "settled" for r in ledger.rows())
    by_judge = {name: [a for a in settled if a.annotator == name] for name in ("cheap", "llm")}
    assert by_judge["cheap"] and len(by_judge["llm"]) == n_requests > 0
    # The LLM judge's answers, given in the shown order, are the gold preference in pool terms.
    assert all(a.label == int(task.y[a.pool_index]) for a in by_judge["llm"])
    assert len({(a.pool_index, a.annotator) for a in settled}) == len(settled)
