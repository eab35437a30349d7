"""A live LLM run SIGKILLed at 20 random moments, each resumed: the money invariants hold, the labels do not change.

The run buys labels from the wire-format server (in this process; each
answer takes 10 ms, so kills land mid-call as well as between calls). For
each of 20 seeded moments -- after a random number of ledger rows plus a
random fraction of a call -- ``alband run`` is killed with SIGKILL and
``alband resume`` (in this process) finishes it. Then: the final labels equal those of an
unkilled run, item by item; no pair is settled twice; every answer belongs
to its item; and the ledger (orphans counted at their reservation) is never
below what the server billed, which stays within the budget.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alband.cli.main import main
from fake_llm_server import FakeLLMServer, Reply, film_review_reply

ROOT = Path(__file__).resolve().parents[1]
N_KILLS = 20
BUDGET = 0.05
CONFIG = """
[data]
source = "table"
path = "{data}"
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
usd = {budget}

[annotators.llm]
kind = "openai"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_SIGKILL_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 32
max_retries = 0
"""


def _text(k: int) -> str:
    return f"a {'good and lovely' if k % 2 else 'bad and dull'} film number {k}"


@pytest.fixture(scope="module")
def setting(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("sigkill")
    data = folder / "reviews.csv"
    data.write_text("id,text,label\n" + "".join(f"r{k},{_text(k)},{'pos' if k % 2 else 'neg'}\n" for k in range(40)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "ALBAND_SIGKILL_KEY": "k",
           "JAX_COMPILATION_CACHE_DIR": str(folder / "xla_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    monkeypatch_module.setenv("ALBAND_SIGKILL_KEY", "k")
    with FakeLLMServer(api_key="k") as server:
        server.responder = lambda request: Reply(text=film_review_reply(request).text, delay_s=0.01)
        config = folder / "run.toml"
        config.write_text(CONFIG.format(data=data, budget=BUDGET, base_url=server.openai_base_url))
        yield server, config, env, folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _alband(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "alband", *args, "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rows(ledger: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT item_id, label, status, cost_usd, reserved_usd, response_id FROM annotations "
                          "ORDER BY id").fetchall()


def _n_rows(ledger: Path) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM annotations").fetchone()[0]
    except sqlite3.Error:
        return -1


def _labels(rows) -> dict[str, int]:
    return {item: label for item, label, status, *_ in rows if status == "settled"}


@pytest.mark.slow
def test_sigkill_at_20_random_moments_then_resume(setting):
    server, config, env, folder = setting
    baseline = folder / "unkilled"
    proc = _alband(env, "run", str(config), "--out", str(baseline))
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    expected = _labels(_rows(baseline / "ledger.sqlite"))
    assert len(expected) == 4 + 3 * 4

    rng = random.Random(20)
    killed_mid_call = 0
    for trial in range(N_KILLS):
        out = folder / f"killed-{trial}"
        ledger = out / "ledger.sqlite"
        first_billing = len(server.billed)
        proc = _alband(env, "run", str(config), "--out", str(out))
        rows_before_kill, extra_s = rng.randrange(0, len(expected)), rng.uniform(0.0, 0.012)
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline and _n_rows(ledger) < rows_before_kill + 1:
            time.sleep(0.002)
        time.sleep(extra_s)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_mid_call += any(status == "reserved" for _, _, status, *_ in _rows(ledger))
        assert main(["resume", str(out), "--quiet"]) == 0  # in this process: JAX is warm, the test stays short
        server.wait_idle()

        rows = _rows(ledger)
        assert _labels(rows) == expected, f"kill {trial}: the labels differ from the unkilled run's"
        settled = [r for r in rows if r[2] == "settled"]
        assert len({r[0] for r in settled}) == len(settled), f"kill {trial}: an item was settled twice"
        billed = {b.response_id: b for b in server.billed[first_billing:]}
        for item, _, _, cost, _, response_id in settled:
            assert _text(int(item[1:])) in billed[response_id].prompt_text
            b = billed[response_id]
            assert cost == pytest.approx((b.input_tokens * 2.0 + b.output_tokens * 10.0) / 1e6, rel=1e-12)
        billed_usd = sum((b.input_tokens * 2.0 + b.output_tokens * 10.0) / 1e6 for b in billed.values())
        ledger_usd = sum(cost if status in ("settled", "charged") else reserved if status == "reserved" else 0.0
                         for _, _, status, cost, reserved, _ in rows)
        assert billed_usd <= ledger_usd + 1e-12 <= BUDGET + 1e-12, f"kill {trial}"
        assert len(billed) <= sum(r[2] in ("settled", "charged", "reserved") for r in rows)
    assert killed_mid_call >= 1, "no kill landed mid-call: the moments do not cover the call itself"
