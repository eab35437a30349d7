"""``alband simulate CONFIG`` with a ``[routing]`` section: the routed annotators are simulated, not ``[loop] annotator``.

The expected episode is built here by hand (router, stacked annotator models,
auditor arm, label weights) and run with :func:`alband.simulate.simulate`; the
command must report the same dollars per round for the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from alband.cli.simulate import format_rules_table, simulate_main
from alband.cli.main import main
from alband.config import parse_config
from alband.costs.prices import Price
from alband.models import SoftmaxRegression
from alband.policies import make_policy
from alband.routing import AuditConfig, CascadeConfig, cascade_router
from alband.runner import load_task
from alband.simulate import EpisodeConfig, make_simulated_annotator, simulate, stack_annotators
from helpers import three_simulated_annotators_toml

N_INITIAL, BATCH, ROUNDS, SEED = 4, 4, 4, 7
BUDGET = 1.0
BASE = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "margin"

[loop]
batch_size = {batch}
rounds = {rounds}
initial_labels = {initial}
seed = {seed}
{loop_extra}

[budget]
usd = {budget}

""" + three_simulated_annotators_toml() + """
{extra}
"""
CASCADE = """[routing]
router = "cascade"
annotators = ["cheap", "strong", "human"]
auditor = "human"
audit_rate = 0.5
min_count = 2
label_weight = "audited"
"""


def _write(tmp_path: Path, *, routing: str = CASCADE, loop_extra: str = "", annotators: str = "") -> Path:
    lines = ["text,label"]
    for k in range(60):
        lines.append(f"a good and lovely film number {k},pos" if k % 2 else f"a bad and dull film number {k},neg")
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "run.toml"
    path.write_text(BASE.format(batch=BATCH, rounds=ROUNDS, initial=N_INITIAL, seed=SEED, budget=BUDGET,
                                loop_extra=loop_extra, extra=annotators + "\n" + routing))
    return path


def _expected_trace(path: Path):
    """The routed episode of the config, assembled by hand from the core's pieces."""
    task = load_task(parse_config(path.read_text(), source=str(path), base_dir=path.parent))
    tokens = {"prompt_tokens": 120, "output_tokens": 8, "max_output_tokens": 32}
    models = [
        make_simulated_annotator(2, Price(input_usd_per_mtok=0.15, output_usd_per_mtok=0.60), flip_rate=0.25, **tokens),
        make_simulated_annotator(2, Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0), flip_rate=0.05,
                                 label_weight=0.9, **tokens),
        make_simulated_annotator(2, Price(usd_per_label=0.001)),
    ]
    router = cascade_router((0, 1, 2), CascadeConfig(min_count=2, audit=AuditConfig(rate=0.5)))
    config = EpisodeConfig(SoftmaxRegression(2, 1.0, 200, 1e-5), make_policy("margin"), N_INITIAL, BATCH, ROUNDS,
                           router=router, auditor=2, label_weight="audited")
    return simulate(config, task.episode_data(), stack_annotators(models), BUDGET, jax.random.PRNGKey(SEED))


def _simulate_json(path: Path, capsys, *extra: str) -> dict:
    assert simulate_main([str(path), "--seeds", "1", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_routes_with_the_config_router_and_matches_the_core(tmp_path, capsys):
    path = _write(tmp_path)
    out = _simulate_json(path, capsys)
    assert out["routing"] == {"router": "cascade", "router_name": "cascade", "annotators": ["cheap", "strong", "human"],
                              "auditor": "human", "feedback": "audit", "label_weight": "audited"}
    assert out["seeds"] == [SEED] and out["rounds"] == ROUNDS
    assert "routed by cascade over cheap, strong, human" in format_rules_table(out).splitlines()[0]

    trace = _expected_trace(path)
    spent = np.asarray(trace.spent_usd, np.float64)
    np.testing.assert_allclose(out["spent_usd_mean"], spent, rtol=1e-6)
    np.testing.assert_allclose(out["test_accuracy_mean"], np.asarray(trace.test_accuracy, np.float64), atol=1e-6)
    for name, seed_row in out["per_seed"].items():  # each rule's dollars are the episode's at its stopping round
        assert seed_row["spent_usd"][0] == pytest.approx(spent[seed_row["round"][0]], rel=1e-6), name
    # The cascade paid for audits by the human: more than one annotation per bought item.
    n_bought = int(np.asarray(trace.n_queried)[-1])
    assert n_bought == N_INITIAL + BATCH * ROUNDS and spent[-1] > n_bought * 1e-5

    # (b) Without [routing] the [loop] annotator alone labels: other dollars, and no routing reported.
    plain = _write(tmp_path, routing="", loop_extra='annotator = "cheap"')
    single = _simulate_json(plain, capsys)
    assert single["routing"] is None
    assert single["spent_usd_mean"][-1] < out["spent_usd_mean"][-1]
    assert not np.allclose(single["spent_usd_mean"], out["spent_usd_mean"])
    assert "routed by" not in format_rules_table(single)


@pytest.mark.parametrize("kind,table", [
    ("openai", 'kind = "openai"\nmodel = "gpt-4o-mini"'),
    ("anthropic", 'kind = "anthropic"\nmodel = "claude-3-5-haiku-latest"'),
    ("human", 'kind = "human"\nusd_per_label = 0.05'),
])
def test_a_routed_annotator_that_is_not_simulated_is_one_line(tmp_path, capsys, kind, table):
    routing = CASCADE.replace('"strong", "human"]', '"llm", "human"]')
    path = _write(tmp_path, routing=routing, annotators=f"[annotators.llm]\n{table}\n")
    assert main(["simulate", str(path), "--seeds", "1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert str(path) in lines[0] and "[routing] annotator 'llm'" in lines[0] and f"kind '{kind}'" in lines[0]
