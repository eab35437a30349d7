"""metrics.jsonl: one durable line per round; a torn last line is dropped, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.errors import AlbandError
from alband.store.metrics import METRICS_FILENAME, MetricsWriter, read_metrics, repair_metrics


def _record(round: int, **extra) -> dict:
    return {"round": round, "n_labeled": 10 * (round + 1), "spent_usd": 0.05 * round,
            "test_accuracy": 0.5 + 0.01 * round, **extra}


def test_append_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILENAME
    with MetricsWriter(path) as writer:
        assert writer.last_round is None
        writer.append(_record(0, policy="ucb"))
        writer.append(_record(1, per_class=[0.1, 0.9]))
        assert writer.last_round == 1
    assert read_metrics(path) == [_record(0, policy="ucb"), _record(1, per_class=[0.1, 0.9])]
    assert path.read_text().count("\n") == 2


def test_numpy_values_and_nan_become_json(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILENAME
    with MetricsWriter(path) as writer:
        written = writer.append({"round": np.int64(0), "n_labeled": np.int32(5), "spent_usd": np.float32(0.25),
                                 "test_accuracy": float("nan"), "probs": np.array([0.5, 0.5]),
                                 "ece": np.float64(np.inf)})
    assert written["test_accuracy"] is None and written["ece"] is None
    assert read_metrics(path) == [{"round": 0, "n_labeled": 5, "spent_usd": 0.25, "test_accuracy": None,
                                   "probs": [0.5, 0.5], "ece": None}]


@pytest.mark.parametrize(
    "record, message",
    [({"round": 0, "n_labeled": 1, "spent_usd": 0.0}, "test_accuracy"),
     (_record(0) | {"round": -1}, "round"), (_record(0) | {"n_labeled": 1.5}, "n_labeled"),
     (_record(0) | {"spent_usd": -1.0}, "spent_usd"), (_record(0) | {"test_accuracy": 1.5}, "test_accuracy"),
     (_record(0) | {"model": object()}, "cannot be written as JSON"), (_record(0) | {"round": True}, "round")],
)
def test_bad_records_refused(tmp_path: Path, record: dict, message: str) -> None:
    path = tmp_path / METRICS_FILENAME
    with MetricsWriter(path) as writer:
        with pytest.raises(AlbandError, match=message):
            writer.append(record)
    assert path.read_bytes() == b""


def test_rounds_strictly_increase_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILENAME
    with MetricsWriter(path) as writer:
        writer.append(_record(0))
        writer.append(_record(3))
    with MetricsWriter(path) as writer:
        assert writer.last_round == 3
        with pytest.raises(AlbandError, match="round 3 is not after the last recorded round 3"):
            writer.append(_record(3))
        writer.append(_record(4))
    assert [r["round"] for r in read_metrics(path)] == [0, 3, 4]


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=1, max_value=10_000))
def test_truncated_last_line_is_dropped_then_repaired(tmp_path_factory, cut: int) -> None:
    path = tmp_path_factory.mktemp("metrics") / METRICS_FILENAME
    lines = [json.dumps(_record(r, note="x" * r)) + "\n" for r in range(3)]
    full = "".join(lines).encode()
    complete = len("".join(lines[:2]).encode())
    torn = full[: complete + 1 + cut % (len(lines[2]) - 1)]  # killed mid-write of the third line
    path.write_bytes(torn)
    assert [r["round"] for r in read_metrics(path)] == [0, 1]
    assert path.read_bytes() == torn  # reading does not modify
    with MetricsWriter(path) as writer:
        assert writer.last_round == 1
        assert path.stat().st_size == complete
        writer.append(_record(2, note="again"))
    assert read_metrics(path)[-1] == _record(2, note="again")
    assert repair_metrics(path) == 0


def test_corrupted_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILENAME
    good = json.dumps(_record(0)) + "\n"
    path.write_text(good + '{"round": 1, "n_lab\n' + json.dumps(_record(2)) + "\n")
    with pytest.raises(AlbandError, match=rf"{METRICS_FILENAME}, line 2: corrupted metrics line"):
        read_metrics(path)
    with pytest.raises(AlbandError, match="line 2"):
        MetricsWriter(path)
    path.write_text(good + "[1, 2]\n")
    with pytest.raises(AlbandError, match="line 2: expected a JSON object"):
        read_metrics(path)
    path.write_text(good + json.dumps({"round": 1}) + "\n")
    with pytest.raises(AlbandError, match="line 2: missing key"):
        read_metrics(path)
    path.write_bytes(good.encode() + b"\xff\xfe\n")
    with pytest.raises(AlbandError, match="line 2"):
        read_metrics(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AlbandError, match="is missing"):
        read_metrics(tmp_path / "absent.jsonl")
    with pytest.raises(AlbandError, match="does not exist"):
        MetricsWriter(tmp_path / "no" / METRICS_FILENAME)


def test_sigkill_mid_stream_leaves_a_readable_file(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / METRICS_FILENAME
    script = (
        "import sys\nfrom alband.store.metrics import MetricsWriter\n"
        "w = MetricsWriter(sys.argv[1])\nr = 0\n"
        "while True:\n"
        "    w.append({'round': r, 'n_labeled': r, 'spent_usd': 0.0, 'test_accuracy': None, 'pad': 'p' * 5000})\n"
        "    print(r, flush=True)\n    r += 1\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    reported = [int(child.stdout.readline()) for _ in range(30)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    rounds = [r["round"] for r in read_metrics(path)]
    assert rounds == list(range(len(rounds))) and len(rounds) >= len(reported)
    with MetricsWriter(path) as writer:
        writer.append({"round": rounds[-1] + 1, "n_labeled": 0, "spent_usd": 0.0, "test_accuracy": None})
    assert len(read_metrics(path)) == len(rounds) + 1
