"""Live runs against the wire-format server when things go wrong: changed data, failures, overruns, status."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alband.cli.main import main
from alband.report import summarise_run
from fake_llm_server import FakeLLMServer, Reply, film_review_reply

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
id_column = "id"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0
annotator = "llm"

[budget]
usd = 1.0

[annotators.llm]
kind = "openai"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 32
max_retries = 0
"""


def _reviews(n: int = 40) -> list[str]:
    return [f"r{k},a {'good and lovely' if k % 2 else 'bad and dull'} film number {k},{'pos' if k % 2 else 'neg'}"
            for k in range(n)]


def _write(folder: Path, lines: list[str]) -> None:
    (folder / "reviews.csv").write_text("id,text,label\n" + "\n".join(lines) + "\n")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "k")
    with FakeLLMServer(api_key="k") as fake:
        fake.responder = film_review_reply
        yield fake


def _setup(tmp_path: Path, server) -> tuple[Path, Path]:
    _write(tmp_path, _reviews())
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(base_url=server.openai_base_url))
    return config, tmp_path / "run"


def _rows(out: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{out / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT id, pool_index, item_id, label, cost_usd, status FROM annotations").fetchall()


@pytest.mark.parametrize("change, message", [
    (lambda lines: lines[::-1], r"(another order|ids missing)"),
    (lambda lines: lines[:-3], r"ids missing"),
    (lambda lines: [line.replace("film number 7,", "movie number 7,") for line in lines], r"texts (and embeddings )?changed"),
], ids=["reordered", "rows removed", "text edited"])
def test_resume_refuses_data_that_changed_and_buys_nothing(tmp_path, server, capsys, change, message):
    config, out = _setup(tmp_path, server)
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    before, requests = _rows(out), server.request_count
    _write(tmp_path, change(_reviews()))
    assert main(["resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no longer match run" in err
    assert __import__("re").search(message, err), err
    assert _rows(out) == before and server.request_count == requests
    _write(tmp_path, _reviews())  # the original data: the resume goes through and buys nothing again
    assert main(["resume", str(out), "--quiet"]) == 0
    assert _rows(out) == before and server.request_count == requests


def test_failing_items_are_skipped_and_the_run_goes_on(tmp_path, server, capsys):
    config, out = _setup(tmp_path, server)

    def flaky(request):
        return Reply(status=503, retry_after_ms=None) if "number 1" in request.prompt_text else \
            film_review_reply(request)

    server.responder = flaky
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    summary = summarise_run(out)
    assert summary["status"] == "complete" and summary["stop_reason"] == "rounds done"
    skipped = [r for r in _rows(out) if r[-1] == "skipped"]
    assert skipped and all(r[2] in {f"r{k}" for k in (1, *range(10, 20))} for r in skipped)
    assert summary["skipped"] == len(skipped)
    requests = server.request_count
    server.responder = film_review_reply  # the server recovered: a resume does not buy the skipped items
    assert main(["resume", str(out), "--quiet"]) == 0
    assert server.request_count == requests


def test_a_fatal_error_ends_the_run_with_its_status_recorded(tmp_path, server, capsys):
    config, out = _setup(tmp_path, server)
    server.api_key = "another-key"  # every request is refused with 401
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    assert "HTTP 401" in capsys.readouterr().err
    summary = summarise_run(out)
    assert (summary["status"], summary["stop_reason"]) == ("failed", "annotator failed")


def test_an_overrun_is_settled_reported_and_stops_the_run_for_good(tmp_path, server, capsys):
    config, out = _setup(tmp_path, server)
    huge = {"prompt_tokens": 50_000, "completion_tokens": 3, "total_tokens": 50_003}
    server.enqueue(Reply(), Reply(usage=huge))
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "above its reservation" in err and "request_overhead_tokens" in err and "[annotators.llm]" in err
    rows = _rows(out)
    assert [r[-1] for r in rows] == ["settled", "settled"] and rows[1][4] == pytest.approx(0.10003)
    summary = summarise_run(out)
    assert (summary["status"], summary["overruns"]) == ("overrun", 1)
    assert summary["ledger_spent_usd"] == pytest.approx(sum(r[4] for r in rows))
    requests = server.request_count
    assert main(["resume", str(out), "--quiet"]) == 2  # nothing more is bought with an unsafe bound
    assert "buys nothing more" in capsys.readouterr().err and server.request_count == requests


def test_report_counts_orphans_and_possible_duplicates(tmp_path, server, capsys):
    config, out = _setup(tmp_path, server)
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    with sqlite3.connect(out / "ledger.sqlite") as db:  # what a kill mid-call leaves: one reserved row
        db.execute("INSERT INTO annotations (round, pool_index, item_id, charge_key, annotator, reserved_usd, "
                   "status, created_at, attempt) SELECT round, pool_index, item_id, charge_key, annotator, "
                   "reserved_usd, 'reserved', created_at, 1 FROM annotations LIMIT 1")
        db.execute("UPDATE meta SET value = ? WHERE key = 'status'", (json.dumps("running"),))
    summary = summarise_run(out)
    assert (summary["orphans"], summary["possible_duplicates"], summary["status"]) == (1, 1, "killed")
    assert main(["report", str(out)]) == 0
    assert "1 orphans" in capsys.readouterr().out
