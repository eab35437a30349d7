"""``alband run`` with an LLM selector, killed with SIGKILL while a selection call is in flight, then resumed.

The selections settled before the kill are read back from the ledger, never
asked again; the call in flight stays a 'reserved' row counted in full (it
may have been billed) and is made once more on resume; after resume each
selection key has one settled row, the run buys what an unkilled run buys,
and a further resume asks the server nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from alband.cli.main import main
from helpers import sigkill_when, start_alband

from fake_llm_server import Reply, fake_llm_server, write_film_reviews  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 3
initial_labels = 4
seed = 0

[budget]
usd = 1.0

[annotators.sim]
kind = "simulated"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
prompt_tokens = 50
output_tokens = 4
flip_rate = 0.1

[selector]
kind = "llm"
provider = "openai"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 256
max_retries = 0
n_candidates = 12
k = 4
shortlist = "margin"
prompt = "cot"
mode = "iterative"
"""


def _selection_rows(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT round, charge_key, status, cost_usd, reserved_usd FROM annotations "
                          "WHERE kind = 'selection' ORDER BY id").fetchall()


def _label_items(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return sorted(db.execute("SELECT round, item_id, label FROM annotations WHERE kind = 'label' "
                                 "AND status = 'settled'").fetchall())


@pytest.mark.slow
def test_sigkill_during_a_selection_call_then_resume(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    write_film_reviews(tmp_path, n=40)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(base_url=fake_llm_server.openai_base_url))
    hang_at = 3  # the third selection call (round 2) never answers before the kill
    in_flight = threading.Event()
    calls = []

    def responder(request) -> Reply:
        calls.append(request)
        answer = json.dumps({"reasons": "spread", "indices": [1, 3, 3, 40, "x", 2]})
        if len(calls) == hang_at and not in_flight.is_set():
            in_flight.set()
            return Reply(text=answer, delay_s=120)
        return Reply(text=answer)

    fake_llm_server.responder = responder
    out = tmp_path / "killed"
    proc = start_alband("run", str(config), "--out", str(out), "--quiet", env={"ALBAND_TEST_KEY": "test-key"})
    arrived = in_flight.wait(240)
    if not arrived:
        sigkill_when(proc, lambda: True, must_be_running=False)
    assert arrived, proc.stderr.read().decode() if proc.returncode is not None else "no third call"
    sigkill_when(proc, lambda: any(r[2] == "reserved" for r in _selection_rows(out / "ledger.sqlite")), timeout_s=30, poll_s=0.05, must_be_running=False)
    at_kill = _selection_rows(out / "ledger.sqlite")
    assert [r[2] for r in at_kill] == ["settled", "settled", "reserved"]
    orphan_key = at_kill[2][1]

    assert main(["resume", str(out), "--quiet"]) == 0
    after = _selection_rows(out / "ledger.sqlite")
    assert after[:3] == at_kill  # nothing committed before the kill changed
    assert len(calls) == hang_at + 2  # the call in flight made again, round 3's made once; rounds 0-1 not asked
    settled = [r[1] for r in after if r[2] == "settled"]
    assert len(settled) == len(set(settled)) == 4 and orphan_key in settled
    reserved = [r for r in after if r[2] == "reserved"]
    assert len(reserved) == 1  # counted in full: it may have been billed
    with sqlite3.connect(f"file:{out / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        spent = db.execute("SELECT sum(CASE status WHEN 'reserved' THEN reserved_usd ELSE cost_usd END) "
                           "FROM annotations").fetchone()[0]
    assert spent <= 1.0

    assert main(["resume", str(out), "--quiet"]) == 0
    assert len(calls) == hang_at + 2  # a finished run asks the server nothing more

    clean = tmp_path / "clean"
    assert main(["run", str(config), "--out", str(clean), "--quiet"]) == 0
    assert _label_items(clean / "ledger.sqlite") == _label_items(out / "ledger.sqlite")
