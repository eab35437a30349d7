"""The run ledger: durable reserve/settle/release, conservative spending, integrity."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from alband.annotation import Annotation
from alband.errors import AlbandError
from alband.store.ledger import LEDGER_FILENAME, SCHEMA_VERSION, Ledger


def _annotation(pool_index: int, *, annotator: str = "sim", label: int | None = 1, cost: float = 0.002,
                **kwargs) -> Annotation:
    return Annotation(pool_index=pool_index, item_id=f"item-{pool_index}", annotator=annotator, label=label,
                      cost_usd=cost, **kwargs)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / LEDGER_FILENAME


@pytest.fixture
def ledger(ledger_path: Path):
    with Ledger.open(ledger_path, create=True) as opened:
        yield opened


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


# --------------------------------------------------------------- basic cycle
def test_reserve_settle_roundtrip(ledger: Ledger) -> None:
    row = ledger.reserve(2, 7, "item-7", "sim", 0.01)
    ann = _annotation(7, label=3, cost=0.004, input_tokens=120, output_tokens=4, confidence=0.75,
                      latency_s=0.5, response_id="resp-1", raw='{"label": "x"}', extra={"model": "m"})
    ledger.settle(row, ann)
    assert ledger.annotation_for(7, "sim") == ann
    assert ledger.settled_annotations() == {7: ann}
    (stored,) = ledger.rows()
    assert (stored.round, stored.status, stored.valid, stored.reserved_usd) == (2, "settled", True, 0.01)
    assert stored.created_at.endswith("+00:00") and stored.settled_at >= stored.created_at
    assert ledger.spent_usd() == pytest.approx(0.004)
    assert ledger.unsettled() == []


def test_invalid_answer_is_paid_and_recorded(ledger: Ledger) -> None:
    row = ledger.reserve(0, 1, "item-1", "sim", 0.01)
    ledger.settle(row, _annotation(1, label=None, cost=0.003))
    stored = ledger.rows()[0]
    assert stored.label is None and stored.valid is False
    assert ledger.annotation_for(1, "sim").valid is False
    assert ledger.settled_usd() == pytest.approx(0.003)


def test_release_bills_nothing(ledger: Ledger) -> None:
    row = ledger.reserve(0, 1, "item-1", "sim", 0.01)
    assert ledger.spent_usd() == pytest.approx(0.01)
    ledger.release(row)
    assert ledger.spent_usd() == 0.0
    assert ledger.rows()[0].status == "released"
    # A released pair may be tried again.
    again = ledger.reserve(1, 1, "item-1", "sim", 0.01)
    ledger.settle(again, _annotation(1))
    with pytest.raises(AlbandError, match="already settled"):
        ledger.release(again)


def test_commit_before_next_seen_by_second_connection(ledger: Ledger, ledger_path: Path) -> None:
    other = _raw(ledger_path)
    try:
        row = ledger.reserve(0, 4, "item-4", "sim", 0.01)
        assert other.execute("SELECT status FROM annotations WHERE id = ?", (row,)).fetchone() == ("reserved",)
        ledger.settle(row, _annotation(4, label=2))
        assert other.execute("SELECT status, label FROM annotations WHERE id = ?", (row,)).fetchone() == (
            "settled", 2)
    finally:
        other.close()
    with Ledger.open(ledger_path, create=False, read_only=True) as reader:
        assert reader.annotation_for(4, "sim").label == 2


def test_pragmas(ledger: Ledger, ledger_path: Path) -> None:
    conn = ledger._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# -------------------------------------------------------------- crash paths
def test_crash_between_reserve_and_settle_counts_reservation(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as first:
        done = first.reserve(0, 0, "item-0", "sim", 0.01)
        first.settle(done, _annotation(0, cost=0.004))
        first.reserve(0, 1, "item-1", "sim", 0.02)  # the paid call "was in flight" when we died
    with Ledger.open(ledger_path, create=False) as resumed:
        assert resumed.spent_usd() == pytest.approx(0.004 + 0.02)
        (orphan,) = resumed.unsettled()
        assert resumed.orphans() == [orphan]
        assert (orphan.pool_index, orphan.reserved_usd) == (1, 0.02)
        budget = resumed.budget(1.0)
        assert budget.available_usd == pytest.approx(1.0 - 0.024)
        # Already bought: refused. The orphan's pair may be bought again.
        with pytest.raises(AlbandError, match="will not be bought twice"):
            resumed.reserve(1, 0, "item-0", "sim", 0.01)
        retry = resumed.reserve(1, 1, "item-1", "sim", 0.02)
        assert resumed.orphans() == [orphan]
        resumed.settle(retry, _annotation(1, cost=0.005))
        # The orphan still counts: we cannot know whether it was billed.
        assert resumed.spent_usd() == pytest.approx(0.004 + 0.02 + 0.005)
        # Settling the orphan late would make a second settled row for the pair.
        with pytest.raises(AlbandError, match="already settled"):
            resumed.settle(orphan.id, _annotation(1, cost=0.005))
        assert resumed.rows()[orphan.id - 1].status == "reserved"


def test_unique_settled_pair_enforced_by_schema(ledger: Ledger, ledger_path: Path) -> None:
    ledger.settle(ledger.reserve(0, 3, "item-3", "a", 0.01), _annotation(3, annotator="a"))
    ledger.settle(ledger.reserve(0, 3, "item-3", "b", 0.01), _annotation(3, annotator="b"))  # other annotator
    assert set(ledger.settled_annotations("a")) == {3}
    assert ledger.settled_annotations()[3].annotator == "b"  # most recently settled
    with pytest.raises(AlbandError, match="will not be bought twice"):
        ledger.reserve(1, 3, "item-3", "a", 0.01)
    open_row = ledger.reserve(1, 4, "item-4", "a", 0.01)
    with pytest.raises(AlbandError, match="open reservation"):
        ledger.reserve(1, 4, "item-4", "a", 0.01)
    ledger.release(open_row)
    # Bypassing the ledger: the partial UNIQUE index itself refuses a second settled row.
    writer = sqlite3.connect(ledger_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            writer.execute(
                "INSERT INTO annotations (round, pool_index, item_id, charge_key, annotator, label, valid,"
                " cost_usd, reserved_usd, status, created_at, settled_at) VALUES (0, 3, 'item-3', 'item-3', 'a',"
                " 1, 1, 0.001, 0.01, 'settled', 'now', 'now')"
            )
        # ... while reserved and released rows of the same pair are allowed.
        writer.execute("INSERT INTO annotations (round, pool_index, item_id, charge_key, annotator, reserved_usd,"
                       " status, created_at) VALUES (0, 3, 'item-3', 'item-3', 'a', 0.01, 'reserved', 'now')")
        writer.rollback()
    finally:
        writer.close()


def test_settle_validates_annotation(ledger: Ledger) -> None:
    row = ledger.reserve(0, 5, "item-5", "sim", 0.01)
    with pytest.raises(AlbandError, match="pool index 6"):
        ledger.settle(row, _annotation(6))
    with pytest.raises(AlbandError, match="cost_usd"):
        ledger.settle(row, _annotation(5, cost=float("nan")))
    with pytest.raises(AlbandError, match="no row 99"):
        ledger.settle(99, _annotation(5))
    assert ledger.settle(row, _annotation(5)) is False
    with pytest.raises(AlbandError, match="already settled"):
        ledger.settle(row, _annotation(5))


def test_settle_above_the_reservation_keeps_the_real_cost_and_marks_the_overrun(ledger: Ledger) -> None:
    row = ledger.reserve(0, 5, "item-5", "sim", 0.01)
    assert ledger.settle(row, _annotation(5, cost=0.02)) is True
    (stored,) = ledger.rows()
    assert (stored.status, stored.cost_usd, stored.overrun) == ("settled", 0.02, True)
    assert ledger.spent_usd() == pytest.approx(0.02)


@pytest.mark.parametrize(
    "args, message",
    [((-1, 0, "i", "a", 0.1), "round"), ((0, -2, "i", "a", 0.1), "pool_index"),
     ((0, 0, "i", "", 0.1), "annotator"), ((0, 0, "i", "a", -0.1), "reserved_usd"),
     ((0, 0, "i", "a", math.inf), "reserved_usd"), ((0, 1.5, "i", "a", 0.1), "pool_index")],
)
def test_reserve_rejects_bad_input(ledger: Ledger, args: tuple, message: str) -> None:
    with pytest.raises(AlbandError, match=message):
        ledger.reserve(*args)
    assert ledger.count() == 0


def test_meta_roundtrip_and_version(ledger: Ledger, ledger_path: Path) -> None:
    import alband

    assert ledger.get_meta("schema_version") == SCHEMA_VERSION
    assert ledger.get_meta("alband_version") == alband.__version__
    ledger.set_meta("budget_limit_usd", 2.5)
    ledger.set_meta("config", {"policy": "ucb", "seeds": [1, 2]})
    ledger.set_meta("budget_limit_usd", 3.0)
    assert ledger.get_meta("missing", default="x") == "x"
    with pytest.raises(AlbandError, match="schema_version"):
        ledger.set_meta("schema_version", SCHEMA_VERSION)
    with pytest.raises(AlbandError, match="JSON"):
        ledger.set_meta("bad", object())
    ledger.close()
    with Ledger.open(ledger_path, create=False, read_only=True) as reader:
        assert reader.get_meta("budget_limit_usd") == 3.0
        assert reader.meta()["config"] == {"policy": "ucb", "seeds": [1, 2]}
        with pytest.raises(AlbandError, match="read-only"):
            reader.reserve(0, 0, "i", "a", 0.1)


def test_closed_ledger_refuses(ledger: Ledger) -> None:
    ledger.close()
    ledger.close()
    with pytest.raises(AlbandError, match="closed"):
        ledger.spent_usd()


def test_single_writer_lock(ledger: Ledger, ledger_path: Path) -> None:
    with pytest.raises(AlbandError, match="already open for writing"):
        Ledger.open(ledger_path, create=False)
    ledger.close()
    Ledger.open(ledger_path, create=False).close()


# ------------------------------------------------------------ bad ledger files
def test_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(AlbandError, match=r"ledger .*nope\.sqlite is missing"):
        Ledger.open(tmp_path / "nope.sqlite", create=False)


def test_random_bytes_ledger(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILENAME
    path.write_bytes(os.urandom(8192))
    for create in (False, True):
        with pytest.raises(AlbandError, match=rf"{path.name} is not a readable SQLite ledger"):
            Ledger.open(path, create=create)


def test_damaged_pages_ledger(ledger_path: Path) -> None:
    with Ledger.open(ledger_path, create=True) as ledger:
        for i in range(300):
            ledger.settle(ledger.reserve(0, i, f"item-{i}", "sim", 0.01), _annotation(i, raw="x" * 200))
    data = bytearray(ledger_path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page:5 * page] = os.urandom(2 * page)  # smash two pages, keep the header
    ledger_path.write_bytes(bytes(data))
    with pytest.raises(AlbandError, match=rf"{ledger_path.name} (is corrupted|is not a readable)"):
        Ledger.open(ledger_path, create=False)


def test_sqlite_file_that_is_not_a_ledger(ledger_path: Path) -> None:
    conn = sqlite3.connect(ledger_path)
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(AlbandError, match="not an alband ledger"):
        Ledger.open(ledger_path, create=False)


def test_newer_schema_version(ledger_path: Path) -> None:
    Ledger.open(ledger_path, create=True).close()
    conn = sqlite3.connect(ledger_path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(AlbandError, match="schema version 99.*newer alband"):
        Ledger.open(ledger_path, create=False)


# ---------------------------------------------------------------- SIGKILL
_WRITER = r"""
import sys
from alband.annotation import Annotation
from alband.store.ledger import Ledger

ledger = Ledger.open(sys.argv[1], create=True)
i = 0
while True:
    row = ledger.reserve(i // 10, i, f"item-{i}", "sim", 0.01)
    ledger.settle(row, Annotation(pool_index=i, item_id=f"item-{i}", annotator="sim", label=i % 3,
                                  cost_usd=0.004, input_tokens=100 + i, output_tokens=3, raw="r" * (i % 50)))
    print(i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("kill_after", [5, 40, 120])
def test_sigkill_leaves_complete_rows(ledger_path: Path, kill_after: int) -> None:
    import signal

    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(ledger_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    reported = []
    try:
        while len(reported) < kill_after:
            line = child.stdout.readline()
            assert line, f"writer exited early: {child.stderr.read()}"
            reported.append(int(line))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    # The kernel dropped the writer lock with the process: we can open for writing.
    with Ledger.open(ledger_path, create=False) as ledger:
        rows = ledger.rows()
        # Every row the child reported as done is durable and settled.
        settled = {r.pool_index for r in rows if r.status == "settled"}
        assert set(reported) <= settled
        # Rows are whole: pool indices 0..n-1 in order, all settled but at most the last.
        assert [r.pool_index for r in rows] == list(range(len(rows)))
        assert all(r.status == "settled" for r in rows[:-1])
        assert rows[-1].status in ("settled", "reserved")
        for r in rows:
            if r.status == "settled":
                assert (r.label, r.valid, r.cost_usd, r.input_tokens, r.raw) == (
                    r.pool_index % 3, True, 0.004, 100 + r.pool_index, "r" * (r.pool_index % 50))
                assert r.settled_at is not None
            else:
                assert (r.label, r.valid, r.input_tokens, r.settled_at) == (None, None, None, None)
        in_flight = 0.01 if rows[-1].status == "reserved" else 0.0
        assert ledger.spent_usd() == pytest.approx(0.004 * len(settled) + in_flight)
        # Resume: nothing already bought is bought again.
        for i in range(len(rows) + 3):
            if ledger.annotation_for(i, "sim") is None:
                ledger.settle(ledger.reserve(99, i, f"item-{i}", "sim", 0.01),
                              Annotation(i, f"item-{i}", "sim", i % 3, 0.004))
            else:
                with pytest.raises(AlbandError, match="bought twice"):
                    ledger.reserve(99, i, f"item-{i}", "sim", 0.01)
        assert len(ledger.settled_annotations("sim")) == len(rows) + 3
    check = _raw(ledger_path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


# ----------------------------------------------------------- threads in one process
def test_threads_record_through_one_ledger(ledger: Ledger) -> None:
    n_threads, per_thread = 4, 25
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for k in range(per_thread):
                i = t * per_thread + k
                row = ledger.reserve(0, i, f"item-{i}", "sim", 0.01)
                ledger.settle(row, _annotation(i, cost=0.001 * (k % 7)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert ledger.count("settled") == n_threads * per_thread
    assert ledger.settled_usd() == pytest.approx(n_threads * math.fsum(0.001 * (k % 7) for k in range(per_thread)))
