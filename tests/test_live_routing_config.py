"""The ``[routing]`` section: parsing, every bad field as one readable line, and run / report / resume with it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alband.cli.main import main
from alband.config import parse_config
from alband.errors import AlbandError
from helpers import three_simulated_annotators_toml

BASE = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "margin"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0
{loop_extra}

[budget]
usd = {budget}

""" + three_simulated_annotators_toml() + """
[annotators.llm]
kind = "openai"
model = "gpt-4o-mini"

[routing]
{routing}
"""

CASCADE = 'router = "cascade"\nannotators = ["cheap", "strong", "human"]\nauditor = "human"'


def _text(routing: str = CASCADE, loop_extra: str = "", budget: float = 1.0) -> str:
    return BASE.format(routing=routing, loop_extra=loop_extra, budget=budget)


def _write_task(tmp_path: Path) -> None:
    lines = ["text,label"]
    for k in range(60):
        lines.append(f"a good and lovely film number {k},pos" if k % 2 else f"a bad and dull film number {k},neg")
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")


def test_a_routing_section_is_parsed_into_a_router():
    config = parse_config(_text(CASCADE + '\naudit_rate = 0.5\nlabel_weight = "audited"\ntarget = 0.9\nchain = ["cheap", "strong"]'))
    routing = config.routing
    assert routing.router == "cascade" and routing.annotators == ("cheap", "strong", "human")
    assert routing.auditor == "human" and routing.feedback == "audit" and routing.label_weight == "audited"
    assert routing.params == {"audit_rate": 0.5, "target": 0.9, "chain": ["cheap", "strong"]}
    assert routing.build().name == "cascade"
    for router, extra in [("fixed", 'arm = "human"'), ("random", ""), ("contextual_ts", "exploration = 0.5"),
                          ("bts", "panel_size = 1"), ("ucb_bv", "audit_share = 0.3")]:
        text = _text(f'router = "{router}"\nannotators = ["cheap", "human"]\nauditor = "human"\n{extra}')
        assert parse_config(text).routing.build().name.startswith(router)
    assert parse_config(_text('router = "fixed"\nannotators = ["cheap"]')).routing.params == {"arm": "cheap"}
    gold = parse_config(_text('router = "bts"\nannotators = ["cheap", "strong"]\nfeedback = "gold"')).routing
    assert gold.feedback == "gold" and gold.auditor is None


@pytest.mark.parametrize("routing,loop_extra,message", [
    ('annotators = ["cheap"]', "", "[routing] router is required"),
    ('router = "magic"\nannotators = ["cheap"]', "", "unknown router 'magic'"),
    ('router = "fixed"', "", "[routing] annotators is required"),
    ('router = "fixed"\nannotators = []', "", "[routing] annotators must be a non-empty list"),
    ('router = "fixed"\nannotators = ["cheap", "nobody"]', "", "'nobody' is not defined"),
    ('router = "fixed"\nannotators = ["cheap", "cheap"]', "", "must be distinct"),
    ('router = "fixed"\nannotators = "cheap"', "", "[routing] annotators must be list"),
    ('router = "fixed"\nannotators = ["cheap"]\nauditor = "human"', "", "[routing] auditor: 'human' is not one of"),
    ('router = "fixed"\nannotators = ["cheap"]\nfeedback = "oracle"', "", "[routing] feedback must be"),
    ('router = "fixed"\nannotators = ["cheap"]\nlabel_weight = "heavy"', "", "[routing] label_weight must be one of"),
    ('router = "fixed"\nannotators = ["cheap"]\narm = "strong"', "", "[routing] arm: 'strong' is not one of"),
    ('router = "fixed"\nannotators = ["cheap"]\ntarget = 0.9', "", "[routing]: unknown key 'target'"),
    ('router = "cascade"\nannotators = ["cheap", "human"]', "", "[routing] auditor is required"),
    ('router = "bts"\nannotators = ["cheap", "llm"]\nfeedback = "gold"', "", "annotator 'llm' is of kind 'openai'"),
    ('router = "bts"\nannotators = ["cheap", "human"]\nfeedback = "gold"\nauditor = "human"', "",
     "[routing] auditor: feedback = 'gold'"),
    ('router = "fixed"\nannotators = ["cheap"]\nlabel_weight = "audited"', "", "'audited' weights come from audits"),
    (CASCADE + "\ntarget = 1.5", "", "[routing] target must be in (0, 1]"),
    (CASCADE + '\nchain = ["cheap", "llm"]', "", "[routing] chain: 'llm' is not defined"),
    (CASCADE + "\nn_bins = 0", "", "[routing] n_bins must be >= 1"),
    (CASCADE + "\naudit_rate = 2.0", "", "[routing] audit_rate must be a finite number in [0, 1]"),
    (CASCADE + "\npanel_size = -1", "", "[routing] panel_size must be >= 0"),
    (CASCADE + "\naudit_rate = true", "", "[routing] audit_rate must be int/float"),
    ('router = "contextual_ts"\nannotators = ["cheap", "human"]\nauditor = "human"\ndual_kappa = 0', "",
     "[routing] dual_kappa must be a finite number > 0"),
    (CASCADE, 'annotator = "cheap"', "[loop] annotator: with a [routing] section"),
])
def test_every_bad_routing_field_is_one_line_naming_it(tmp_path, capsys, routing, loop_extra, message):
    path = tmp_path / "run.toml"
    path.write_text(_text(routing, loop_extra))
    with pytest.raises(AlbandError) as err:
        parse_config(path.read_text(), source=str(path))
    assert message in str(err.value) and str(path) in str(err.value)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_run_report_resume_with_a_cascade_over_three_simulated_annotators(tmp_path, capsys):
    _write_task(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(_text(CASCADE + '\naudit_rate = 0.5\nlabel_weight = "audited"\nmin_count = 2'))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("SELECT pool_index, annotator, cost_usd, status FROM annotations").fetchall()
    pairs = [(r[0], r[1]) for r in rows]
    assert len(pairs) == len(set(pairs)) and {r[3] for r in rows} == {"settled"}
    assert len({r[0] for r in rows}) == 4 + 3 * 4  # every proposed item bought once
    by_annotator = {name: sum(1 for r in rows if r[1] == name) for name in ("cheap", "strong", "human")}
    assert by_annotator["cheap"] > 0 and by_annotator["human"] > 0

    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    for name, calls in by_annotator.items():
        if calls:
            assert f"  {name}" in text and f"{calls:>6} calls" in text
    assert main(["report", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    assert {k: v["annotations"] for k, v in summary["annotators"].items()} == {
        k: v for k, v in by_annotator.items() if v}
    assert summary["ledger_spent_usd"] == pytest.approx(sum(r[2] for r in rows))

    assert main(["resume", str(out), "--quiet"]) == 0  # a finished run buys nothing more
    assert f"bought 0 annotations now, {len(rows)} taken from the ledger" in capsys.readouterr().out
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("SELECT count(*) FROM annotations").fetchone()[0] == len(rows)
