"""No credential a provider's answer echoes is stored: ledger, response cache, metrics, logs, stderr."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alband.cli.main import main

from fake_llm_server import RecordedRequest, Reply, fake_llm_server, film_review_reply, write_film_reviews  # noqa: F401

SECRET = "sk-test-secret-never-written-0123456789"
#: A credential that is not the configured key: only its shape gives it away.
OTHER_KEY = "sk-ant-api03-" + "Zq9" * 12
OTHER_BEARER = "eyJhbGciOiJIUzI1NiJ9" + "Xy7" * 8


def _leaky_reply(number: int, request: RecordedRequest) -> Reply:
    """Every kind of text a response can put into storage, each quoting the key; one answer in five is valid."""
    padding = "I would rather not classify this review, and here is some text to push the key past the cut: "
    kind = number % 6
    if kind == 0:
        return film_review_reply(request)
    if kind == 1:  # unparseable, with the key beyond the 80 characters invalid_reason quotes
        return Reply(text=padding + f"the key is {SECRET}.")
    if kind == 2:  # a refusal quoting the key
        return Reply(refusal=f"I refuse; you sent {SECRET} and Bearer {OTHER_BEARER}")
    if kind == 3:  # off-label JSON whose label is the key
        return Reply(text=json.dumps({"label": SECRET, "confidence": 0.5}))
    if kind == 4:  # a key that is not the configured one, known by its shape only
        return Reply(text=f"{OTHER_KEY} Authorization: Bearer {OTHER_BEARER}")
    return Reply(usage={"prompt_tokens": SECRET, "input_tokens": SECRET, "output_tokens": 3,
                        "completion_tokens": 3})  # an unusable usage that quotes the key


def _config(tmp_path: Path, kind: str, base_url: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f"""
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 6
rounds = 2
initial_labels = 6
seed = 0
annotator = "llm"

[budget]
usd = 1.0

[annotators.llm]
kind = "{kind}"
model = "test-model"
base_url = "{base_url}"
api_key_env = "ALBAND_TEST_KEY"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 10.0
max_tokens = 64
max_retries = 0
cache_dir = "{tmp_path / 'cache'}"
""")
    return path


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_no_stored_text_holds_an_echoed_key(tmp_path, fake_llm_server, monkeypatch, kind, capsys):
    fake_llm_server.api_key = SECRET
    monkeypatch.setenv("ALBAND_TEST_KEY", SECRET)
    counter = iter(range(10**6))
    fake_llm_server.responder = lambda request: _leaky_reply(next(counter), request)
    write_film_reviews(tmp_path)
    base = fake_llm_server.openai_base_url if kind == "openai" else fake_llm_server.anthropic_base_url
    out = tmp_path / "run"
    code = main(["run", str(_config(tmp_path, kind, base)), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert fake_llm_server.request_count >= 12

    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("SELECT raw, extra, response_id FROM annotations").fetchall()
    reasons = [json.loads(extra).get("invalid_reason", "") for _, extra, _ in rows if extra]
    # Every leaky path was taken and left its (redacted) trace.
    assert any(r.startswith("no label in answer") for r in reasons), reasons
    assert any(r.startswith("refusal") for r in reasons), reasons
    assert any(r.startswith("off-label answer") for r in reasons), reasons
    assert any("usage" in r for r in reasons), reasons
    assert any("[redacted]" in (raw or "") for raw, _, _ in rows)

    stored = [p for root in (out, tmp_path / "cache") for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and (tmp_path / "cache") in p.parents for p in stored), "nothing was cached"
    for text in (SECRET, OTHER_KEY, OTHER_BEARER, SECRET[:24]):
        for path in stored:
            assert text.encode() not in path.read_bytes(), f"{text[:12]}... was written to {path}"
        assert text not in captured.err and text not in captured.out


def test_redact_secrets_removes_configured_keys_and_key_shapes():
    from alband.annotators.redaction import REDACTED, redact_secrets, redact_strings

    configured = "plain-configured-value-without-a-shape"
    text = (f"a {configured} b sk-proj-{'a1' * 20} c sk-ant-api03-{'Z_9-' * 6} d Bearer abcdefghijklmnop.qrs "
            f"e x-api-key: {'k' * 20} f \"api_key\": \"{'v' * 20}\" g AIza{'0' * 35} h ghp_{'g' * 36} "
            f"i hf_{'h' * 34} j AKIA{'A' * 16}")
    redacted = redact_secrets(text, [configured, ""])
    assert redacted.count(REDACTED) == 10, redacted
    for kept in ("a ", " b ", " c ", " d Bearer ", " e x-api-key: ", ' f "api_key": "', " j "):
        assert kept in redacted
    assert redact_secrets(redacted, [configured]) == redacted  # idempotent
    # Ordinary prose and short look-alikes stay as they are.
    prose = "a risk-free task-based sk-short Bearer token AKIA1 api key: short"
    assert redact_secrets(prose) == prose
    # The longest secret goes first, so a secret containing another is removed whole.
    assert redact_secrets("xx-long-secret-yy", ["long", "xx-long-secret-yy"]) == REDACTED
    assert redact_strings({"k": ["sk-" + "x" * 20, 3, ("Bearer " + "t" * 16,)]}) == {
        "k": [REDACTED, 3, ("Bearer " + REDACTED,)]}
