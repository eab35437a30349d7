"""``alband run`` with a [generator], killed with SIGKILL while a generation call is in flight, then resumed.

The generation settled before the kill is read back from the ledger, never
asked again; the call in flight stays a 'reserved' row counted in full and is
made once more on resume; after resume each generation key has one settled
row, the synthetic records are those of an unkilled run, and the budget holds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alband.cli.main import main
from helpers import sigkill_when, start_alband

from fake_llm_server import fake_llm_server  # noqa: F401 - fixture
from generation_server import GenerationResponder
from test_generation_live import ledger_rows, spent, write_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sigkill_during_a_generation_call_then_resume(tmp_path, fake_llm_server, monkeypatch):
    monkeypatch.setenv("ALBAND_TEST_KEY", "test-key")
    responder = GenerationResponder()
    responder.hang_generation_call = 2  # round 2's generation never answers before the kill
    responder.in_flight = threading.Event()
    fake_llm_server.responder = responder
    config = write_run(tmp_path, fake_llm_server.openai_base_url)
    out = tmp_path / "killed"
    proc = start_alband("run", str(config), "--out", str(out), "--quiet", env={"ALBAND_TEST_KEY": "test-key"})
    arrived = responder.in_flight.wait(240)
    if not arrived:
        sigkill_when(proc, lambda: True, must_be_running=False)
    assert arrived, proc.stderr.read().decode() if proc.returncode is not None else "no call"
    sigkill_when(proc, lambda: any(r["status"] == "reserved" for r in ledger_rows(out, "generation")), timeout_s=30, poll_s=0.05, must_be_running=False)
    at_kill = ledger_rows(out, "generation")
    assert [r["status"] for r in at_kill] == ["settled", "reserved"]
    synthetic_at_kill = ledger_rows(out, "synthetic")
    assert len(synthetic_at_kill) == 8  # round 1's items, recorded before the kill

    assert main(["resume", str(out), "--quiet"]) == 0
    after = ledger_rows(out, "generation")
    assert after[:2] == at_kill  # nothing committed before the kill changed
    assert responder.calls["generation"] == 2 + 2  # the call in flight made again, round 3's made once
    settled = [r["charge_key"] for r in after if r["status"] == "settled"]
    assert len(settled) == len(set(settled)) == 3 and at_kill[1]["charge_key"] in settled
    assert ledger_rows(out, "synthetic")[:8] == synthetic_at_kill  # round 1's items not recorded twice
    for kind in ("consistency", "verification", "synthetic"):
        keys = [r["charge_key"] for r in ledger_rows(out, kind) if r["status"] == "settled"]
        assert len(keys) == len(set(keys))
    assert spent(out) <= 1.0

    calls = dict(responder.calls)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert responder.calls == calls  # a finished run asks the server nothing more

    clean = tmp_path / "clean"
    assert main(["run", str(config), "--out", str(clean), "--quiet"]) == 0

    def verdicts(run):
        return [(r["charge_key"], r["raw"], r["extra"]) for r in ledger_rows(run, "synthetic")]

    assert verdicts(clean) == verdicts(out)
