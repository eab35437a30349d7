"""``alband bench embed``: the JSON it prints and its argument errors (tiny sizes; the figures are in the README)."""

from __future__ import annotations

import json

import pytest

from alband.benchmarks.embed import bench_embed, read_jsonl_texts
from alband.cli.main import main
from alband.errors import AlbandError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))


def test_bench_embed_reports_each_batch_size():
    texts = ["A short one.", "Another short sentence about the weather.", "word " * 40, "Rates rose again."]
    result = bench_embed(texts, batch_sizes=(1, 4), repeats=2)
    assert result["n_texts"] == 4 and result["model"]["dim"] == 384
    assert result["word_pieces"]["max"] == 42 and result["word_pieces"]["truncated_at_256"] == 0
    by_size = {row["batch_size"]: row for row in result["results"]}
    assert set(by_size) == {1, 4}
    assert by_size[1]["shapes"] == 2 and by_size[4]["shapes"] == 1  # (1, 16), (1, 64) vs (4, 64)
    for row in by_size.values():
        assert len(row["seconds"]) == len(row["cpu_seconds"]) == 2 and row["texts_per_cpu_second"] > 0 and row["texts_per_second"] == pytest.approx(4 / row["median_seconds"])
        assert row["compile_seconds"] >= 0 and row["first_pass_seconds"] > 0
    assert by_size[4]["max_abs_diff_vs_first_batch_size"] < 1e-5  # padding does not change the embeddings


def test_cli_prints_json_and_rejects_bad_arguments(tmp_path, capsys):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"id": i, "text": f"sentence number {i}"}) + "\n"
                                                 for i in range(5)))
    assert main(["bench", "embed", "--data", str(tmp_path), "--n", "3", "--batch-size", "2", "--repeats", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "embed" and out["n_texts"] == 3 and out["corpus"] == str(tmp_path)
    assert out["machine"]["cores"] >= 1 and out["machine"]["devices"]
    assert main(["bench", "embed", "--n", "0"]) == 2
    assert "--n, --repeats and --batch-size must be >= 1" in capsys.readouterr().err
    (tmp_path / "data.jsonl").write_text('{"id": 1, "text": ""}\n')
    with pytest.raises(AlbandError, match=r"data\.jsonl, line 1: no non-empty 'text' field"):
        read_jsonl_texts(tmp_path, 3)
