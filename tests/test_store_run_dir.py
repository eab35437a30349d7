"""Run directories: atomic creation, same-run reopening, and validation on open."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import alband
from alband.annotation import Annotation
from alband.errors import AlbandError
from alband.store.run_dir import RunDir, config_hash

CONFIG = '# a run\n[budget]\nlimit_usd = 2.5\n\n[policy]\nname = "ucb"\n'


def test_create_layout(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs" / "r1", CONFIG, budget_limit_usd=2.5)
    assert run.path == tmp_path / "runs" / "r1"
    assert run.config_path.read_bytes() == CONFIG.encode()  # verbatim
    assert run.config_text() == CONFIG and run.config()["policy"]["name"] == "ucb"
    info = json.loads(run.run_info_path.read_text())
    assert info["config_hash"] == config_hash(CONFIG) == run.config_hash
    assert info["alband_version"] == alband.__version__ == run.alband_version
    assert run.plots_dir.is_dir() and run.ledger_path.is_file() and not run.metrics_path.exists()
    with run.open_ledger() as ledger:
        assert ledger.get_meta("config") == CONFIG
        assert ledger.get_meta("config_hash") == run.config_hash
        assert ledger.get_meta("budget_limit_usd") == 2.5
    assert run.budget_limit_usd() == 2.5
    assert run.read_metrics() == []
    # No staging directories left behind.
    assert sorted(p.name for p in run.path.parent.iterdir()) == ["r1"]


def test_create_in_empty_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    run = RunDir.create(tmp_path / "r", CONFIG)
    assert run.config_path.is_file()
    assert run.budget_limit_usd() is None


def test_create_same_run_reopens_it(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "r", CONFIG, budget_limit_usd=2.5)
    with run.open_ledger() as ledger:
        ledger.settle(ledger.reserve(0, 3, "item-3", "sim", 0.01), Annotation(3, "item-3", "sim", 1, 0.004))
    with run.metrics_writer() as metrics:
        metrics.append({"round": 0, "n_labeled": 1, "spent_usd": 0.004, "test_accuracy": 0.6})
    again = RunDir.create(tmp_path / "r", CONFIG, budget_limit_usd=2.5)
    assert again == run
    with again.open_ledger(read_only=True) as ledger:
        assert ledger.annotation_for(3, "sim").label == 1  # nothing was overwritten
    assert again.read_metrics()[0]["test_accuracy"] == 0.6
    with pytest.raises(AlbandError, match=r"budget of \$2.5, not \$3.0"):
        RunDir.create(tmp_path / "r", CONFIG, budget_limit_usd=3.0)


def test_create_refuses_other_content(tmp_path: Path) -> None:
    RunDir.create(tmp_path / "r", CONFIG)
    with pytest.raises(AlbandError, match="holds another run"):
        RunDir.create(tmp_path / "r", CONFIG + "\n")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    with pytest.raises(AlbandError, match=r"notes: it is not empty and is not an alband run"):
        RunDir.create(other, CONFIG)
    assert sorted(p.name for p in other.iterdir()) == ["todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(AlbandError, match="a file of that name exists"):
        RunDir.create(tmp_path / "file", CONFIG)


@pytest.mark.parametrize("config, budget, message", [
    ("policy = [", None, "not valid TOML"),
    (CONFIG, -1.0, "budget limit"),
    (CONFIG, float("nan"), "budget limit"),
])
def test_create_rejects_bad_arguments(tmp_path: Path, config: str, budget, message: str) -> None:
    with pytest.raises(AlbandError, match=message):
        RunDir.create(tmp_path / "r", config, budget_limit_usd=budget)
    assert not (tmp_path / "r").exists()


def test_open_existing_validates(tmp_path: Path) -> None:
    with pytest.raises(AlbandError, match=r"run directory .*absent does not exist"):
        RunDir.open_existing(tmp_path / "absent")
    (tmp_path / "f").write_text("")
    with pytest.raises(AlbandError, match="is not a directory"):
        RunDir.open_existing(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AlbandError, match=r"empty is not an alband run directory: run.json is missing"):
        RunDir.open_existing(tmp_path / "empty")


@pytest.mark.parametrize("damage, message", [
    (lambda run: run.config_path.unlink(), "config.toml is missing"),
    (lambda run: run.ledger_path.unlink(), "ledger.sqlite is missing"),
    (lambda run: run.ledger_path.write_bytes(os.urandom(4096)), "ledger.sqlite is not a readable SQLite ledger"),
    (lambda run: run.config_path.write_text(CONFIG + "seed = 2\n"), "config.toml was modified"),
    (lambda run: run.run_info_path.write_text("{not json"), "run.json is unreadable"),
    (lambda run: run.run_info_path.write_text('{"run_format": 1}'), "run.json: field 'alband_version' is missing"),
])
def test_open_existing_names_what_is_wrong(tmp_path: Path, damage, message: str) -> None:
    run = RunDir.create(tmp_path / "r", CONFIG)
    assert RunDir.open_existing(run.path) == run
    damage(run)
    with pytest.raises(AlbandError, match=message) as info:
        RunDir.open_existing(run.path)
    assert str(run.path) in str(info.value)


def test_ledger_of_another_run_is_refused(tmp_path: Path) -> None:
    first = RunDir.create(tmp_path / "a", CONFIG)
    second = RunDir.create(tmp_path / "b", CONFIG + "# other\n")
    second.ledger_path.write_bytes(first.ledger_path.read_bytes())
    with pytest.raises(AlbandError, match="belongs to another run"):
        RunDir.open_existing(second.path)
