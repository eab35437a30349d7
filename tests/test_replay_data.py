"""Reading outcome matrices: both column spellings, empty cells, contamination, verdicts, quotes, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from alband.errors import AlbandError
from alband.replay.data import HUMAN, load_embeddings, load_outcome_matrix
from alband.replay.features import item_features
from alband.replay.quotes import price_quotes


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def small_pair(tmp_path: Path, gold="gold_code", text="text", extra_wide=None):
    """4 items, 2 models; model b is missing on item i2."""
    wide = write_csv(tmp_path / "wide.csv",
                     ["item_id", "task", "a__answer", "a__correct", "a__cost_usd",
                      "b__answer", "b__correct", "b__cost_usd"] + (extra_wide or []),
                     [["i0", "t1", "x", 1, 0.001, "x", 1, 0.01],
                      ["i1", "t1", "y", 0, 0.002, "x", 1, 0.02],
                      ["i2", "t2", "x", 1, 0.001, "", "", ""],
                      ["i3", "t2", "y", 0, 0.003, "y", 0, 0.03]])
    items = write_csv(tmp_path / "items.csv", ["item_id", "task", gold, text],
                      [["i3", "t2", "x", "dddd"], ["i0", "t1", "x", "a"], ["i2", "t2", "x", "ccc"],
                       ["i1", "t1", "x", "bb"]])
    return wide, items


@pytest.mark.parametrize("gold,text", [("gold_code", "text"), ("gold", "prompt")])
def test_both_spellings_empty_cells_and_alignment(tmp_path, gold, text):
    wide, items = small_pair(tmp_path, gold, text)
    m = load_outcome_matrix(wide, items, human_price_usd=0.5)
    assert m.item_ids == ["i0", "i1", "i2", "i3"]
    assert m.texts == ["a", "bb", "ccc", "dddd"]  # aligned by id, not by row
    assert m.arms == ["a", "b", HUMAN]
    assert m.available[:, 1].tolist() == [True, True, False, True]
    assert m.cost_usd[2, 1] == 0.0 and m.correct[2, 1] == 0.0
    np.testing.assert_allclose(m.full_cost(), [0.007, 0.06, 2.0])
    np.testing.assert_allclose(m.accuracy(), [0.5, 2 / 3, 1.0])
    assert m.strongest() == 1 and m.cheapest() == 0  # the human is never "strongest"
    # human auditor: verdict = correctness; model auditor: answers agree (or both right)
    np.testing.assert_array_equal(m.verdicts(2)[:, 0], m.correct[:, 0])
    v = m.verdicts(1)
    assert v[:, 1].tolist() == [1, 1, 0, 1]  # the auditor agrees with itself where available
    assert v[:, 0].tolist() == [1, 0, 0, 1]  # i1: y vs x disagree; i2: b missing; i3: y == y


def test_contaminated_rows_are_dropped_by_default(tmp_path):
    wide = write_csv(tmp_path / "wide.csv", ["item_id", "routellm_contaminated", "a__correct", "a__cost_usd"],
                     [["i0", 0, 1, 0.1], ["i1", 1, 0, 0.1], ["i2", 0, 1, 0.1]])
    items = write_csv(tmp_path / "items.csv", ["item_id", "gold", "prompt"],
                      [["i0", "", "p"], ["i1", "", "q"], ["i2", "", "r"]])
    assert load_outcome_matrix(wide, items).item_ids == ["i0", "i2"]
    assert load_outcome_matrix(wide, items).source["dropped_contaminated"] == 1
    assert load_outcome_matrix(wide, items, drop_contaminated=False).n_items == 3


def test_quotes_follow_prompt_length_and_hide_output_noise(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    lengths = rng.integers(5, 200, n)
    out_tokens = rng.integers(1, 100, n)
    cost_a = 1e-5 * lengths  # input only: exactly linear in length
    cost_b = 1e-5 * (lengths + out_tokens)  # output-dependent: the quote must not see out_tokens
    wide = write_csv(tmp_path / "wide.csv", ["item_id", "a__correct", "a__cost_usd", "b__correct", "b__cost_usd"],
                     [[f"i{i}", 1, cost_a[i], 1, cost_b[i]] for i in range(n)])
    items = write_csv(tmp_path / "items.csv", ["item_id", "gold", "text"],
                      [[f"i{i}", "g", "x" * int(lengths[i])] for i in range(n)])
    m = load_outcome_matrix(wide, items)
    q = price_quotes(m)
    np.testing.assert_allclose(q[:, 0], cost_a, rtol=1e-6)
    expected = np.clip(np.polyval(np.polyfit(lengths, cost_b, 1), lengths), cost_b.min(), cost_b.max())
    np.testing.assert_allclose(q[:, 1], expected, rtol=1e-6)
    # a quote is a function of the prompt length only: same length, same quote, whatever the output
    same = [(i, j) for i in range(n) for j in range(i) if lengths[i] == lengths[j] and out_tokens[i] != out_tokens[j]]
    for i, j in same:
        assert q[i, 1] == q[j, 1]


def test_features_tfidf_and_embeddings(tmp_path):
    texts = [f"item about topic {i % 5} and word{i}" for i in range(40)]
    tasks = ["t1"] * 20 + ["t2"] * 20
    x, how = item_features(texts, tasks, dim=4)
    assert x.shape == (40, 4 + 2 + 1) and x.dtype == np.float32
    assert "TF-IDF" in how and "2 tasks" in how
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert (x[:, -1] > 0).all()
    emb = np.random.default_rng(0).normal(size=(40, 10))
    x2, how2 = item_features(texts, tasks, emb, dim=3)
    assert x2.shape == (40, 3 + 2 + 1) and "PCA to 3" in how2
    np.testing.assert_allclose(np.linalg.norm(x2[:, :3], axis=1), np.sqrt(1 / 3), rtol=1e-5)


def test_embeddings_are_aligned_by_id(tmp_path):
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "e.npy", emb)
    (tmp_path / "ids.txt").write_text("i3\ni0\ni2\ni1\n")
    out = load_embeddings(tmp_path / "e.npy", tmp_path / "ids.txt", ["i0", "i1", "i2", "i3"])
    np.testing.assert_array_equal(out, emb[[1, 3, 2, 0]])


def _expect(msg_parts, fn, *args, **kwargs):
    with pytest.raises(AlbandError) as err:
        fn(*args, **kwargs)
    for part in msg_parts:
        assert part in str(err.value), (part, str(err.value))
    return str(err.value)


def test_bad_inputs_name_file_column_and_row(tmp_path):
    wide, items = small_pair(tmp_path)
    _expect(["nope.csv", "not found"], load_outcome_matrix, tmp_path / "nope.csv", items)
    _expect(["not found"], load_outcome_matrix, wide, tmp_path / "missing_items.csv")
    # missing columns
    bad = write_csv(tmp_path / "w1.csv", ["item_id", "a__correct"], [["i0", 1]])
    _expect(["w1.csv", "a__cost_usd"], load_outcome_matrix, bad, items)
    bad = write_csv(tmp_path / "w2.csv", ["id", "a__correct", "a__cost_usd"], [["i0", 1, 0.1]])
    _expect(["w2.csv", "item_id"], load_outcome_matrix, bad, items)
    bad = write_csv(tmp_path / "w3.csv", ["item_id", "a__cost_usd"], [["i0", 0.1]])
    _expect(["w3.csv", "__correct"], load_outcome_matrix, bad, items)
    no_text = write_csv(tmp_path / "it1.csv", ["item_id", "gold"], [["i0", "x"]])
    _expect(["it1.csv", "'text' or 'prompt'"], load_outcome_matrix, wide, no_text)
    no_gold = write_csv(tmp_path / "it2.csv", ["item_id", "text"], [["i0", "x"]])
    _expect(["it2.csv", "'gold' or 'gold_code'"], load_outcome_matrix, wide, no_gold)
    # mismatched ids
    fewer = write_csv(tmp_path / "it3.csv", ["item_id", "gold", "text"],
                      [["i0", "x", "a"], ["i1", "x", "b"], ["i3", "x", "d"]])
    _expect(["wide.csv", "row 3", "'i2'", "it3.csv"], load_outcome_matrix, wide, fewer)
    more = write_csv(tmp_path / "it4.csv", ["item_id", "gold", "text"],
                     [["i0", "x", "a"], ["i1", "x", "b"], ["i2", "x", "c"], ["i3", "x", "d"], ["i9", "x", "z"]])
    _expect(["it4.csv", "row 5", "'i9'"], load_outcome_matrix, wide, more)
    dup = write_csv(tmp_path / "w4.csv", ["item_id", "a__correct", "a__cost_usd"], [["i0", 1, 0.1], ["i0", 0, 0.1]])
    _expect(["w4.csv", "row 2", "duplicate"], load_outcome_matrix, dup, items)
    # bad cells
    cells = write_csv(tmp_path / "w5.csv", ["item_id", "a__correct", "a__cost_usd"],
                      [["i0", 1, 0.1], ["i1", 1, "abc"], ["i2", 1, 0.1], ["i3", 1, 0.1]])
    _expect(["w5.csv", "row 2", "a__cost_usd", "'abc'"], load_outcome_matrix, cells, items)
    cells = write_csv(tmp_path / "w6.csv", ["item_id", "a__correct", "a__cost_usd"],
                      [["i0", 1, 0.1], ["i1", 1, 0.1], ["i2", 2, 0.1], ["i3", 1, 0.1]])
    _expect(["w6.csv", "row 3", "a__correct", "'2'"], load_outcome_matrix, cells, items)
    cells = write_csv(tmp_path / "w7.csv", ["item_id", "a__correct", "a__cost_usd"],
                      [["i0", 1, 0.1], ["i1", "", 0.1], ["i2", 1, 0.1], ["i3", 1, 0.1]])
    _expect(["w7.csv", "row 2", "a__correct", "empty"], load_outcome_matrix, cells, items)
    cells = write_csv(tmp_path / "w8.csv", ["item_id", "a__correct", "a__cost_usd"],
                      [["i0", 1, 0.1], ["i1", 1, -0.1], ["i2", 1, 0.1], ["i3", 1, 0.1]])
    _expect(["w8.csv", "row 2", ">= 0"], load_outcome_matrix, cells, items)
    _expect(["--human-price"], load_outcome_matrix, wide, items, human_price_usd=-1.0)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _expect(["empty.csv", "empty"], load_outcome_matrix, empty, items)


def test_bad_embeddings(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "ids.txt").write_text("i0\ni1\n")
    _expect(["ids.txt", "2 ids for 3 rows"], load_embeddings, tmp_path / "e.npy", tmp_path / "ids.txt", ["i0"])
    (tmp_path / "ids.txt").write_text("i0\ni1\ni2\n")
    _expect(["ids.txt", "'i7'", "no embedding"], load_embeddings, tmp_path / "e.npy", tmp_path / "ids.txt",
            ["i0", "i7"])
    (tmp_path / "ids.txt").write_text("i0\ni0\ni2\n")
    _expect(["line 2", "duplicate"], load_embeddings, tmp_path / "e.npy", tmp_path / "ids.txt", ["i0"])
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    _expect(["bad.npy", "not a .npy"], load_embeddings, tmp_path / "bad.npy", tmp_path / "ids.txt", ["i0"])
    _expect(["missing.npy", "not found"], load_embeddings, tmp_path / "missing.npy", tmp_path / "ids.txt", ["i0"])
