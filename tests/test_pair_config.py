"""``[data] kind = "pairs"``: HH-RLHF, TRL and candidates sources to a PairTask; bad input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alband.cli.main import main
from alband.config import parse_config
from alband.data.pair_task import PairTask
from alband.errors import AlbandError
from alband.runner import load_task

REST = """
[policy]
name = "random_pairs"

[loop]
batch_size = 4
rounds = 1
initial_labels = 4

[budget]
usd = 1.0

[annotators.judge]
kind = "simulated"
usd_per_label = 0.01
"""


def config(tmp_path: Path, data: str):
    text = f"[data]\nkind = \"pairs\"\n{data}\n{REST}"
    (tmp_path / "run.toml").write_text(text)
    return parse_config(text, source=str(tmp_path / "run.toml"), base_dir=tmp_path)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def trl_rows(n: int = 12) -> list[dict]:
    topics = ["tea", "bread", "bikes", "rain", "chess", "maps", "owls", "jazz", "salt", "ice", "kites", "moss"]
    return [{"id": f"t{i}", "prompt": f"Tell me about {topics[i % len(topics)]} number {i}.",
             "chosen": f"A careful, correct answer about {topics[i % len(topics)]} with detail {i}.",
             "rejected": f"No idea {i}."} for i in range(n)]


def test_trl_pairs_embedded_by_the_project_embedder_with_texts_for_the_judge(tmp_path):
    write_jsonl(tmp_path / "prefs.jsonl", trl_rows())
    task = load_task(config(tmp_path, 'source = "trl"\npath = "prefs.jsonl"\nembedder = "tfidf"\ndims = 8\n'
                                      "test_fraction = 0.25"))
    assert isinstance(task, PairTask) and task.label_names == ("first", "second")
    assert task.n_items == 9 and task.x_test.shape == (3, 8) and set(task.y_test.tolist()) <= {0, 1}
    assert set(task.ids.tolist()).isdisjoint({f"t{i}" for i in range(12)} - set(task.ids.tolist()))
    # the pool order is a coin per pair and the gold follows it: 'chosen' is the preferred text
    for i in range(task.n_items):
        prompt, first, second = task.pair_texts(i)
        preferred = first if task.y[i] == 0 else second
        assert preferred.startswith("A careful") and prompt.startswith("Tell me about")
        item = task.item(i)
        assert item.item_id == task.ids[i] and first in item.text and second in item.text
    z = task.x[0]
    assert np.allclose(z, task.aux.response_x[task.aux.first[0]] - task.aux.response_x[task.aux.second[0]], atol=1e-6)


def test_trl_pairs_from_npy_and_candidates_with_rankings(tmp_path):
    rows = trl_rows(10)
    write_jsonl(tmp_path / "prefs.jsonl", rows)
    rng = np.random.default_rng(0)
    for name in ("chosen", "rejected"):
        np.save(tmp_path / f"{name}.npy", rng.normal(size=(10, 5)).astype(np.float32))
    task = load_task(config(tmp_path, 'source = "trl"\npath = "prefs.jsonl"\nchosen_npy = "chosen.npy"\n'
                                      'rejected_npy = "rejected.npy"\nseed = 3'))
    assert task.x.shape[1] == 5 and task.n_items + task.x_test.shape[0] == 10

    cands = [{"id": f"p{i}", "prompt": f"Prompt {i}", "responses": [f"r{i}-{k}" for k in range(4)],
              "ranking": [2, 0, 3, 1]} for i in range(10)]
    write_jsonl(tmp_path / "cands.jsonl", cands)
    np.save(tmp_path / "resp.npy", rng.normal(size=(40, 6)).astype(np.float32))
    task = load_task(config(tmp_path, 'source = "candidates"\npath = "cands.jsonl"\nresponses_npy = "resp.npy"\n'
                                      "test_fraction = 0.2"))
    assert task.n_items == 8 * 6 and task.x_test.shape == (2 * 6, 6)  # K = 4: six pairs per prompt, whole prompts held out
    assert int(task.aux.candidates.shape[1]) == 4
    held_prompts = {str(i).split(":")[0] for i in task.ids}
    assert len(held_prompts) == 8


def test_synthetic_candidates_world_has_no_texts(tmp_path):
    task = load_task(config(tmp_path, 'source = "synthetic_candidates"\nn_prompts = 20\nk = 5\ndims = 4'))
    assert task.n_items == 16 * 10 and task.true_margin is not None and not task.has_texts
    assert task.item(0).text == "" and task.item(0).parts == ()


def test_hh_rlhf_folder(shared_data, tmp_path):
    folder = shared_data / "hh_rlhf_harmless_test"
    task = load_task(config(tmp_path, f'source = "hh_rlhf"\npath = "{folder}"\nmax_train = 200'))
    assert task.n_items == 200 and task.x.shape[1] == 384 and task.x_test.shape[0] == round(0.2 * 2307)
    prompt, first, second = task.pair_texts(0)
    assert "Human:" in prompt and first != second


BAD = [
    ('source = "trl"\npath = "bad.jsonl"\nembedder = "tfidf"',
     [{"prompt": "p", "chosen": "same", "rejected": "same"}], "bad.jsonl, line 1: 'chosen' and 'rejected' are identical"),
    ('source = "trl"\npath = "bad.jsonl"\nembedder = "tfidf"',
     [{"prompt": "p", "chosen": "a", "rejected": "b", "score": 1}], "bad.jsonl, line 1: unknown field(s) 'score'"),
    ('source = "candidates"\npath = "bad.jsonl"\nembedder = "tfidf"',
     [{"prompt": "p", "responses": ["only one"]}], "bad.jsonl, line 1: 1 response(s)"),
    ('source = "trl"\npath = "bad.jsonl"\nembedder = "tfidf"\nchosen_npy = "x.npy"',
     [{"prompt": "p", "chosen": "a", "rejected": "b"}], "needs either 'chosen_npy'"),
    ('source = "trl"\npath = "bad.jsonl"\nembedder = "tfidf"\nwidth = 3',
     [{"prompt": "p", "chosen": "a", "rejected": "b"}], "[data]: unknown key 'width'"),
    ('source = "candidates"\npath = "bad.jsonl"\nembedder = "tfidf"\ndims = 4',
     [{"prompt": f"p{i}", "responses": ["a", "b", "c"]} for i in range(6)], "has no gold preference"),
]


@pytest.mark.parametrize("data, rows, message", BAD)
def test_bad_pair_inputs_are_one_line_naming_file_and_row_exit_2(tmp_path, capsys, data, rows, message):
    write_jsonl(tmp_path / "bad.jsonl", rows)
    config(tmp_path, data)
    code = main(["run", str(tmp_path / "run.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_bad_npy_embeddings_name_the_file(tmp_path, capsys):
    write_jsonl(tmp_path / "prefs.jsonl", trl_rows(6))
    bad = np.ones((6, 4), np.float32)
    bad[2, 1] = np.nan
    np.save(tmp_path / "chosen.npy", bad)
    np.save(tmp_path / "rejected.npy", np.ones((6, 3), np.float32))
    with pytest.raises(AlbandError, match="chosen.npy"):
        load_task(config(tmp_path, 'source = "trl"\npath = "prefs.jsonl"\nchosen_npy = "chosen.npy"\n'
                                   'rejected_npy = "rejected.npy"'))
    np.save(tmp_path / "chosen.npy", np.ones((6, 4), np.float32))
    with pytest.raises(AlbandError, match="rejected.npy: embeddings have 3 dimensions"):
        load_task(config(tmp_path, 'source = "trl"\npath = "prefs.jsonl"\nchosen_npy = "chosen.npy"\n'
                                   'rejected_npy = "rejected.npy"'))


def test_unknown_data_kind_names_the_config(tmp_path):
    with pytest.raises(AlbandError, match=r"run.toml: \[data\] kind must be one of 'labels', 'pairs'"):
        parse_config('[data]\nkind = "rankings"\nsource = "x"\n' + REST, source=str(tmp_path / "run.toml"))


def test_judges_of_a_pair_task_are_built_from_the_annotator_tables(tmp_path):
    from alband.annotators.pair_judge import LLMPairJudge
    from alband.annotators.simulated_judge import SimulatedLivePairJudge
    from alband.runner import build_annotator

    write_jsonl(tmp_path / "prefs.jsonl", trl_rows())
    data = 'source = "trl"\npath = "prefs.jsonl"\nembedder = "tfidf"\ndims = 8\n'
    text = (f"[data]\nkind = \"pairs\"\n{data}\n" + REST.replace('usd_per_label = 0.01',
            'usd_per_label = 0.01\nposition_bias = 0.2\ntie_rate = 0.1\nflip_rate = 0.05')
            + '\n[annotators.llm]\nkind = "openai"\nmodel = "judge-model"\nbase_url = "http://127.0.0.1:9"\n'
              'input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\nboth_orders = true\n')
    cfg = parse_config(text, source="run.toml", base_dir=tmp_path)
    task = load_task(cfg)
    judge, expected, weight = build_annotator(cfg, task, "judge")
    assert isinstance(judge, SimulatedLivePairJudge) and expected.shape == (task.n_items,) and weight == 1.0
    answers = judge.answers()
    assert set(answers.tolist()) <= {-1, 0, 1}
    llm, _, _ = build_annotator(cfg, task, "llm")
    assert isinstance(llm, LLMPairJudge) and llm.both_orders and llm.label_names == ("first", "second")
    assert llm.max_cost_usd(task.item(0)) > 0


def test_judge_keys_on_a_label_task_are_one_line(tmp_path):
    from alband.runner import build_annotator

    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(20)))
    text = ('[data]\nsource = "table"\npath = "t.csv"\ndims = 4\n' + REST.replace('usd_per_label = 0.01',
                                                                              'usd_per_label = 0.01\ntie_rate = 0.1'))
    cfg = parse_config(text, source="run.toml", base_dir=tmp_path)
    with pytest.raises(AlbandError, match=r"run.toml: \[annotators.judge\]: 'tie_rate' applies to a preference task"):
        build_annotator(cfg, load_task(cfg), "judge")
