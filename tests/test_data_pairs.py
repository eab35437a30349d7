"""Pair pools: HH-RLHF, TRL JSONL, candidate lists, the synthetic world, and one-line errors on bad input."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from alband.data.pairs import (
    load_candidates,
    load_hh_rlhf_pairs,
    load_trl_pairs,
    synthetic_candidates_world,
)
from alband.errors import AlbandError


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _trl_files(tmp_path, rows, d=4, seed=0, n_rows=None):
    rng = np.random.default_rng(seed)
    n = len(rows) if n_rows is None else n_rows
    data = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    np.save(tmp_path / "chosen.npy", rng.normal(size=(n, d)).astype(np.float32))
    np.save(tmp_path / "rejected.npy", rng.normal(size=(n, d)).astype(np.float32))
    return data, tmp_path / "chosen.npy", tmp_path / "rejected.npy"


GOOD_ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"id": "conv", "prompt": [{"role": "user", "content": "Hi"}],
     "chosen": [{"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "assistant", "content": "Go away"}]},
    {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
     "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]},
    {"chosen": "\n\nHuman: hey\n\nAssistant: hello there", "rejected": "\n\nHuman: hey\n\nAssistant: whatever"},
]


def test_trl_pairs_load_with_random_order_and_hidden_gold(tmp_path):
    data, c, r = _trl_files(tmp_path, GOOD_ROWS)
    pool = load_trl_pairs(data, jax.random.key(0), chosen_npy=c, rejected_npy=r)
    chosen, rejected = np.load(c), np.load(r)
    assert pool.n_pairs == 4 and pool.pair_ids[1] == "conv"
    for i in range(4):
        want = (rejected[i] - chosen[i]) if pool.swapped[i] else (chosen[i] - rejected[i])
        np.testing.assert_allclose(pool.z[i], want)
        assert pool.gold[i] == (1 if pool.swapped[i] else 0)


def test_ab_order_depends_on_the_key_and_is_fair():
    a = synthetic_candidates_world(jax.random.key(0), n_prompts=400, k=4, d=3)
    b = synthetic_candidates_world(jax.random.key(1), n_prompts=400, k=4, d=3)
    assert abs(a.swapped.mean() - 0.5) < 0.03
    assert (a.swapped != b.swapped).any()


@pytest.mark.parametrize("row, message", [
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "score": 1}, "unknown field(s) 'score'"),
    ({"chosen": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "b"}]}, "differ before"),
    ({"chosen": "\n\nHuman: x\n\nAssistant: a", "rejected": "\n\nHuman: y\n\nAssistant: b"}, "differ before"),
    ({"prompt": "p", "chosen": "a"}, "missing field 'rejected'"),
    ({"prompt": "p", "chosen": 3, "rejected": "b"}, "must be a string or a list"),
])
def test_bad_trl_rows_name_the_file_and_line(tmp_path, row, message):
    data, c, r = _trl_files(tmp_path, [GOOD_ROWS[0], row])
    with pytest.raises(AlbandError) as err:
        load_trl_pairs(data, jax.random.key(0), chosen_npy=c, rejected_npy=r)
    text = str(err.value)
    assert message in text and f"{data}, line 2" in text and "\n" not in text


def test_bad_trl_embeddings_name_the_file(tmp_path):
    data, c, r = _trl_files(tmp_path, GOOD_ROWS)
    with pytest.raises(AlbandError, match="missing.npy: file not found"):
        load_trl_pairs(data, jax.random.key(0), chosen_npy=tmp_path / "missing.npy", rejected_npy=r)
    np.save(tmp_path / "short.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(AlbandError, match="short.npy: 3 rows of chosen embeddings, expected 4"):
        load_trl_pairs(data, jax.random.key(0), chosen_npy=tmp_path / "short.npy", rejected_npy=r)
    bad = np.load(c)
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(AlbandError) as err:
        load_trl_pairs(data, jax.random.key(0), chosen_npy=tmp_path / "nan.npy", rejected_npy=r)
    assert "nan.npy" in str(err.value) and "row" in str(err.value)
    np.save(tmp_path / "wide.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(AlbandError, match="5 dimensions but .*chosen.npy has 4"):
        load_trl_pairs(data, jax.random.key(0), chosen_npy=c, rejected_npy=tmp_path / "wide.npy")


def _candidates(tmp_path, rows, n_resp=None, d=3):
    data = _write_jsonl(tmp_path / "cands.jsonl", rows)
    n = sum(len(r["responses"]) for r in rows) if n_resp is None else n_resp
    np.save(tmp_path / "resp.npy", np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))
    return data, tmp_path / "resp.npy"


def test_candidates_give_all_pairs_with_gold_from_the_ranking(tmp_path):
    rows = [{"id": "a", "prompt": "p0", "responses": ["x", "y", "z"], "ranking": [2, 0, 1]},
            {"prompt": "p1", "responses": ["u", "v"]}]
    data, resp = _candidates(tmp_path, rows)
    pool = load_candidates(data, jax.random.key(3), responses_npy=resp)
    assert pool.n_pairs == 4
    assert np.asarray(pool.aux.candidates).shape == (2, 3)
    x = np.load(resp)
    for i, pid in enumerate(pool.pair_ids[:3]):
        a, b = map(int, pid.split(":")[1].split("-"))
        rank = {2: 0, 0: 1, 1: 2}
        better_is_a = rank[a] < rank[b]
        shown_first = b if pool.swapped[i] else a
        np.testing.assert_allclose(pool.z[i], x[shown_first] - x[a + b - shown_first])
        assert pool.gold[i] == (0 if (shown_first == a) == better_is_a else 1)
    assert pool.gold[3] == -1


@pytest.mark.parametrize("row, message", [
    ({"prompt": "p", "responses": ["only one"]}, "K >= 2"),
    ({"prompt": "p", "responses": ["a", "b", "a"]}, "appears twice"),
    ({"prompt": "p", "responses": ["a", "b"], "extra": 1}, "unknown field(s) 'extra'"),
    ({"prompt": "p", "responses": ["a", "b"], "ranking": [0, 0]}, "'ranking' must list"),
])
def test_bad_candidate_rows_name_the_file_and_line(tmp_path, row, message):
    data, resp = _candidates(tmp_path, [{"prompt": "ok", "responses": ["a", "b"]}, row], n_resp=4)
    with pytest.raises(AlbandError) as err:
        load_candidates(data, jax.random.key(0), responses_npy=resp)
    assert message in str(err.value) and f"{data}, line 2" in str(err.value)


def test_candidate_embedding_rows_must_match(tmp_path):
    data, resp = _candidates(tmp_path, [{"prompt": "ok", "responses": ["a", "b", "c"]}], n_resp=2)
    with pytest.raises(AlbandError, match="2 rows of response embeddings, expected 3"):
        load_candidates(data, jax.random.key(0), responses_npy=resp)


def test_synthetic_world_margins_and_gold():
    world = synthetic_candidates_world(jax.random.key(5), n_prompts=50, k=5, d=8, theta_norm=2.0)
    assert world.n_pairs == 50 * 10
    np.testing.assert_allclose(world.true_margin, world.z @ world.theta, rtol=1e-4, atol=1e-4)
    assert np.linalg.norm(world.theta) == pytest.approx(2.0, rel=1e-5)
    assert ((world.true_margin > 0) == (world.gold == 0)).all()
    assert np.asarray(world.aux.candidates).shape == (50, 5) and (np.asarray(world.aux.pair_of) >= 0).sum() == 50 * 20


def test_hh_rlhf_pairs_load(shared_data):
    pool = load_hh_rlhf_pairs(shared_data / "hh_rlhf_harmless_test", jax.random.key(0))
    assert pool.n_pairs == 2307 and pool.z.shape == (2307, 384)
    chosen = np.load(shared_data / "hh_rlhf_harmless_test" / "emb_chosen.npy")
    rejected = np.load(shared_data / "hh_rlhf_harmless_test" / "emb_rejected.npy")
    i = int(np.flatnonzero(pool.swapped)[0])
    np.testing.assert_allclose(pool.z[i], rejected[i] - chosen[i])
    assert abs(pool.gold.mean() - 0.5) < 0.05 and (pool.gold == pool.swapped).all()
    resp = load_hh_rlhf_pairs(shared_data / "hh_rlhf_harmless_test", jax.random.key(0), feature="response")
    assert not np.allclose(resp.z, pool.z)
