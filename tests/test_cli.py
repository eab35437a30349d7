"""The CLI end to end on BBC News, and every bad input as one readable line with exit code 2."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alband.cli.main import main
from alband.demo import demo_config_text
from helpers import cli_error_line, sigkill_when, start_alband

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, name: str = "run.toml", **changes) -> Path:
    text = demo_config_text(changes.pop("policy", "entropy"), changes.pop("annotator", "cheap-llm"),
                            rounds=changes.pop("rounds", 3), batch_size=changes.pop("batch_size", 5),
                            budget_usd=changes.pop("budget_usd", 1.0))
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "alband", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)



def _settled(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT pool_index, item_id, cost_usd FROM annotations WHERE status = 'settled'"
        ).fetchall()


@pytest.mark.slow
def test_run_report_resume_end_to_end_on_bbc_news(tmp_path):
    config = _config(tmp_path)
    out = tmp_path / "run"
    done = _cli("run", str(config), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "3 rounds, 25 labels" in done.stdout
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1, 2, 3]
    rows = _settled(out / "ledger.sqlite")
    assert len(rows) == 25 and len({r[0] for r in rows}) == 25
    assert metrics[-1]["spent_usd"] == pytest.approx(sum(r[2] for r in rows))
    assert all(r[1].startswith("bbc-") for r in rows)

    report = _cli("report", str(out), "--json", "--plot", str(tmp_path / "r.png"))
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)[0]
    assert summary["status"] == "complete" and summary["n_labeled"] == 25
    assert (tmp_path / "r.png").stat().st_size > 1000

    again = _cli("resume", str(out), "--quiet")  # a finished run buys nothing more
    assert again.returncode == 0, again.stderr
    assert "bought 0 annotations now, 25 taken from the ledger" in again.stdout
    assert len(_settled(out / "ledger.sqlite")) == 25


@pytest.mark.slow
@pytest.mark.parametrize("budget", [50.0, 0.016])
def test_sigkill_mid_run_then_resume(tmp_path, budget):
    """Killed with SIGKILL while buying, resumed: unique items, total cost <= budget."""
    config = _config(tmp_path, rounds=40, batch_size=10, budget_usd=budget)
    out = tmp_path / "run"
    ledger = out / "ledger.sqlite"
    proc = start_alband("run", str(config), "--out", str(out), "--quiet")
    sigkill_when(proc, lambda: len(_settled(ledger)) >= 60, poll_s=0.05)
    killed_at = len(_settled(ledger))

    resumed = _cli("resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = _settled(ledger)
    items = [r[0] for r in rows]
    assert len(items) == len(set(items)), "an item was bought twice"
    assert sum(r[2] for r in rows) <= budget
    assert len(rows) >= killed_at
    with sqlite3.connect(ledger) as db:
        reserved = db.execute("SELECT coalesce(sum(reserved_usd), 0) FROM annotations WHERE status='reserved'")
        assert sum(r[2] for r in rows) + reserved.fetchone()[0] <= budget
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rounds = [m["round"] for m in metrics]
    assert rounds == list(range(len(rounds)))
    assert "taken from the ledger" in resumed.stdout


def test_demo_writes_plot_results_and_ledgers(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--seeds", "2", "--rounds", "2", "--quiet"]) == 0
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert len(results["pairs"]) == 6
    assert all(p["live_matches_simulation"] for p in results["pairs"].values())
    assert (tmp_path / "demo" / "accuracy_vs_dollars.png").stat().st_size > 10_000
    for pair in results["pairs"].values():
        assert len(_settled(Path(pair["live_run_dir"]) / "ledger.sqlite")) == 30
        assert pair["spent_usd"][-1] > 0


# --- bad input: one line, exit code 2, nothing lost ------------------------------------------


def test_unknown_config_key(tmp_path, capsys):
    config = _config(tmp_path, **{"batch_size = 5": "batch_size = 5\nbatchsize = 3"})
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert "[loop]" in line and "unknown key 'batchsize'" in line and "run.toml" in line


def test_unknown_section_and_missing_config(tmp_path, capsys):
    config = _config(tmp_path, **{"[learner]": "[lerner]"})
    assert "unknown section [lerner]" in cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert "config file not found" in cli_error_line(capsys, "run", str(tmp_path / "nope.toml"), "--out", "x")


@pytest.mark.parametrize("usd", ["0", "-1.5", "nan"])
def test_budget_must_be_positive(tmp_path, capsys, usd):
    config = _config(tmp_path, **{"usd = 1.0": f"usd = {usd}"})
    assert "[budget] usd must be" in cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))


def test_batch_larger_than_pool(tmp_path, capsys):
    config = _config(tmp_path, batch_size=5000)
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert "batch_size=5000 is larger than the pool" in line
    assert not (tmp_path / "o" / "ledger.sqlite").exists() or not _settled(tmp_path / "o" / "ledger.sqlite")


def _npy_config(tmp_path: Path, x: np.ndarray, ids: list[str], labels: list[str]) -> Path:
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    lines = ["id,label,split"] + [f"{i},{lab},{'test' if k % 4 == 0 else 'train'}"
                                  for k, (i, lab) in enumerate(zip(ids, labels))]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    data = ('source = "npy"\npath = "emb.npy"\nids = "ids.txt"\nlabels = "labels.csv"\n'
            'split_column = "split"\nlabel_names = ["a", "b"]')
    return _config(tmp_path, **{'source = "bbc_news"': data})


def _good_arrays(n: int = 40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), [f"r{i}" for i in range(n)], ["a", "b"] * (n // 2)


def test_nan_embeddings(tmp_path, capsys):
    x, ids, labels = _good_arrays()
    x[7, 2] = np.nan
    line = cli_error_line(capsys, "run", str(_npy_config(tmp_path, x, ids, labels)), "--out", str(tmp_path / "o"))
    assert "emb.npy" in line and "r7" in line


def test_infinite_embeddings(tmp_path, capsys):
    x, ids, labels = _good_arrays()
    x[3, 0] = np.inf
    line = cli_error_line(capsys, "run", str(_npy_config(tmp_path, x, ids, labels)), "--out", str(tmp_path / "o"))
    assert "emb.npy" in line and "r3" in line


def test_mismatched_lengths(tmp_path, capsys):
    x, ids, labels = _good_arrays()
    config = _npy_config(tmp_path, x[:-3], ids, labels)
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert "emb.npy" in line and "ids.txt" in line


def test_unknown_label(tmp_path, capsys):
    x, ids, labels = _good_arrays()
    labels[5] = "zebra"
    line = cli_error_line(capsys, "run", str(_npy_config(tmp_path, x, ids, labels)), "--out", str(tmp_path / "o"))
    assert "labels.csv" in line and "zebra" in line


def test_duplicate_ids(tmp_path, capsys):
    x, ids, labels = _good_arrays()
    ids[9] = "r2"
    line = cli_error_line(capsys, "run", str(_npy_config(tmp_path, x, ids, labels)), "--out", str(tmp_path / "o"))
    assert "r2" in line and "ids.txt" in line


def test_empty_pool(tmp_path, capsys):
    (tmp_path / "items.csv").write_text("text,label\n")
    config = _config(tmp_path, **{'source = "bbc_news"': 'source = "table"\npath = "items.csv"'})
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))
    assert "items.csv" in line


def test_missing_and_corrupted_run_directory(tmp_path, capsys):
    line = cli_error_line(capsys, "resume", str(tmp_path / "nowhere"))
    assert "nowhere" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.toml").write_text("x = 1")
    assert "broken" in cli_error_line(capsys, "resume", str(broken))
    assert "broken" in cli_error_line(capsys, "report", str(broken))


def test_corrupted_ledger_is_reported_not_overwritten(tmp_path, capsys):
    config = _config(tmp_path, rounds=1)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    ledger = out / "ledger.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(ledger) + extra).unlink(missing_ok=True)
    ledger.write_bytes(b"this is not a database" * 100)
    line = cli_error_line(capsys, "resume", str(out))
    assert "ledger.sqlite" in line
    assert ledger.read_bytes().startswith(b"this is not a database")


def test_unknown_policy(tmp_path, capsys):
    config = _config(tmp_path, policy="clairvoyant")
    assert "unknown query policy 'clairvoyant'" in cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "o"))


def test_bench_design_prints_json_with_the_machine(capsys):
    assert main(["bench", "design", "--n", "300", "--d", "4", "--repeats", "1", "--no-cvxpy", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    row = payload["results"][0]
    assert row["n"] == 300 and row["d"] == 4 and row["certified"]
    assert row["max_leverage_over_d"] <= 1.001 + 1e-6
    assert row["machine"]["cores"] >= 1


def test_bench_design_cvxpy_timeout_reaches_the_benchmark(capsys):
    assert main(["bench", "design", "--n", "200", "--d", "4", "--repeats", "1", "--cvxpy-timeout", "120",
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["cvxpy_timeout_seconds"] == 120.0
    assert row["cvxpy_seconds"] is not None and row["same_certificate"]
    assert "cvxpy_timeout_seconds must be a number > 0" in cli_error_line(
        capsys, "bench", "design", "--n", "200", "--d", "4", "--cvxpy-timeout", "0")


def test_pass_through_commands_take_their_own_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--help"])
    assert info.value.code == 0
    assert "stopping rule" in capsys.readouterr().out
    assert "--n must be" in cli_error_line(capsys, "bench", "design", "--n", "1", "--json")
    line = cli_error_line(capsys, "route", "replay", "--data", "nope.csv", "--items", "nope.csv", "--budget", "1")
    assert "nope.csv" in line
