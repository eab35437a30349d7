"""Inputs at fault are one line on stderr and exit code 2, found before any work is wasted.

Label typos in an inferred label set, a budget that buys nothing, a plot path
or a run directory that cannot be written, relative cache folders, price
errors, and ``route replay`` options checked before its data are loaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from alband.cli.main import main
from helpers import cli_error_line

from fake_llm_server import fake_llm_server, film_review_reply, write_film_reviews  # noqa: F401 - fixture

SIMULATED = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 1
initial_labels = 4
seed = 0

[budget]
usd = BUDGET

[annotators.sim]
kind = "simulated"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
prompt_tokens = 100
output_tokens = 10
"""

LLM = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 1
initial_labels = 4
seed = 0

[budget]
usd = 1.0

[annotators.llm]
kind = "openai"
model = "MODEL"
base_url = "BASE_URL"
api_key_env = "ALBAND_TEST_KEY"
max_tokens = 32
max_retries = 0
"""


def _write(folder: Path, text: str, name: str = "run.toml", **values) -> Path:
    for key, value in values.items():
        text = text.replace(key.upper(), str(value))
    folder.mkdir(parents=True, exist_ok=True)
    write_film_reviews(folder)
    path = folder / name
    path.write_text(text)
    return path



@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small complete run directory (simulated annotator), made once for the module."""
    folder = tmp_path_factory.mktemp("finished")
    out = folder / "run"
    assert main(["run", str(_write(folder, SIMULATED, budget=1.0)), "--out", str(out), "--quiet"]) == 0
    return out


@contextlib.contextmanager
def _read_only(path: Path):
    """``path`` made unwritable for this process: mode bits, or the immutable attribute when running as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: no way to make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -------------------------------------------------------------------- labels
def test_label_typo_without_label_names_names_file_row_and_label(tmp_path, capsys):
    config = _write(tmp_path, SIMULATED, budget=1.0)
    table = tmp_path / "reviews.csv"
    lines = table.read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0] + ",nge"  # line 8 of the file: 'neg' mistyped
    table.write_text("\n".join(lines) + "\n")
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert f"{table}, line 8, column 'label': label 'nge' occurs in this row only" in line
    assert "did you mean 'neg'" in line and "label_names" in line
    assert not (tmp_path / "run").exists()  # refused before the run directory is made: the same --out works once fixed


def test_label_written_two_ways_is_refused(tmp_path, capsys):
    config = _write(tmp_path, SIMULATED, budget=1.0)
    table = tmp_path / "reviews.csv"
    table.write_text(table.read_text().replace("film number 3,pos", "film number 3,Pos "))
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert f"{table}, line 5, column 'label': label 'Pos ' differs from label 'pos'" in line


# -------------------------------------------------------------------- budget
def test_budget_too_small_for_one_label_exits_2_before_anything_is_bought(tmp_path, capsys):
    config = _write(tmp_path, SIMULATED, budget=1e-7)
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert f"{config}: [budget] usd = 1e-07 is smaller than the smallest reservation, $" in line
    assert "annotator 'sim'" in line and "not one label can be bought" in line
    assert "accuracy" not in line
    assert not (tmp_path / "run").exists()
    _write(tmp_path, SIMULATED, budget=1.0)  # the budget raised: the same --out starts the run
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0


# ---------------------------------------------------------- report and run dir
def test_report_plot_into_a_missing_folder(finished_run, tmp_path, capsys):
    target = tmp_path / "no_such_folder" / "curve.png"
    line = cli_error_line(capsys, "report", str(finished_run), "--plot", str(target))
    assert line == f"alband: error: --plot {target}: folder {target.parent} does not exist"


def test_report_plot_into_an_unwritable_folder(finished_run, tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    with _read_only(folder):
        line = cli_error_line(capsys, "report", str(finished_run), "--plot", str(folder / "curve.png"))
    assert "cannot write there" in line


def test_read_only_ledger_resume_exits_2_and_report_still_reads_it(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    ledger = run / "ledger.sqlite"
    with _read_only(ledger):
        line = cli_error_line(capsys, "resume", str(run), "--quiet")
        assert line == (f"alband: error: ledger {ledger}: ledger.sqlite is read-only and a run writes it; "
                        "make it writable, or read the run with alband report")
        assert main(["report", str(run)]) == 0
        assert "complete" in capsys.readouterr().out


def test_unwritable_run_directory_is_named_as_such(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    with _read_only(run):
        line = cli_error_line(capsys, "resume", str(run), "--quiet")
        assert main(["report", str(run)]) == 0  # a finished run in a read-only folder can still be read
        assert "complete" in capsys.readouterr().out
    assert f"the run directory {run} is not writable" in line
    assert "not a readable SQLite ledger" not in line


# -------------------------------------------------------------------- config
def test_relative_cache_dir_is_relative_to_the_config_file(tmp_path, fake_llm_server, monkeypatch, capsys):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    fake_llm_server.responder = film_review_reply
    config = _write(tmp_path / "project", LLM.replace('max_retries = 0', 'max_retries = 0\ncache_dir = "cache"'),
                    model="test-model", base_url=fake_llm_server.openai_base_url)
    config.write_text(config.read_text().replace("model = ", "input_usd_per_mtok = 1.0\nmodel = "))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0, capsys.readouterr().err
    assert list((tmp_path / "project" / "cache").rglob("*.json")), "no response cached next to the config file"
    assert not (elsewhere / "cache").exists()


def test_negative_price_names_the_file_and_the_annotator(tmp_path, capsys):
    config = _write(tmp_path, SIMULATED.replace("input_usd_per_mtok = 2.0", "input_usd_per_mtok = -2.0"),
                    budget=1.0)
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert line == (f"alband: error: {config}: [annotators.sim] input_usd_per_mtok must be a finite number "
                    "of dollars >= 0, got -2.0")


def test_unpriced_model_names_the_file_the_annotator_and_the_price_table(tmp_path, capsys):
    from alband.annotators.pricing_table import default_price_table_path

    config = _write(tmp_path, LLM, model="no-such-model", base_url="http://127.0.0.1:9/v1")
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert line.startswith(f"alband: error: {config}: [annotators.llm]: no price for model 'no-such-model' "
                           f"in the price table {default_price_table_path()}")


def test_annotator_option_errors_name_the_file(tmp_path, capsys):
    config = _write(tmp_path, LLM.replace("max_tokens = 32", "max_tokens = 0"), model="m",
                    base_url="http://127.0.0.1:9/v1")
    config.write_text(config.read_text().replace("model = ", "input_usd_per_mtok = 1.0\nmodel = "))
    line = cli_error_line(capsys, "run", str(config), "--out", str(tmp_path / "run"))
    assert line.startswith(f"alband: error: {config}: [annotators.llm]: annotator 'llm': max_tokens must be")


# -------------------------------------------------------------- route replay
@pytest.mark.parametrize("option, value, message", [
    ("--budget", "-5", "--budget must be a positive number of dollars, got -5"),
    ("--budget", "nan", "--budget must be a positive number of dollars, got nan"),
    ("--human-price", "-1", "--human-price must be a positive number of dollars, got -1"),
    ("--plot", "missing/p.png", "--plot missing/p.png: folder missing does not exist"),
    ("--out", "missing/r.json", "--out missing/r.json: folder missing does not exist"),
    ("--output", "missing/r.json", "--out missing/r.json: folder missing does not exist"),
])
def test_route_replay_options_are_checked_before_loading(tmp_path, monkeypatch, capsys, option, value, message):
    import alband.replay.data

    def never(*args, **kwargs):
        raise AssertionError("the data were loaded before the options were checked")

    monkeypatch.setattr(alband.replay.data, "load_outcome_matrix", never)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.csv").write_text("item_id\n")
    (tmp_path / "items.csv").write_text("item_id\n")
    args = {"--data": "wide.csv", "--items": "items.csv", "--budget": "1", option: value}
    # The loader raises if it is reached: the option is refused before any data load, whatever the machine's speed.
    line = cli_error_line(capsys, "route", "replay", *[part for pair in args.items() for part in pair])
    assert line == f"alband: error: route replay: {message}"


def test_route_replay_missing_input_file(tmp_path, capsys):
    line = cli_error_line(capsys, "route", "replay", "--data", str(tmp_path / "wide.csv"), "--items",
                       str(tmp_path / "items.csv"), "--budget", "1")
    assert line == f"alband: error: route replay: --data {tmp_path / 'wide.csv'}: file not found"
