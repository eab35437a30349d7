"""The run ledger: every paid call (attempt), committed before the next is requested.

Principle: *nothing paid for is lost*. Each request goes through three
durable steps, each its own committed SQLite transaction (WAL journal,
``synchronous=FULL``, so a commit survives SIGKILL and power loss):

1. :meth:`Ledger.reserve` writes a ``'reserved'`` row holding the largest
   possible cost of the request *before* the paid call is made;
2. the call is made;
3. :meth:`Ledger.settle` fills in the answer, tokens and actual cost
   (``status='settled'``), or :meth:`Ledger.release` records that the request
   failed and billed nothing (``status='released'``, cost 0).

Every *attempt* is its own row: a retried request is reserved again, so a
request tried three times leaves three rows. Two more outcomes exist besides
settled and released: :meth:`Ledger.charge` (``status='charged'``) records an
attempt that may have been billed but gave no answer (a timeout, a dropped
connection), counted at its whole reservation; :meth:`Ledger.skip`
(``status='skipped'``, cost 0) records that an item was given up after its
attempts failed, so that a resumed run does not buy it again silently.

A settled cost may exceed its reservation (the provider billed more than the
bound): the row keeps the real cost and ``overrun = 1``.

A run killed between 1 and 3 leaves a ``'reserved'`` row: we cannot know
whether that call was billed, so :meth:`Ledger.spent_usd` counts its whole
reservation. Hence, with ``S`` the settled and charged rows and ``R`` the rows
left reserved::

    spent_usd = sum_{r in S} cost_usd(r) + sum_{r in R} reserved_usd(r)

is an upper bound on the dollars actually billed, and a resumed run that
starts its :class:`alband.costs.Budget` from it can never exceed its limit.
A partial UNIQUE index allows at most one settled (or skipped) row per
``(kind, charge_key, annotator)`` -- for a label the key is the item's id, so
answers are matched to items by id, never by pool position -- and
:meth:`Ledger.reserve` refuses a pair that is already settled or skipped, so a
resumed run never buys the same answer twice.

**Charges that are not labels.** ``kind`` is ``'label'`` for annotations and
any other short name (``'selection'``, ``'generation'``, ``'verification'``)
for a paid call that produces no label; such a row is keyed by its
``charge_key`` alone (``pool_index`` NULL) and settled with
:meth:`Ledger.settle_charge`. It follows the same protocol, counts in
:meth:`spent_usd` and the budget, and :meth:`charge_for` finds it on resume.

Schema version 1 ledgers (no kind, key, attempt or overrun columns) are
migrated in place to version 2 when opened for writing, in one transaction.

Used with a :class:`alband.store.budget_guard.BudgetGuard`, the order that
keeps the ledger's ``spent_usd`` below the guard's ``spent + reserved`` (and
therefore below the limit) at every instant is::

    reservation = guard.reserve(max_cost)     # may raise BudgetExhausted
    row = ledger.reserve(round, i, item_id, annotator, max_cost)
    annotation = annotator.annotate(item)     # the paid call
    ledger.settle(row, annotation)            # or ledger.release(row)
    guard.settle(reservation, annotation.cost_usd)   # or guard.release(...)

One process writes a ledger at a time (an ``flock`` on ``<ledger>.lock``,
released by the kernel even on SIGKILL); within it, one connection is shared
by the worker threads behind a lock. Read-only ledgers (reports, other
processes) take no lock and see every committed row.
"""

from __future__ import annotations

import json
import math
import operator
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from alband.annotation import Annotation
from alband.errors import AlbandError

try:  # POSIX only; elsewhere the single-writer lock is skipped.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LEDGER_FILENAME = "ledger.sqlite"
SCHEMA_VERSION = 2

STATUS_RESERVED = "reserved"
STATUS_SETTLED = "settled"
STATUS_RELEASED = "released"
STATUS_CHARGED = "charged"
STATUS_SKIPPED = "skipped"
STATUSES = (STATUS_RESERVED, STATUS_SETTLED, STATUS_RELEASED, STATUS_CHARGED, STATUS_SKIPPED)

#: The kind of a charge that buys a label; other kinds name calls that produce none.
KIND_LABEL = "label"

# An actual cost may exceed its reservation by float rounding only
# (the same tolerance as alband.costs.budget).
_TOLERANCE_USD = 1e-12

_STATUS_LIST = ", ".join(f"'{status}'" for status in STATUSES)

_TABLE = f"""
CREATE TABLE annotations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    round         INTEGER NOT NULL CHECK (round >= 0),
    pool_index    INTEGER CHECK (pool_index IS NULL OR pool_index >= 0),
    item_id       TEXT    NOT NULL,
    annotator     TEXT    NOT NULL CHECK (length(annotator) > 0),
    label         INTEGER CHECK (label IS NULL OR label >= 0),
    valid         INTEGER CHECK (valid IS NULL OR valid IN (0, 1)),
    confidence    REAL,
    cost_usd      REAL    NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    reserved_usd  REAL    NOT NULL CHECK (reserved_usd >= 0),
    input_tokens  INTEGER CHECK (input_tokens IS NULL OR input_tokens >= 0),
    output_tokens INTEGER CHECK (output_tokens IS NULL OR output_tokens >= 0),
    latency_s     REAL,
    response_id   TEXT,
    raw           TEXT,
    extra         TEXT,
    status        TEXT    NOT NULL CHECK (status IN ({_STATUS_LIST})),
    created_at    TEXT    NOT NULL,
    settled_at    TEXT,
    kind          TEXT    NOT NULL DEFAULT '{KIND_LABEL}' CHECK (length(kind) > 0),
    charge_key    TEXT    NOT NULL,
    attempt       INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    overrun       INTEGER NOT NULL DEFAULT 0 CHECK (overrun IN (0, 1)),
    CHECK (status = '{STATUS_RESERVED}' OR settled_at IS NOT NULL),
    CHECK (status != '{STATUS_SETTLED}' OR kind != '{KIND_LABEL}' OR valid = (label IS NOT NULL)),
    CHECK (status NOT IN ('{STATUS_RELEASED}', '{STATUS_SKIPPED}') OR cost_usd = 0),
    CHECK (kind != '{KIND_LABEL}' OR pool_index IS NOT NULL)
)"""

_INDEXES = f"""
CREATE UNIQUE INDEX annotations_one_outcome_per_pair
    ON annotations (kind, charge_key, annotator) WHERE status IN ('{STATUS_SETTLED}', '{STATUS_SKIPPED}');
CREATE INDEX annotations_by_status ON annotations (status);
CREATE INDEX annotations_by_key ON annotations (charge_key, annotator)
"""

_SCHEMA = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
{_TABLE};
{_INDEXES}
"""

_COLUMNS = (
    "id", "round", "pool_index", "item_id", "annotator", "label", "valid", "confidence",
    "cost_usd", "reserved_usd", "input_tokens", "output_tokens", "latency_s", "response_id",
    "raw", "extra", "status", "created_at", "settled_at", "kind", "charge_key", "attempt", "overrun",
)
_V1_COLUMNS = _COLUMNS[:19]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM annotations"


def _read_only_uri_flags(path: Path) -> str:
    """Extra URI flags for reading a ledger whose folder this process cannot write.

    A reader of a WAL database needs its index file (``-shm``), which SQLite
    creates next to it. When the folder is not writable and neither ``-wal``
    nor ``-shm`` exists, no writer has the ledger open (a writer creates
    both) and every commit is in the main file, so it is read as immutable.
    With a ``-wal`` left there, its commits cannot be read without the index:
    that is an error naming the cause.
    """
    if os.access(path.parent, os.W_OK):
        return ""
    wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
    if not wal.exists() and not shm.exists():
        return "&immutable=1"
    if not shm.exists():
        raise AlbandError(f"ledger {path}: the run directory {path.parent} is not writable and the ledger's "
                          f"write-ahead log {wal.name} needs an index file there; make the directory writable")
    return ""


def _require_writable(path: Path) -> None:
    """Raise :class:`AlbandError` unless a writer can write the ledger, its journal and lock, and their folder.

    Checked before SQLite opens the file: SQLite falls back to read-only
    silently, and the first write would fail far from the cause.
    """
    if not os.access(path.parent, os.W_OK):
        raise AlbandError(f"ledger {path}: the run directory {path.parent} is not writable (a run writes its "
                          "ledger, journal and lock file there); make it writable, or read it with alband report")
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                 path.with_name(path.name + ".lock")):
        if part.exists() and not os.access(part, os.W_OK):
            raise AlbandError(f"ledger {path}: {part.name} is read-only and a run writes it; make it writable, "
                              "or read the run with alband report")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class LedgerRow:
    """One row of the ``annotations`` table, as stored."""

    id: int
    round: int
    pool_index: int | None
    item_id: str
    annotator: str
    label: int | None
    valid: bool | None
    confidence: float | None
    cost_usd: float
    reserved_usd: float
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float | None
    response_id: str | None
    raw: str | None
    extra: dict = field(default_factory=dict)
    status: str = STATUS_RESERVED
    created_at: str = ""
    settled_at: str | None = None
    kind: str = KIND_LABEL
    charge_key: str = ""
    attempt: int = 1
    overrun: bool = False

    @property
    def committed_usd(self) -> float:
        """Dollars this row counts towards :meth:`Ledger.spent_usd`."""
        if self.status in (STATUS_SETTLED, STATUS_CHARGED):
            return self.cost_usd
        if self.status == STATUS_RESERVED:
            return self.reserved_usd
        return 0.0

    def to_annotation(self) -> Annotation:
        """The :class:`Annotation` of a settled row."""
        if self.status != STATUS_SETTLED or self.kind != KIND_LABEL:
            raise AlbandError(f"ledger row {self.id} is a {self.status!r} {self.kind!r} row, not a settled label: "
                              "it has no annotation")
        return Annotation(
            pool_index=self.pool_index,
            item_id=self.item_id,
            annotator=self.annotator,
            label=self.label,
            cost_usd=self.cost_usd,
            input_tokens=self.input_tokens or 0,
            output_tokens=self.output_tokens or 0,
            confidence=float("nan") if self.confidence is None else self.confidence,
            latency_s=self.latency_s or 0.0,
            response_id=self.response_id or "",
            raw=self.raw or "",
            extra=dict(self.extra),
        )


def _row_from_tuple(values: tuple) -> LedgerRow:
    d = dict(zip(_COLUMNS, values))
    d["valid"] = None if d["valid"] is None else bool(d["valid"])
    d["extra"] = json.loads(d["extra"]) if d["extra"] else {}
    d["overrun"] = bool(d["overrun"])
    return LedgerRow(**d)


def _kind(kind: Any) -> str:
    if not isinstance(kind, str) or not kind or not kind.strip() == kind:
        raise AlbandError(f"a charge kind must be a non-empty name without surrounding spaces, got {kind!r}")
    return kind


def _what(kind: str, key: str) -> str:
    return f"item {key!r}" if kind == KIND_LABEL else f"{kind} charge {key!r}"


def _extra_json(extra: dict, row_id: int) -> str | None:
    try:
        return json.dumps(extra, allow_nan=False, sort_keys=True) if extra else None
    except (TypeError, ValueError) as exc:
        raise AlbandError(f"extra of ledger row {row_id} is not JSON-serialisable ({exc})") from exc


def _non_negative_int(value: Any, what: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise AlbandError(f"{what} must be an integer, got {value!r}") from None
    if number < 0:
        raise AlbandError(f"{what} must be >= 0, got {number}")
    return number


def _dollars(value: Any, what: str) -> float:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise AlbandError(f"{what} must be a number of dollars, got {value!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise AlbandError(f"{what} must be a finite amount of dollars >= 0, got {value!r}")
    return amount


class Ledger:
    """The SQLite ledger of one run (see the module docstring).

    Open with :meth:`Ledger.open`; every method is safe to call from several
    threads of the owning process, and every write is committed (durably)
    before the method returns.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, *, read_only: bool,
                 lock_file: Any = None) -> None:
        # Use Ledger.open(); the constructor only holds what it validated.
        self._path = path
        self._conn: sqlite3.Connection | None = connection
        self._read_only = read_only
        self._lock_file = lock_file
        self._lock = threading.Lock()
        # Reservations made through this object and not yet settled/released:
        # row id -> (pool_index, annotator). Rows left 'reserved' by an earlier
        # (killed) process are not in here: they are orphans.
        self._open_rows: dict[int, tuple[int, str]] = {}

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool, read_only: bool = False) -> "Ledger":
        """Open the ledger at ``path`` (a ``ledger.sqlite`` file).

        ``create=True`` creates it when absent (or empty) and opens it
        otherwise; ``create=False`` requires it to exist. Either way the file
        is checked (``PRAGMA integrity_check``, schema version) and a missing
        or corrupted ledger raises :class:`AlbandError` naming the file.
        ``read_only=True`` opens without taking the writer lock (for reports
        or while another process runs).
        """
        path = Path(path)
        if read_only and create:
            raise AlbandError(f"{path}: a ledger cannot be both created and opened read-only")
        if path.is_dir():
            raise AlbandError(f"{path} is a directory, not a ledger file (expected {path / LEDGER_FILENAME}?)")
        exists = path.exists() and path.stat().st_size > 0
        if not exists and not create:
            raise AlbandError(f"ledger {path} is missing")
        if not path.parent.is_dir():
            raise AlbandError(f"cannot create ledger {path}: directory {path.parent} does not exist")

        if not read_only:
            _require_writable(path)
        lock_file = None if read_only else cls._take_writer_lock(path)
        try:
            if read_only:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{_read_only_uri_flags(path)}", uri=True,
                                       timeout=30.0, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            cls._drop_writer_lock(lock_file)
            raise AlbandError(f"ledger {path} cannot be opened: {exc}") from exc
        try:
            if cls._prepare(conn, path, read_only=read_only) == "migrate-copy":
                # A version-1 ledger read without writing: migrate a private in-memory snapshot.
                copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                conn.backup(copy)
                conn.close()
                conn = copy
                cls._migrate_v1(conn)
        except BaseException:
            conn.close()
            cls._drop_writer_lock(lock_file)
            raise
        return cls(path, conn, read_only=read_only, lock_file=lock_file)

    @staticmethod
    def _take_writer_lock(path: Path) -> Any:
        if fcntl is None:  # pragma: no cover - Windows
            return None
        lock_path = path.with_name(path.name + ".lock")
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlbandError(
                f"ledger {path} is already open for writing (by pid {holder}); "
                "two writers on one ledger could buy the same annotation twice"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    @staticmethod
    def _drop_writer_lock(handle: Any) -> None:
        if handle is not None:
            handle.close()  # closing the descriptor releases the flock

    @staticmethod
    def _prepare(conn: sqlite3.Connection, path: Path, *, read_only: bool) -> str | None:
        """Configure, check and (when new) initialise or migrate an open connection.

        Returns ``"migrate-copy"`` for a version-1 ledger opened read-only.
        """
        try:
            if not read_only:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise AlbandError(f"ledger {path}: cannot switch to WAL journal mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                detail = "; ".join(str(p) for p in problems[:5])
                raise AlbandError(f"ledger {path} is corrupted (integrity check: {detail})")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                if read_only:
                    raise AlbandError(f"ledger {path} is empty (no tables): not an alband ledger")
                Ledger._initialise(conn)
                return None
            if not {"meta", "annotations"} <= tables:
                raise AlbandError(
                    f"{path} is an SQLite file but not an alband ledger "
                    f"(tables {sorted(tables)}, expected 'meta' and 'annotations')"
                )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise AlbandError(f"ledger {path} has no schema_version in its meta table: not an alband ledger")
            version = json.loads(row[0])
            if version == 1:
                if read_only:
                    return "migrate-copy"
                Ledger._migrate_v1(conn)
                return None
            if version != SCHEMA_VERSION:
                newer = isinstance(version, int) and version > SCHEMA_VERSION
                raise AlbandError(
                    f"ledger {path} has schema version {version!r}, this alband reads version {SCHEMA_VERSION}"
                    + (" (written by a newer alband: upgrade alband)" if newer else "")
                )
        except sqlite3.DatabaseError as exc:
            raise AlbandError(f"ledger {path} is not a readable SQLite ledger ({exc})") from exc
        except (json.JSONDecodeError, TypeError) as exc:
            raise AlbandError(f"ledger {path}: unreadable schema_version in the meta table ({exc})") from exc

    @staticmethod
    def _migrate_v1(conn: sqlite3.Connection) -> None:
        """Rebuild a version-1 ``annotations`` table as version 2, in one transaction.

        Every row keeps its id and values; it becomes a ``'label'`` charge keyed
        by its item id, attempt 1, no overrun.
        """
        columns = ", ".join(_V1_COLUMNS)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DROP INDEX IF EXISTS annotations_one_settled_per_pair")
            conn.execute("DROP INDEX IF EXISTS annotations_by_status")
            conn.execute("ALTER TABLE annotations RENAME TO annotations_v1")
            conn.execute(_TABLE)
            conn.execute(f"INSERT INTO annotations ({columns}, kind, charge_key, attempt, overrun) "
                         f"SELECT {columns}, '{KIND_LABEL}', item_id, 1, 0 FROM annotations_v1 ORDER BY id")
            conn.execute("DROP TABLE annotations_v1")
            for statement in filter(None, (part.strip() for part in _INDEXES.split(";"))):
                conn.execute(statement)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise AlbandError(f"cannot migrate the version-1 ledger to version {SCHEMA_VERSION}: two settled "
                              f"rows share an item id and annotator ({exc})") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _initialise(conn: sqlite3.Connection) -> None:
        from alband import __version__

        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript() would COMMIT first; run the DDL inside this transaction.
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            for key, value in (("schema_version", SCHEMA_VERSION), ("alband_version", __version__),
                               ("created_at", _utc_now())):
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------- plumbing
    @property
    def path(self) -> Path:
        return self._path

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AlbandError(f"ledger {self._path} is closed")
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        conn = self._connection()
        if self._read_only:
            raise AlbandError(f"ledger {self._path} was opened read-only")
        return conn

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent).

        Reservations still open stay ``'reserved'`` in the file, exactly as
        after a crash, and keep counting towards :meth:`spent_usd`.
        """
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._drop_writer_lock(self._lock_file)
            self._lock_file = None
            self._open_rows.clear()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self._read_only else "open")
        return f"Ledger({str(self._path)!r}, {state})"

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``, committed at once."""
        if not isinstance(key, str) or not key:
            raise AlbandError(f"ledger meta key must be a non-empty string, got {key!r}")
        if key == "schema_version":
            raise AlbandError("ledger meta 'schema_version' is managed by alband and cannot be set")
        try:
            text = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise AlbandError(f"ledger meta {key!r}: value is not JSON-serialisable ({exc})") from exc
        with self._lock:
            self._writable().execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when absent."""
        with self._lock:
            row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def meta(self) -> dict[str, Any]:
        """Every meta entry."""
        with self._lock:
            rows = self._connection().execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        return {key: json.loads(value) for key, value in rows}

    # ------------------------------------------------------ reserve / settle
    def reserve(self, round: int, pool_index: int | None, item_id: str, annotator: str, reserved_usd: float, *,
                kind: str = KIND_LABEL, key: str | None = None, attempt: int = 1) -> int:
        """Commit a ``'reserved'`` row before the paid attempt; returns its row id.

        A label (``kind='label'``) is keyed by ``item_id``; another kind of
        charge by ``key`` (``pool_index`` may then be None). Refuses
        (:class:`AlbandError`) a ``(kind, key, annotator)`` that is already
        settled or skipped, or has an open reservation from this process. A
        pair whose only reservation was left by a killed process (an orphan,
        see :meth:`unsettled`) may be reserved again.
        """
        round = _non_negative_int(round, "round")
        kind = _kind(kind)
        if pool_index is not None:
            pool_index = _non_negative_int(pool_index, "pool_index")
        elif kind == KIND_LABEL:
            raise AlbandError("a label charge needs the item's pool_index")
        if not isinstance(item_id, str):
            raise AlbandError(f"item_id must be a string, got {item_id!r}")
        if not isinstance(annotator, str) or not annotator:
            raise AlbandError(f"annotator must be a non-empty string, got {annotator!r}")
        key = item_id if key is None else key
        if not isinstance(key, str) or not key:
            raise AlbandError(f"a charge key must be a non-empty string, got {key!r}")
        attempt = _non_negative_int(attempt, "attempt")
        if attempt < 1:
            raise AlbandError(f"attempt must be >= 1, got {attempt}")
        reserved_usd = _dollars(reserved_usd, "reserved_usd")
        pair = (kind, key, annotator)
        with self._lock:
            conn = self._writable()
            if pair in self._open_rows.values():
                raise AlbandError(f"{_what(kind, key)} already has an open reservation for annotator {annotator!r}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = conn.execute(
                    "SELECT id, status FROM annotations WHERE kind = ? AND charge_key = ? AND annotator = ? "
                    "AND status IN (?, ?)", (kind, key, annotator, STATUS_SETTLED, STATUS_SKIPPED),
                ).fetchone()
                if done is not None:
                    raise AlbandError(
                        f"{_what(kind, key)} is already {done[1]} for {annotator!r} "
                        f"(ledger row {done[0]}): it will not be bought twice"
                    )
                cursor = conn.execute(
                    "INSERT INTO annotations (round, pool_index, item_id, annotator, reserved_usd, cost_usd,"
                    " status, created_at, kind, charge_key, attempt) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                    (round, pool_index, item_id, annotator, reserved_usd, STATUS_RESERVED, _utc_now(),
                     kind, key, attempt),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            row_id = int(cursor.lastrowid)
            self._open_rows[row_id] = pair
            return row_id

    def _reserved_row(self, conn: sqlite3.Connection, row_id: int) -> LedgerRow:
        values = conn.execute(f"{_SELECT} WHERE id = ?", (row_id,)).fetchone()
        if values is None:
            raise AlbandError(f"ledger {self._path} has no row {row_id}")
        row = _row_from_tuple(values)
        if row.status != STATUS_RESERVED:
            raise AlbandError(f"ledger row {row_id} is already {row.status}; only a reserved row can change")
        return row

    def settle(self, row_id: int, annotation: Annotation) -> bool:
        """Record the paid answer of reserved label row ``row_id``, committed at once.

        The annotation must be for the row's pool index, item and annotator.
        A cost above the reservation is recorded as billed, with
        ``overrun = 1``; the return value says whether that happened. If the
        pair is already settled by another row (an orphan settled late),
        :class:`AlbandError` is raised and the row stays reserved, still
        counted in :meth:`spent_usd`.
        """
        row_id = _non_negative_int(row_id, "row_id")
        if not isinstance(annotation, Annotation):
            raise AlbandError(f"settle() needs an Annotation, got {type(annotation).__name__}")
        cost = _dollars(annotation.cost_usd, f"cost_usd of the annotation for ledger row {row_id}")
        label = None if annotation.label is None else _non_negative_int(annotation.label, "label")
        input_tokens = _non_negative_int(annotation.input_tokens, "input_tokens")
        output_tokens = _non_negative_int(annotation.output_tokens, "output_tokens")
        confidence = float(annotation.confidence)
        extra = _extra_json(annotation.extra, row_id)
        with self._lock:
            conn = self._writable()
            row = self._reserved_row(conn, row_id)
            if row.kind != KIND_LABEL:
                raise AlbandError(f"ledger row {row_id} is a {row.kind!r} charge: settle it with settle_charge()")
            if (annotation.pool_index, annotation.item_id, annotation.annotator) != (
                row.pool_index, row.item_id, row.annotator
            ):
                raise AlbandError(
                    f"ledger row {row_id} reserved pool index {row.pool_index} (item {row.item_id!r}) for "
                    f"{row.annotator!r}, but the annotation is for pool index {annotation.pool_index} "
                    f"(item {annotation.item_id!r}) by {annotation.annotator!r}"
                )
            overrun = cost > row.reserved_usd + _TOLERANCE_USD
            self._finish(conn, row, STATUS_SETTLED, cost, overrun, (
                "label = ?, valid = ?, confidence = ?, input_tokens = ?, output_tokens = ?, latency_s = ?,"
                " response_id = ?, raw = ?, extra = ?",
                (label, int(label is not None), None if math.isnan(confidence) else confidence,
                 input_tokens, output_tokens, float(annotation.latency_s), str(annotation.response_id),
                 str(annotation.raw), extra)))
            return overrun

    def settle_charge(self, row_id: int, cost_usd: float, *, response_id: str = "", raw: str = "",
                      input_tokens: int = 0, output_tokens: int = 0, extra: dict | None = None,
                      latency_s: float | None = None) -> bool:
        """Record the result of reserved row ``row_id`` of a charge that is not a label.

        As :meth:`settle`: a cost above the reservation is kept with
        ``overrun = 1`` (returned). ``latency_s``: the call's wall seconds
        (None: not measured, stored as NULL).
        """
        row_id = _non_negative_int(row_id, "row_id")
        cost = _dollars(cost_usd, f"cost_usd of ledger row {row_id}")
        if latency_s is not None and not (isinstance(latency_s, (int, float)) and not isinstance(latency_s, bool)
                                          and math.isfinite(latency_s) and latency_s >= 0):
            raise AlbandError(f"latency_s of ledger row {row_id} must be a finite number >= 0, got {latency_s!r}")
        text = _extra_json(extra or {}, row_id)
        with self._lock:
            conn = self._writable()
            row = self._reserved_row(conn, row_id)
            if row.kind == KIND_LABEL:
                raise AlbandError(f"ledger row {row_id} is a label: settle it with settle()")
            overrun = cost > row.reserved_usd + _TOLERANCE_USD
            self._finish(conn, row, STATUS_SETTLED, cost, overrun, (
                "input_tokens = ?, output_tokens = ?, latency_s = ?, response_id = ?, raw = ?, extra = ?",
                (_non_negative_int(input_tokens, "input_tokens"), _non_negative_int(output_tokens, "output_tokens"),
                 None if latency_s is None else float(latency_s), str(response_id), str(raw), text)))
            return overrun

    def charge(self, row_id: int, cost_usd: float | None = None, *, reason: str = "") -> None:
        """Record an attempt that may have been billed but gave no answer (``status='charged'``).

        ``cost_usd`` defaults to the whole reservation (the provider may have
        billed up to it; a timed-out attempt stays counted in full).
        """
        row_id = _non_negative_int(row_id, "row_id")
        with self._lock:
            conn = self._writable()
            row = self._reserved_row(conn, row_id)
            cost = row.reserved_usd if cost_usd is None else _dollars(cost_usd, f"cost_usd of ledger row {row_id}")
            overrun = cost > row.reserved_usd + _TOLERANCE_USD
            self._finish(conn, row, STATUS_CHARGED, cost, overrun,
                         ("extra = ?", (_extra_json({"reason": reason} if reason else {}, row_id),)))

    def release(self, row_id: int, *, reason: str = "") -> None:
        """Mark reserved row ``row_id`` as failed without billing (cost 0), committed at once."""
        row_id = _non_negative_int(row_id, "row_id")
        with self._lock:
            conn = self._writable()
            row = self._reserved_row(conn, row_id)
            self._finish(conn, row, STATUS_RELEASED, 0.0, False,
                         ("extra = ?", (_extra_json({"reason": reason} if reason else {}, row_id),)))

    def _finish(self, conn: sqlite3.Connection, row: LedgerRow, status: str, cost: float, overrun: bool,
                fields: tuple[str, tuple]) -> None:
        """Move reserved ``row`` to ``status`` with ``cost`` and the extra ``fields`` (SQL, values)."""
        sql, values = fields
        try:
            conn.execute(
                f"UPDATE annotations SET {sql}, cost_usd = ?, overrun = ?, status = ?, settled_at = ? "
                "WHERE id = ? AND status = ?",
                (*values, cost, int(overrun), status, _utc_now(), row.id, STATUS_RESERVED),
            )
        except sqlite3.IntegrityError as exc:
            holder = conn.execute(
                "SELECT id FROM annotations WHERE kind = ? AND charge_key = ? AND annotator = ? AND status IN (?, ?)",
                (row.kind, row.charge_key, row.annotator, STATUS_SETTLED, STATUS_SKIPPED),
            ).fetchone()
            raise AlbandError(
                f"ledger row {row.id}: {_what(row.kind, row.charge_key)} is already settled for "
                f"{row.annotator!r} (row {holder[0] if holder else '?'}); this row stays reserved"
            ) from exc
        self._open_rows.pop(row.id, None)

    def skip(self, round: int, pool_index: int | None, item_id: str, annotator: str, reason: str, *,
             kind: str = KIND_LABEL, key: str | None = None) -> int:
        """Record that ``(kind, key, annotator)`` was given up (``status='skipped'``, cost 0); returns the row id.

        A skipped pair is never bought again by :meth:`reserve`: a resumed run
        finds the skip with :meth:`skip_for` and passes over the item.
        """
        row_id = self.reserve(round, pool_index, item_id, annotator, 0.0, kind=kind, key=key)
        with self._lock:
            conn = self._writable()
            row = self._reserved_row(conn, row_id)
            self._finish(conn, row, STATUS_SKIPPED, 0.0, False,
                         ("extra = ?", (_extra_json({"reason": reason}, row_id),)))
        return row_id

    # ----------------------------------------------------------------- reads
    def _rows(self, where: str = "", params: tuple = ()) -> list[LedgerRow]:
        with self._lock:
            values = self._connection().execute(f"{_SELECT} {where}", params).fetchall()
        return [_row_from_tuple(v) for v in values]

    def rows(self, status: str | None = None) -> list[LedgerRow]:
        """Every row (or those with ``status``), in row-id order."""
        if status is None:
            return self._rows("ORDER BY id")
        if status not in STATUSES:
            raise AlbandError(f"unknown ledger status {status!r}; expected one of {', '.join(STATUSES)}")
        return self._rows("WHERE status = ? ORDER BY id", (status,))

    def unsettled(self) -> list[LedgerRow]:
        """Rows still ``'reserved'``: open requests of this process and orphans of a killed one."""
        return self.rows(STATUS_RESERVED)

    def orphans(self) -> list[LedgerRow]:
        """Reserved rows this process did not make (left by a run that was killed mid-request)."""
        with self._lock:
            mine = set(self._open_rows)
        return [row for row in self.unsettled() if row.id not in mine]

    def settled(self) -> list[Annotation]:
        """Every settled annotation (label charges), in the order it was settled."""
        return [r.to_annotation() for r in self._rows("WHERE status = ? AND kind = ? ORDER BY settled_at, id",
                                                      (STATUS_SETTLED, KIND_LABEL))]

    def settled_annotations(self, annotator: str | None = None) -> dict[int, Annotation]:
        """Settled annotations keyed by pool index.

        With ``annotator``, that annotator's (unique) annotation of each pool
        index it labeled. Without, the most recently settled annotation of
        each pool index, whoever made it.
        """
        if annotator is None:
            return {a.pool_index: a for a in self.settled()}
        rows = self._rows("WHERE status = ? AND kind = ? AND annotator = ? ORDER BY settled_at, id",
                          (STATUS_SETTLED, KIND_LABEL, annotator))
        return {r.pool_index: r.to_annotation() for r in rows}

    def annotation_for(self, item: str | int, annotator: str) -> Annotation | None:
        """The settled annotation of ``item`` by ``annotator``, or ``None``.

        ``item`` is the item's id (a string: the match a resumed run uses,
        whatever the item's position); an int is a pool index.
        """
        if isinstance(item, str):
            rows = self._rows("WHERE status = ? AND kind = ? AND charge_key = ? AND annotator = ?",
                              (STATUS_SETTLED, KIND_LABEL, item, annotator))
        else:
            rows = self._rows("WHERE status = ? AND kind = ? AND pool_index = ? AND annotator = ?",
                              (STATUS_SETTLED, KIND_LABEL, _non_negative_int(item, "pool_index"), annotator))
        return rows[0].to_annotation() if rows else None

    def skip_for(self, key: str, annotator: str, *, kind: str = KIND_LABEL) -> LedgerRow | None:
        """The ``'skipped'`` row of ``(kind, key, annotator)`` (a label's key is its item id), or ``None``."""
        rows = self._rows("WHERE status = ? AND kind = ? AND charge_key = ? AND annotator = ?",
                          (STATUS_SKIPPED, kind, key, annotator))
        return rows[0] if rows else None

    def charge_for(self, kind: str, key: str, annotator: str) -> LedgerRow | None:
        """The settled row of the charge ``(kind, key, annotator)``, or ``None``."""
        rows = self._rows("WHERE status = ? AND kind = ? AND charge_key = ? AND annotator = ?",
                          (STATUS_SETTLED, _kind(kind), key, annotator))
        return rows[0] if rows else None

    def attempt_count(self, key: str, annotator: str, *, kind: str = KIND_LABEL) -> int:
        """Number of attempts (rows other than skips) of ``(kind, key, annotator)`` so far."""
        with self._lock:
            return int(self._connection().execute(
                "SELECT COUNT(*) FROM annotations WHERE charge_key = ? AND annotator = ? AND kind = ? AND status != ?",
                (key, annotator, kind, STATUS_SKIPPED)).fetchone()[0])

    def attempts(self, key: str, annotator: str, *, kind: str = KIND_LABEL) -> list[LedgerRow]:
        """Every row (attempt) of ``(kind, key, annotator)``, in row-id order."""
        return self._rows("WHERE kind = ? AND charge_key = ? AND annotator = ? ORDER BY id", (kind, key, annotator))

    def _sum(self, sql: str, params: tuple = ()) -> float:
        with self._lock:
            values = self._connection().execute(sql, params).fetchall()
        return math.fsum(v[0] for v in values)

    def settled_usd(self) -> float:
        """Sum of the actual costs of settled and charged rows (every attempt known or assumed billed)."""
        return self._sum("SELECT cost_usd FROM annotations WHERE status IN (?, ?)", (STATUS_SETTLED, STATUS_CHARGED))

    def reserved_usd(self) -> float:
        """Sum of the reservations of rows still ``'reserved'``."""
        return self._sum("SELECT reserved_usd FROM annotations WHERE status = ?", (STATUS_RESERVED,))

    def spent_usd(self) -> float:
        """Settled and charged costs plus the reservations of rows left reserved (an upper bound on billing)."""
        return self._sum(
            "SELECT CASE WHEN status IN (?, ?) THEN cost_usd WHEN status = ? THEN reserved_usd ELSE 0.0 END "
            "FROM annotations",
            (STATUS_SETTLED, STATUS_CHARGED, STATUS_RESERVED),
        )

    def budget(self, limit_usd: float):
        """The :class:`alband.costs.Budget` a resumed run starts from.

        Everything committed so far (including orphan reservations) counts as
        spent. Call it before making reservations of this process.
        """
        from alband.costs.budget import Budget

        with self._lock:
            if self._open_rows:
                raise AlbandError(
                    f"ledger {self._path}: budget() is for resuming; {len(self._open_rows)} reservations "
                    "of this process are still open"
                )
        return Budget(limit_usd=limit_usd, spent_usd=self.spent_usd())

    def count(self, status: str | None = None) -> int:
        """Number of rows (with ``status``)."""
        if status is not None and status not in STATUSES:
            raise AlbandError(f"unknown ledger status {status!r}; expected one of {', '.join(STATUSES)}")
        sql, params = ("SELECT COUNT(*) FROM annotations", ()) if status is None else (
            "SELECT COUNT(*) FROM annotations WHERE status = ?", (status,))
        with self._lock:
            return int(self._connection().execute(sql, params).fetchone()[0])

    def __iter__(self) -> Iterator[LedgerRow]:
        return iter(self.rows())
