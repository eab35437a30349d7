"""A stopping rule in the live loop stops at the round the simulator predicts for the same seed;
the [stopping] config section is validated and drives a run."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.config import parse_config
from alband.errors import AlbandError
from alband.loop import LoopSettings, live_rounds
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.simulate import EpisodeConfig, episode_history, simulate
from alband.stopping import make_rule, stopping_round
from alband.store.ledger import Ledger
from alband.task import Task

from helpers import blobs, llm_annotator

LEARNER = SoftmaxRegression(3, max_iter=50)
ROUNDS = 12


def _task() -> Task:
    x, y, xt, yt, chars = blobs(n=150, n_test=80)
    texts = ["w" * int(c) for c in chars]
    return Task("blobs", np.array([f"item-{i}" for i in range(len(y))]), texts, x, y, xt, yt, ("a", "b", "c"))


RULE_CASES = [
    ("stabilizing_predictions", {"threshold": 0.9, "window": 2}),
    ("classification_change", {"max_change_rate": 0.02}),
    ("overall_uncertainty", {"threshold": 0.105}),
    ("max_uncertainty", {"threshold": 0.45}),
    ("cost_optimum", {"cost_per_error": 0.01, "n_future": 100.0, "patience": 2}),
    ("cost_optimum_validation", {"cost_per_error": 0.01, "n_future": 100.0, "patience": 2}),
    ("cost_to_go", {"cost_per_error": 0.01, "n_future": 100.0, "window": 2}),
    ("max_labels", {"max_labels": 40}),
    ("validation_plateau", {"window": 2, "min_delta": 0.01}),
]


@pytest.mark.parametrize("name,params", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_live_loop_stops_where_simulate_predicts(tmp_path, name, params):
    task = _task()
    rule = make_rule(name, **params)
    held = np.arange(0, 80, 2)
    validation = (task.x_test[held], task.y_test[held])
    model = llm_annotator()
    seed = 5
    stop_set = 60
    data = task.episode_data()._replace(x_val=jax.numpy.asarray(validation[0]), y_val=jax.numpy.asarray(validation[1]))
    config = EpisodeConfig(LEARNER, make_policy("margin"), 6, 5, ROUNDS, stop_set_size=stop_set)
    trace = simulate(config, data, model, 10.0, jax.random.PRNGKey(seed))
    predicted = int(stopping_round(rule.flags(episode_history(trace))))
    assert 0 < predicted < ROUNDS, f"test setup: {name} should fire mid-run, fired at {predicted}"

    settings = LoopSettings(LEARNER, config.policy, 6, 5, ROUNDS, seed=seed, budget_usd=10.0,
                            stopping=rule, stop_set_size=stop_set)
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(seed).annotate, task.y, task.text_chars,
                                       task.text_bytes)
    with Ledger.open(tmp_path / "ledger.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd(),
                                  validation=validation))
    assert events[-1].round == predicted
    assert events[-1].stop_reason == name
    assert all(e.stop_reason is None for e in events[:-1])
    np.testing.assert_allclose([e.test_accuracy for e in events], np.asarray(trace.test_accuracy)[: predicted + 1],
                               atol=1e-6)


def test_the_budget_still_stops_a_run_with_a_rule(tmp_path):
    task = _task()
    model = llm_annotator()
    settings = LoopSettings(LEARNER, make_policy("entropy"), 6, 5, ROUNDS, seed=1, budget_usd=0.004,
                            stopping=make_rule("stabilizing_predictions"), stop_set_size=60)
    annotator = SimulatedLiveAnnotator("llm", model, run_keys(1).annotate, task.y, task.text_chars, task.text_bytes)
    with Ledger.open(tmp_path / "l.sqlite", create=True) as ledger:
        events = list(live_rounds(settings, task, annotator, ledger, expected_cost_usd=annotator.expected_cost_usd()))
    assert events[-1].stop_reason == "budget exhausted"


def test_a_rule_that_needs_validation_refuses_to_run_without_it(tmp_path):
    task = _task()
    settings = LoopSettings(LEARNER, make_policy("entropy"), 6, 5, 3, seed=1, budget_usd=1.0,
                            stopping=make_rule("validation_plateau"))
    annotator = SimulatedLiveAnnotator("llm", llm_annotator(), run_keys(1).annotate, task.y, task.text_chars,
                                       task.text_bytes)
    with Ledger.open(tmp_path / "l.sqlite", create=True) as ledger:
        with pytest.raises(AlbandError, match="needs a validation set"):
            list(live_rounds(settings, task, annotator, ledger))


BASE = """
[data]
source = "bbc_news"
[policy]
name = "entropy"
[loop]
annotator = "llm"
[budget]
usd = 1.0
[annotators.llm]
kind = "simulated"
usd_per_label = 0.001
"""


def test_stopping_section_is_parsed_and_validated():
    config = parse_config(BASE + '[stopping]\nrule = "stabilizing_predictions"\nthreshold = 0.98\nstop_set_size = 300\n',
                          source="run.toml")
    assert config.stopping.rule == "stabilizing_predictions"
    assert config.stopping.params == {"threshold": 0.98}
    assert config.stopping.stop_set_size == 300 and config.stopping.validation_rows == 0
    assert parse_config(BASE, source="run.toml").stopping is None

    cases = {
        '[stopping]\nthreshold = 0.9\n': "run.toml: [stopping] rule is required",
        '[stopping]\nrule = "stabilising"\n': "unknown stopping rule 'stabilising'",
        '[stopping]\nrule = "max_labels"\nmax_lables = 3\n': "unknown key 'max_lables'",
        '[stopping]\nrule = "stabilizing_predictions"\nwindow = 0\n': "'window' must be an integer >= 1",
        '[stopping]\nrule = "stabilizing_predictions"\nthreshold = "high"\n': "threshold must be float/int",
        '[stopping]\nrule = "validation_plateau"\n': "validation_rows: rule 'validation_plateau' needs a validation set",
        '[stopping]\nrule = "budget_exhausted"\nstop_set_size = 0\n': "stop_set_size must be >= 1",
    }
    for text, message in cases.items():
        with pytest.raises(AlbandError) as err:
            parse_config(BASE + text, source="run.toml")
        assert message.replace("float/int", "int/float") in str(err.value) or message in str(err.value), str(err.value)


def test_validation_rows_are_held_out_of_the_test_set():
    from alband.runner import hold_out_validation, loop_settings

    task = _task()
    config = parse_config(BASE + '[stopping]\nrule = "validation_plateau"\nvalidation_rows = 30\nwindow = 2\n',
                          source="run.toml")
    reduced, (x_val, y_val) = hold_out_validation(config, task)
    assert len(y_val) == 30 and len(reduced.y_test) == len(task.y_test) - 30
    rows = {tuple(r) for r in np.round(task.x_test, 6)}
    assert {tuple(r) for r in np.round(x_val, 6)} | {tuple(r) for r in np.round(reduced.x_test, 6)} == rows
    settings = loop_settings(config, reduced)
    assert settings.stopping.name == "validation_plateau" and settings.stopping.params.window == 2.0
    too_many = parse_config(BASE + '[stopping]\nrule = "validation_plateau"\nvalidation_rows = 80\n', source="run.toml")
    with pytest.raises(AlbandError, match=r"run.toml: \[stopping\] validation_rows must be between 1 and 79"):
        hold_out_validation(too_many, task)
    plain, none = hold_out_validation(parse_config(BASE, source="run.toml"), task)
    assert none is None and plain is task
