"""``alband sweep``: spec validation, cell identity, resume after SIGKILL, failed cells, Ray = local, report."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alband.cli.main import main
from alband.errors import AlbandError
from alband.stats import paired_interval
from alband.sweep.cells import expand_cells
from alband.sweep.local_backend import LocalBackend
from alband.sweep.report import sweep_report
from alband.sweep.run import run_sweep
from alband.sweep.spec import load_spec
from alband.sweep.store import ResultStore
from helpers import cli_error_line

ROOT = Path(__file__).resolve().parents[1]

BASE = """[data]
source = "npy"
path = "emb.npy"
ids = "ids.txt"
labels = "labels.csv"
split_column = "split"
label_names = ["a", "b"]

[policy]
name = "random"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4

[budget]
usd = 1.0

[annotators.cheap]
kind = "simulated"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
flip_rate = 0.1
prompt_tokens = 100
output_tokens = 4
"""

# Budget and flip rate are traced values of one compiled episode: every cell of this grid compiles once.
GRID = """base = "base.toml"

[seeds]
start = 3
count = 4

[grid]
"annotators.cheap.flip_rate" = [{ name = "clean", value = 0.0 }, { name = "noisy", value = 0.3 }]
"budget.usd" = [1.0, 0.0002, 0.0001]

[report]
baseline = "annotators.cheap.flip_rate=clean"
"""

# Fields a rerun reproduces exactly (timings, machine and versions describe the run, not the result).
STABLE_FIELDS = ("cell", "name", "coordinates", "status", "seeds", "simulate_options", "config", "config_text",
                 "config_sha256", "result", "error")


def _write_data(folder: Path, n: int = 80, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, 4)) + 2.0 * np.outer(y, [1, 0, 0, 0])).astype(np.float32)
    np.save(folder / "emb.npy", x)
    (folder / "ids.txt").write_text("".join(f"r{i}\n" for i in range(n)))
    rows = [f"r{i},{'ab'[y[i]]},{'test' if i % 4 == 0 else 'train'}" for i in range(n)]
    (folder / "labels.csv").write_text("id,label,split\n" + "\n".join(rows) + "\n")


def _sweep(tmp_path: Path, spec_text: str = GRID, name: str = "spec.toml") -> Path:
    if not (tmp_path / "base.toml").exists():
        _write_data(tmp_path)
        (tmp_path / "base.toml").write_text(BASE)
    spec = tmp_path / name
    spec.write_text(spec_text)
    return spec


def _stable_rows(folder: Path) -> dict[str, dict]:
    return {r["cell"]: {k: r.get(k) for k in STABLE_FIELDS} for r in ResultStore(folder).rows()}


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "alband", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, start_new_session=True)



# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("change, message", [
    (('"budget.usd"', '"loop.batchsize"'), "[loop]: unknown key 'batchsize'"),
    (('"budget.usd"', '"polcy.name"'), "unknown config key 'polcy.name'"),
    (('"budget.usd" = [1.0, 0.0002, 0.0001]', '"budget.usd" = []'), "empty grid: axis 'budget.usd' has no values"),
    (('count = 4', 'count = 0'), "bad seed range"),
    (('start = 3', 'start = -1'), "bad seed range"),
    (('count = 4', 'count = "4"'), "[seeds] count must be an integer"),
    (('baseline = ', 'colour = 1\nbaseline = '), "[report] unknown key 'colour'"),
    (('"budget.usd" = [1.0', '"policy.name" = ["random", "no_such_policy"]\n"budget.usd" = [1.0'),
     "unknown query policy 'no_such_policy'"),
    (('"budget.usd"', '"loop.seed"'), "'loop.seed' is set by [seeds]"),
])
def test_malformed_spec_is_one_line_exit_2(tmp_path, capsys, change, message):
    spec = _sweep(tmp_path, GRID.replace(*change))
    line = cli_error_line(capsys, "sweep", str(spec), "--dry-run")
    assert message in line and str(spec) in line, line
    assert not (tmp_path / "spec.sweep").exists()


def test_empty_grid_and_unknown_top_level_key(tmp_path, capsys):
    spec = _sweep(tmp_path, 'base = "base.toml"\n[seeds]\ncount = 2\n')
    assert "empty grid" in cli_error_line(capsys, "sweep", str(spec))
    spec = _sweep(tmp_path, "bogus = 1\n" + GRID)
    assert "unknown key 'bogus'" in cli_error_line(capsys, "sweep", str(spec))


def test_cell_identity_ignores_the_order_of_axes_values_and_keys(tmp_path):
    first = expand_cells(load_spec(_sweep(tmp_path)))
    reordered = GRID.replace('"annotators.cheap.flip_rate" = [{ name = "clean", value = 0.0 }, '
                             '{ name = "noisy", value = 0.3 }]\n"budget.usd" = [1.0, 0.0002, 0.0001]',
                             '"budget.usd" = [0.0001, 1.0, 0.0002]\n"annotators.cheap.flip_rate" = '
                             '[{ value = 0.3, name = "noisy" }, { name = "clean", value = 0.0 }]')
    assert reordered != GRID
    second = expand_cells(load_spec(_sweep(tmp_path, reordered, "reordered.toml")))
    assert len(first) == 6 and {c.id for c in first} == {c.id for c in second}
    more_seeds = expand_cells(load_spec(_sweep(tmp_path, GRID.replace("count = 4", "count = 5"), "more.toml")))
    assert not {c.id for c in first} & {c.id for c in more_seeds}


def test_dry_run_prints_every_cell_and_runs_nothing(tmp_path, capsys):
    spec = _sweep(tmp_path)
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{spec}: 6 cells x 4 seeds (3..6)")
    assert sum("to run" in line for line in out) == 6
    assert any("annotators.cheap.flip_rate=noisy budget.usd=0.0002" in line for line in out)
    assert not (tmp_path / "spec.sweep").exists()


# --------------------------------------------------------------------------- running, resuming, failing


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_computes_only_the_missing_cells(tmp_path):
    spec = _sweep(tmp_path)
    cells = tmp_path / "spec.sweep" / "cells"
    proc = _cli("sweep", str(spec), "--quiet")
    deadline = time.monotonic() + 240
    while not list(cells.glob("*.json.gz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = {p.name: p.read_bytes() for p in cells.glob("*.json.gz")}
    assert 1 <= len(stored) < 6, f"the kill should land mid-sweep, {len(stored)} of 6 cells were stored"
    assert all(json.loads(gzip.decompress(raw))["status"] == "done" for raw in stored.values())

    resumed = _cli("sweep", str(spec), "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"6 cells; {len(stored)} already stored, {6 - len(stored)} run now" in out
    for name, raw in stored.items():  # the rows stored before the kill were not recomputed
        assert (cells / name).read_bytes() == raw

    reference = run_sweep(load_spec(spec, out=tmp_path / "uninterrupted"), LocalBackend(1), progress=False)
    assert reference.ran == 6 and not reference.failed
    assert _stable_rows(tmp_path / "spec.sweep") == _stable_rows(tmp_path / "uninterrupted")


@pytest.mark.slow
def test_a_cell_that_raises_is_a_failed_row_and_the_others_complete(tmp_path, capsys):
    spec = _sweep(tmp_path, GRID.replace('"budget.usd" = [1.0, 0.0002, 0.0001]', '"loop.batch_size" = [4, 5000]'))
    assert main(["sweep", str(spec), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 cells failed" in err and "batch_size=5000 is larger than the pool" in err
    rows = {r["name"]: r for r in ResultStore(tmp_path / "spec.sweep").rows()}
    assert len(rows) == 4
    for name, row in rows.items():
        if "loop.batch_size=5000" in name:
            assert row["status"] == "failed" and row["error"]["type"] == "AlbandError"
            assert "larger than the pool" in row["error"]["message"] and "result" not in row
        else:
            assert row["status"] == "done" and len(row["result"]["curves"]["test_accuracy"]) == 4
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("failed (will rerun)") == 2


@pytest.mark.slow
def test_process_pool_gives_the_rows_of_the_driver(tmp_path):
    spec = load_spec(_sweep(tmp_path, GRID.replace('[1.0, 0.0002, 0.0001]', '[1.0, 0.0002]')))
    run_sweep(spec, LocalBackend(1), progress=False)
    pooled = run_sweep(load_spec(spec.path, out=tmp_path / "pooled"), LocalBackend(2), progress=False)
    assert pooled.ran == 4 and not pooled.failed
    assert _stable_rows(spec.out) == _stable_rows(tmp_path / "pooled")
    assert {r["machine"]["pid"] for r in ResultStore(tmp_path / "pooled").rows()} - {os.getpid()}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_ray_backend_gives_the_rows_of_the_local_backend(tmp_path):
    ray = pytest.importorskip("ray", reason="the Ray backend needs ray: pip install 'alband[ray]'")
    from alband.sweep.ray_backend import RayBackend

    spec = load_spec(_sweep(tmp_path, GRID.replace('[1.0, 0.0002, 0.0001]', '[1.0, 0.0002]')))
    run_sweep(spec, LocalBackend(1), progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(load_spec(spec.path, out=tmp_path / "ray"), RayBackend(), progress=False)
    finally:
        ray.shutdown()
    assert remote.ran == 4 and not remote.failed
    assert _stable_rows(spec.out) == _stable_rows(tmp_path / "ray")
    assert {r["machine"]["backend"] for r in ResultStore(tmp_path / "ray").rows()} == {"ray"}


# --------------------------------------------------------------------------- the report


@pytest.mark.slow
def test_report_pairs_each_cell_with_its_baseline_by_seed(tmp_path, capsys):
    spec = load_spec(_sweep(tmp_path))
    run_sweep(spec, LocalBackend(1), progress=False)
    report = sweep_report(spec.out, target=0.6)
    assert report["baseline"] == "annotators.cheap.flip_rate=clean" and report["panel_axis"] is None
    cells = {c["name"]: c for c in report["panels"][0]["cells"]}
    assert len(cells) == 6
    noisy = cells["annotators.cheap.flip_rate=noisy budget.usd=1"]
    clean = cells["annotators.cheap.flip_rate=clean budget.usd=1"]
    assert noisy["baseline"] == clean["name"] and "vs_baseline" not in clean
    rows = {r["name"]: r for r in ResultStore(spec.out).rows()}
    final = {k: np.asarray(rows[k]["result"]["curves"]["test_accuracy"])[:, -1] for k in (noisy["name"], clean["name"])}
    expected = paired_interval(final[noisy["name"]], final[clean["name"]])
    assert noisy["vs_baseline"]["final_accuracy"]["estimate"] == pytest.approx(expected.estimate)
    assert noisy["vs_baseline"]["final_accuracy"]["low"] == pytest.approx(expected.low)
    # A budget of $0.0001 buys fewer labels than $1: its label curve stops early.
    poor = np.asarray(rows["annotators.cheap.flip_rate=clean budget.usd=0.0001"]["result"]["curves"]["n_labeled"])
    rich = np.asarray(rows[clean["name"]]["result"]["curves"]["n_labeled"])
    assert poor[:, -1].max() < rich[:, -1].min()

    png = tmp_path / "curves.png"
    assert main(["sweep", "report", str(spec.out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "minus the baseline (annotators.cheap.flip_rate=clean), paired by seed" in text
    assert png.stat().st_size > 10_000
    assert "not an axis" in cli_error_line(capsys, "sweep", "report", str(spec.out), "--baseline", "policy.name=random")
    assert "has no stopping rule 'nope'" in cli_error_line(capsys, "sweep", "report", str(spec.out), "--rule", "nope")


@pytest.mark.slow
def test_report_has_one_panel_per_dataset_of_a_joint_axis(tmp_path):
    _write_data(tmp_path / "other", seed=1)
    spec = load_spec(_sweep(tmp_path, GRID.replace(
        '"budget.usd" = [1.0, 0.0002, 0.0001]',
        'dataset = [{ name = "one", "data.path" = "emb.npy" }, { name = "two", "data.path" = "other/emb.npy", '
        '"data.ids" = "other/ids.txt", "data.labels" = "other/labels.csv" }]')))
    assert run_sweep(spec, LocalBackend(1), progress=False).ran == 4
    report = sweep_report(spec.out)
    assert report["panel_axis"] == "dataset"
    assert [p["panel"] for p in report["panels"]] == ["one", "two"]
    for panel in report["panels"]:
        rows = [r for r in ResultStore(spec.out).rows() if r["coordinates"]["dataset"] == panel["panel"]]
        best = max(np.mean(np.asarray(r["result"]["curves"]["test_accuracy"])[:, -1]) for r in rows)
        assert panel["target_accuracy"] == pytest.approx(0.95 * best)
        assert [c["name"] for c in panel["cells"] if "vs_baseline" in c] == [
            f"annotators.cheap.flip_rate=noisy dataset={panel['panel']}"]


def test_cost_models_and_labels_per_arm_are_stored_per_seed(tmp_path, capsys):
    """``[simulate] cost_models``: each extra model's per-seed outcomes equal a cell run with that model alone."""
    one_cell = '"budget.usd" = [1.0, 0.0002, 0.0001]', '"budget.usd" = [1.0]'
    grid = GRID.replace(*one_cell).replace("[report]", "[simulate]\ncost_models = [[1.0, 100000], [0.01, 1000]]\n\n[report]")
    spec = load_spec(_sweep(tmp_path, grid))
    assert spec.simulate["cost_models"] == [[1.0, 100000.0], [0.01, 1000.0]]
    run_sweep(spec, LocalBackend(1), progress=False)
    rows = {r["name"]: r for r in ResultStore(spec.out).rows()}
    alone = load_spec(_sweep(tmp_path, GRID.replace(*one_cell).replace(
        "[report]", "[simulate]\ncost_per_error = 1.0\nn_future = 100000\n\n[report]"), name="alone.toml"))
    run_sweep(alone, LocalBackend(1), progress=False)
    alone_rows = {r["name"]: r for r in ResultStore(alone.out).rows()}
    for name, row in rows.items():
        result = row["result"]
        first = result["stops_per_cost_model"][0]
        assert (first["cost_per_error_usd"], first["n_future"]) == (1.0, 100000.0)
        assert first["per_seed"] == alone_rows[name]["result"]["stops"]
        assert result["stops_per_cost_model"][1]["per_seed"] != first["per_seed"]  # a different optimum
        # One annotator: every label bought (seed set and queries) is its label.
        labels = np.asarray(result["labels_per_arm"])
        assert result["annotators"] == ["cheap"] and labels.shape == (4, 1)
        assert labels[:, 0].tolist() == np.asarray(result["curves"]["n_labeled"])[:, -1].tolist()
        confidence = np.asarray(result["curves"]["stop_confidence"])
        assert confidence.shape == np.asarray(result["curves"]["test_accuracy"]).shape
        assert ((confidence >= 1 / 2) & (confidence <= 1)).all()  # mean max-probability of two classes
    capsys.readouterr()  # the runs' own warnings
    bad = GRID.replace("[report]", "[simulate]\ncost_models = [[0.1]]\n\n[report]")
    assert "cost_models number 1 must be [cost_per_error, n_future]" in cli_error_line(
        capsys, "sweep", str(_sweep(tmp_path, bad, name="bad.toml")), "--dry-run")


def test_rows_are_gzip_json_and_plain_rows_of_earlier_versions_are_still_read(tmp_path):
    store = ResultStore(tmp_path)
    row = {"cell": "abc", "status": "done", "result": {"x": [0.5] * 100}}
    path = store.write(row)
    assert path.name == "abc.json.gz" and json.loads(gzip.decompress(path.read_bytes())) == row
    assert store.write(row).read_bytes() == path.read_bytes()  # the same row, the same bytes
    (tmp_path / "cells" / "old.json").write_text(json.dumps({"cell": "old", "status": "done"}))
    assert store.is_done("old") and store.read("abc") == row
    assert [r["cell"] for r in store.rows()] == ["abc", "old"]
    (tmp_path / "cells" / "bad.json.gz").write_bytes(b"not gzip")
    assert store.read("bad") is None  # unreadable: the cell runs again
    with pytest.raises(AlbandError, match="bad.json.gz: corrupted result row"):
        list(store.rows())


def test_fill_readme_section_replaces_only_the_tagged_section(tmp_path):
    from alband.errors import AlbandError
    from alband.sweep.report import fill_readme_section

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- cells: begin -->\nold\n<!-- cells: end -->\nkept\n")
    fill_readme_section(readme, "new\n", "cells")
    assert readme.read_text() == "intro\n<!-- cells: begin -->\nnew\n<!-- cells: end -->\nkept\n"
    with pytest.raises(AlbandError, match="no '<!-- report.py: begin -->'"):
        fill_readme_section(readme, "x\n")
