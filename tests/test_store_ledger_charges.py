"""Ledger schema 2: per-attempt rows, charged and skipped outcomes, charges that are not labels, v1 migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alband.annotation import Annotation
from alband.errors import AlbandError
from alband.store.ledger import SCHEMA_VERSION, Ledger

# The version-1 table exactly as alband 0.x wrote it (before kinds, keys, attempts and overruns).
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, round INTEGER NOT NULL CHECK (round >= 0),
    pool_index INTEGER NOT NULL CHECK (pool_index >= 0), item_id TEXT NOT NULL,
    annotator TEXT NOT NULL CHECK (length(annotator) > 0), label INTEGER CHECK (label IS NULL OR label >= 0),
    valid INTEGER CHECK (valid IS NULL OR valid IN (0, 1)), confidence REAL,
    cost_usd REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0), reserved_usd REAL NOT NULL CHECK (reserved_usd >= 0),
    input_tokens INTEGER, output_tokens INTEGER, latency_s REAL, response_id TEXT, raw TEXT, extra TEXT,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'released')),
    created_at TEXT NOT NULL, settled_at TEXT
);
CREATE UNIQUE INDEX annotations_one_settled_per_pair ON annotations (pool_index, annotator) WHERE status = 'settled';
CREATE INDEX annotations_by_status ON annotations (status);
INSERT INTO meta VALUES ('schema_version', '1'), ('budget_limit_usd', '1.0');
INSERT INTO annotations (round, pool_index, item_id, annotator, label, valid, cost_usd, reserved_usd, status,
    created_at, settled_at) VALUES (0, 2, 'doc-2', 'llm', 1, 1, 0.004, 0.01, 'settled', 'then', 'then');
INSERT INTO annotations (round, pool_index, item_id, annotator, cost_usd, reserved_usd, status, created_at)
    VALUES (0, 3, 'doc-3', 'llm', 0, 0.01, 'reserved', 'then');
"""


def _v1_ledger(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    return path


def _label(i: int, annotator: str = "llm", cost: float = 0.004, label: int | None = 1) -> Annotation:
    return Annotation(i, f"doc-{i}", annotator, label, cost)


def test_a_version_1_ledger_is_migrated_and_resumes(tmp_path: Path) -> None:
    path = _v1_ledger(tmp_path / "ledger.sqlite")
    with Ledger.open(path, create=False, read_only=True) as reader:  # a report: migrated in memory only
        assert reader.annotation_for("doc-2", "llm").label == 1
        assert reader.spent_usd() == pytest.approx(0.014)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    with Ledger.open(path, create=False) as ledger:
        assert ledger.get_meta("schema_version") == SCHEMA_VERSION
        rows = ledger.rows()
        assert [(r.id, r.kind, r.charge_key, r.attempt, r.status) for r in rows] == [
            (1, "label", "doc-2", 1, "settled"), (2, "label", "doc-3", 1, "reserved")]
        assert ledger.spent_usd() == pytest.approx(0.014)
        with pytest.raises(AlbandError, match="not be bought twice"):
            ledger.reserve(1, 2, "doc-2", "llm", 0.01)
        row = ledger.reserve(1, 3, "doc-3", "llm", 0.01, attempt=1)  # the orphan's item, bought again
        ledger.settle(row, _label(3))
        assert row == 3
    with Ledger.open(path, create=False) as again:  # already version 2: opened as is
        assert again.count() == 3


def test_attempts_charged_released_and_settled_all_counted(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as ledger:
        first = ledger.reserve(0, 4, "doc-4", "llm", 0.01, attempt=1)
        ledger.release(first, reason="HTTP 429")
        second = ledger.reserve(0, 4, "doc-4", "llm", 0.01, attempt=2)
        ledger.charge(second, reason="timeout")  # may have been billed: counted in full
        third = ledger.reserve(0, 4, "doc-4", "llm", 0.01, attempt=3)
        ledger.settle(third, _label(4, cost=0.003))
        assert [(r.attempt, r.status, r.cost_usd) for r in ledger.attempts("doc-4", "llm")] == [
            (1, "released", 0.0), (2, "charged", 0.01), (3, "settled", 0.003)]
        assert ledger.spent_usd() == pytest.approx(0.013)
        assert ledger.settled_usd() == pytest.approx(0.013)


def test_a_skipped_item_is_not_bought_again(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as ledger:
        ledger.charge(ledger.reserve(0, 5, "doc-5", "llm", 0.01), reason="timeout")
        ledger.skip(0, 5, "doc-5", "llm", "3 attempts failed")
        skipped = ledger.skip_for("doc-5", "llm")
        assert skipped is not None and skipped.extra == {"reason": "3 attempts failed"}
        with pytest.raises(AlbandError, match="already skipped"):
            ledger.reserve(1, 5, "doc-5", "llm", 0.01)
        assert ledger.annotation_for("doc-5", "llm") is None
        assert ledger.spent_usd() == pytest.approx(0.01)


def test_answers_are_matched_by_item_id_not_position(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as ledger:
        ledger.settle(ledger.reserve(0, 0, "doc-0", "llm", 0.01), Annotation(0, "doc-0", "llm", 2, 0.001))
        assert ledger.annotation_for("doc-0", "llm").label == 2
        assert ledger.annotation_for("doc-9", "llm") is None
        with pytest.raises(AlbandError, match="not be bought twice"):  # same id at another position
            ledger.reserve(1, 7, "doc-0", "llm", 0.01)


def test_charges_that_are_not_labels(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as ledger:
        row = ledger.reserve(2, None, "round-2", "selector", 0.05, kind="selection", key="round-2/batch")
        with pytest.raises(AlbandError, match="settle_charge"):
            ledger.settle(row, _label(0))
        assert ledger.settle_charge(row, 0.02, response_id="r1", raw="[3, 1]", extra={"items": [3, 1]}) is False
        found = ledger.charge_for("selection", "round-2/batch", "selector")
        assert (found.cost_usd, found.raw, found.pool_index, found.extra) == (0.02, "[3, 1]", None, {"items": [3, 1]})
        with pytest.raises(AlbandError, match="selection charge 'round-2/batch' is already settled"):
            ledger.reserve(3, None, "round-2", "selector", 0.05, kind="selection", key="round-2/batch")
        # The same key under another kind is another charge; labels are not affected.
        ledger.settle_charge(ledger.reserve(2, None, "x", "selector", 0.05, kind="verification",
                                            key="round-2/batch"), 0.01)
        assert ledger.settled() == [] and ledger.settled_annotations() == {}
        assert ledger.spent_usd() == pytest.approx(0.03)
        with pytest.raises(AlbandError, match="pool_index"):
            ledger.reserve(0, None, "doc-1", "llm", 0.01)  # a label needs its position
        with pytest.raises(AlbandError, match="kind"):
            ledger.reserve(0, None, "x", "llm", 0.01, kind="")
    # A row left reserved by a crash counts at its reservation, whatever its kind.
    with Ledger.open(ledger_path, create=False) as ledger:
        ledger.reserve(4, None, "g", "generator", 0.07, kind="generation", key="gen-1")
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.spent_usd() == pytest.approx(0.10)
        (orphan,) = ledger.orphans()
        assert (orphan.kind, orphan.charge_key) == ("generation", "gen-1")


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


def test_meta_json_untouched_by_migration(tmp_path: Path) -> None:
    path = _v1_ledger(tmp_path / "ledger.sqlite")
    with Ledger.open(path, create=False) as ledger:
        assert ledger.get_meta("budget_limit_usd") == 1.0
        assert json.loads(json.dumps(ledger.meta()))["schema_version"] == SCHEMA_VERSION
