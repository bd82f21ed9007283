"""The event store: an append-only, hash-chained journal of lifecycle events.

Every event belongs to a stream (``container/<id>``, ``daemon/<host>``) and carries that
stream's version, a global ``seq`` and a SHA-256 hash over the previous event's hash and its
own canonical JSON, so any edited, removed or reordered row breaks the chain at a seq that
``verify`` names.

Appends are serialised by the database: on SQLite every write transaction starts with
``BEGIN IMMEDIATE``, on PostgreSQL with a transaction-scoped advisory lock. Inside that lock the
store reads the stream's version (the optimistic check), the chain's head (seq and hash), and
inserts the batch, so seq order, chain order and commit order are the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from journal import migrate
from journal.errors import InvalidEvent, JournalUnavailable, VersionConflict
from journal.schema import events, snapshots

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Seconds a writer waits for another writer's lock before SQLite reports "database is locked".
DEFAULT_BUSY_TIMEOUT = 30.0

# PostgreSQL advisory lock key that serialises appends; any constant works if only bosun uses it.
POSTGRES_APPEND_LOCK = 0x626F73756E


def utc_now() -> str:
    """Return the current UTC time in the journal's fixed-width text format."""
    return dt.datetime.now(dt.timezone.utc).strftime(TIME_FORMAT)


def parse_time(value: str) -> dt.datetime:
    """Parse a journal time (or any ISO 8601 time) into an aware datetime."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def format_time(value: dt.datetime) -> str:
    """Format an aware datetime in the journal's text format, for range queries."""
    return value.astimezone(dt.timezone.utc).strftime(TIME_FORMAT)


def canonical_json(value: Any) -> str:
    """Serialise ``value`` the one way the hash chain expects: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(previous_hash: str, body: Mapping[str, Any]) -> str:
    """Return the SHA-256 link of an event whose hashed fields are ``body``."""
    digest = hashlib.sha256()
    digest.update(previous_hash.encode("ascii"))
    digest.update(canonical_json(body).encode("utf-8"))
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class NewEvent:
    """An event to append: its type, JSON-safe data and the command it belongs to."""

    type: str
    data: Mapping[str, Any]
    command_id: str | None = None


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    """An event as committed to the journal."""

    seq: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    recorded_at: str
    command_id: str | None
    host: str
    hash: str

    def hashed_body(self) -> dict[str, Any]:
        """Return the fields covered by the hash chain (everything but the hash itself)."""
        return {
            "seq": self.seq,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "data": self.data,
            "recorded_at": self.recorded_at,
            "command_id": self.command_id,
            "host": self.host,
        }

    def to_json(self) -> dict[str, Any]:
        """Return the event as the API and ``journal export`` show it."""
        return {**self.hashed_body(), "hash": self.hash}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A stream's folded state at a version, kept only to make replay faster."""

    stream: str
    version: int
    last_seq: int
    state: dict[str, Any]
    schema: int
    taken_at: str


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """The verdict of a hash-chain walk."""

    ok: bool
    events_checked: int
    last_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def _row_to_event(row: Any) -> StoredEvent:
    # Unpacking by position skips a lookup by name per column, and replay does this per event.
    seq, stream, version, event_type, data, recorded_at, command_id, host, hash_ = row
    return StoredEvent(
        seq=seq,
        stream=stream,
        version=version,
        type=event_type,
        data=json.loads(data),
        recorded_at=recorded_at,
        command_id=command_id,
        host=host,
        hash=hash_,
    )


def _prefix_range(column: Any, prefix: str) -> list[Any]:
    """Return conditions that keep ``column`` to values starting with ``prefix``.

    A range rather than LIKE, so the database can seek in an index on ``column``.
    """
    if not prefix:
        return []
    following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [column >= prefix, column < following]


def _tails_query(schema: int, stream_prefix: str) -> Any:
    """Build the query behind ``EventStore.iter_after_snapshots``.

    ``names`` walks the distinct stream names through the (stream, version) index, one seek per
    stream (a loose index scan), because a GROUP BY would read every event of the history.
    """
    first = select(func.min(events.c.stream).label("stream")).where(*_prefix_range(events.c.stream, stream_prefix))
    names = first.cte("names", recursive=True)
    later = events.alias("later")
    following = (
        select(func.min(later.c.stream))
        .where(later.c.stream > names.c.stream, *_prefix_range(later.c.stream, stream_prefix))
        .scalar_subquery()
    )
    names = names.union_all(select(following).where(names.c.stream.is_not(None)))

    newest = (
        select(snapshots.c.version)
        .where(snapshots.c.stream == names.c.stream, snapshots.c.schema == schema)
        .order_by(snapshots.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    tails = (
        select(names.c.stream, func.coalesce(newest, 0).label("after"))
        .where(names.c.stream.is_not(None))
        .cte("tails")
    )
    return (
        select(events)
        .join_from(tails, events, (events.c.stream == tails.c.stream) & (events.c.version > tails.c.after))
        .order_by(events.c.seq)
    )


def _prepare_sqlite_file(database: str) -> None:
    """Create the journal file with mode 0600 before SQLite opens it.

    SQLite gives its -wal and -shm files the permissions of the database file, so creating
    the database owner-only keeps the whole journal owner-only.
    """
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def create_journal_engine(
    url: str, *, synchronous: str = "FULL", busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> Engine:
    """Create an engine for ``url`` with the journal's connection settings.

    On SQLite: WAL so readers never block the writer; ``synchronous`` FULL by default so a
    committed event survives a power loss; a busy timeout so concurrent writers queue instead
    of failing; and transactions begun by hand, because pysqlite's own BEGIN is deferred and
    would let two writers read the same chain head.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        msg = f"invalid SQLite synchronous setting {synchronous!r}: use OFF, NORMAL, FULL or EXTRA"
        raise ValueError(msg)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        _prepare_sqlite_file(database)

    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def configure_sqlite(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Autocommit at the driver level; the "begin" hook below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin_sqlite(connection: Connection) -> None:
        # A write transaction takes the write lock at BEGIN, so the version check and the
        # chain head read inside it cannot be overtaken by another writer.
        if connection.get_execution_options().get("journal_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


class EventStore:
    """An append-only journal of events in streams, backed by any SQLAlchemy database.

    Thread-safe: each call takes its own connection. ``open`` migrates the schema; the
    constructor expects a migrated database.
    """

    def __init__(self, engine: Engine, url: str, *, host: str | None = None) -> None:
        self.engine = engine
        self.url = url
        self.host = host or socket.gethostname()
        self._appended = threading.Condition()
        self._last_seq_notified = 0
        self._closed = False

    @classmethod
    def open(
        cls,
        url: str,
        *,
        host: str | None = None,
        synchronous: str = "FULL",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrate_schema: bool = True,
    ) -> EventStore:
        """Open the journal at ``url``, upgrading an older schema to this code's head.

        Raises ``SchemaTooNew`` for a journal written by a newer bosun and ``JournalUnavailable``
        when the database cannot be opened (corrupt file, permissions, full disk).
        """
        try:
            engine = create_journal_engine(url, synchronous=synchronous, busy_timeout=busy_timeout)
        except OSError as exc:
            # Creating or opening the file for writing failed before SQLite saw it.
            raise JournalUnavailable(url, "opening", str(exc)) from exc
        store = cls(engine, url, host=host)
        try:
            with store._translate_errors("opening"):
                with engine.connect().execution_options(journal_write=True) as connection:
                    with connection.begin():
                        if migrate_schema:
                            migrate.upgrade(connection, url)
                        # Reading the head proves the file is a readable database now,
                        # rather than at the first command.
                        connection.execute(select(func.max(events.c.seq))).scalar()
        except Exception:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Release the connection pool and wake any ``follow`` loops so they end."""
        self._closed = True
        with self._appended:
            self._appended.notify_all()
        self.engine.dispose()

    @property
    def sqlite_path(self) -> Path | None:
        """Return the database file of an SQLite journal, else None."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            return None
        if parsed.database == ":memory:":
            return None
        return Path(parsed.database)

    @contextmanager
    def _translate_errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into journal errors, keeping the driver's message."""
        try:
            yield
        except DBAPIError as exc:
            cause = str(exc.orig) if exc.orig is not None else str(exc)
            raise JournalUnavailable(self.url, action, cause) from exc
        except SQLAlchemyError as exc:
            raise JournalUnavailable(self.url, action, str(exc)) from exc
        except sqlite3.Error as exc:
            # Raw driver calls (the online backup, ``raw_connection``) are not wrapped by SQLAlchemy.
            raise JournalUnavailable(self.url, action, str(exc)) from exc

    @contextmanager
    def _write_transaction(self, action: str) -> Iterator[Connection]:
        with self._translate_errors(action):
            with self.engine.connect().execution_options(journal_write=True) as connection:
                with connection.begin():
                    if connection.dialect.name == "postgresql":
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_APPEND_LOCK}
                        )
                    yield connection

    @contextmanager
    def _read_connection(self, action: str) -> Iterator[Connection]:
        with self._translate_errors(action):
            with self.engine.connect() as connection:
                with connection.begin():
                    yield connection

    # -- appending --------------------------------------------------------------------------

    def append(
        self, stream: str, new_events: Sequence[NewEvent], *, expected_version: int
    ) -> list[StoredEvent]:
        """Append ``new_events`` to ``stream`` if the stream is still at ``expected_version``.

        The batch is written atomically: on ``VersionConflict`` (or any other error) nothing of
        it is stored. Returns the stored events with their seq, version, time and hash. The
        events are durable when this returns. An empty batch raises ``InvalidEvent``, because
        it would pass without the version being checked.
        """
        if not stream:
            raise InvalidEvent("invalid stream name: it must not be empty")
        if not new_events:
            raise InvalidEvent(f"invalid batch for stream {stream}: it must not be empty")
        encoded = [self._encode(stream, new_event) for new_event in new_events]

        try:
            with self._write_transaction(f"appending to stream {stream} in") as connection:
                stored = self._insert_batch(connection, stream, encoded, expected_version)
        except JournalUnavailable as exc:
            # Two writers on a database without our lock (or a PostgreSQL race before the
            # advisory lock) meet the unique (stream, version) key instead.
            if isinstance(exc.__cause__, IntegrityError) and "version" in str(exc.__cause__):
                actual = self.stream_version(stream)
                raise VersionConflict(stream, expected_version, actual) from exc
            raise

        self._notify(stored[-1].seq)
        return stored

    def _encode(self, stream: str, new_event: NewEvent) -> tuple[NewEvent, str]:
        if not new_event.type:
            raise InvalidEvent(f"invalid event for stream {stream}: the type must not be empty")
        try:
            data_json = canonical_json(dict(new_event.data))
        except (TypeError, ValueError) as exc:
            msg = f"invalid data of event {new_event.type} for stream {stream}: {exc}"
            raise InvalidEvent(msg) from exc
        return new_event, data_json

    def _insert_batch(
        self,
        connection: Connection,
        stream: str,
        encoded: Sequence[tuple[NewEvent, str]],
        expected_version: int,
    ) -> list[StoredEvent]:
        actual = connection.execute(
            select(func.coalesce(func.max(events.c.version), 0)).where(events.c.stream == stream)
        ).scalar_one()
        if actual != expected_version:
            raise VersionConflict(stream, expected_version, actual)

        head = connection.execute(
            select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
        ).first()
        seq, previous_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)

        recorded_at = utc_now()
        stored: list[StoredEvent] = []
        rows: list[dict[str, Any]] = []
        for offset, (new_event, data_json) in enumerate(encoded, start=1):
            seq += 1
            body = {
                "seq": seq,
                "stream": stream,
                "version": expected_version + offset,
                "type": new_event.type,
                "data": json.loads(data_json),
                "recorded_at": recorded_at,
                "command_id": new_event.command_id,
                "host": self.host,
            }
            event_hash = chain_hash(previous_hash, body)
            previous_hash = event_hash
            rows.append({**body, "data": data_json, "hash": event_hash})
            stored.append(StoredEvent(**body, hash=event_hash))

        connection.execute(events.insert(), rows)
        return stored

    def _notify(self, seq: int) -> None:
        with self._appended:
            self._last_seq_notified = max(self._last_seq_notified, seq)
            self._appended.notify_all()

    # -- reading ----------------------------------------------------------------------------

    def stream_version(self, stream: str) -> int:
        """Return the stream's last version, 0 for a stream with no events."""
        with self._read_connection(f"reading stream {stream} from") as connection:
            return connection.execute(
                select(func.coalesce(func.max(events.c.version), 0)).where(
                    events.c.stream == stream
                )
            ).scalar_one()

    def stream_versions(self, prefix: str = "") -> dict[str, int]:
        """Return every stream whose name starts with ``prefix`` with its last version."""
        query = select(events.c.stream, func.max(events.c.version)).group_by(events.c.stream)
        if prefix:
            query = query.where(events.c.stream.startswith(prefix, autoescape=True))
        with self._read_connection("listing streams of") as connection:
            return {stream: version for stream, version in connection.execute(query)}

    def last_seq(self) -> int:
        """Return the seq of the newest event, 0 for an empty journal."""
        with self._read_connection("reading") as connection:
            return connection.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one()

    def read_stream(
        self, stream: str, *, after_version: int = 0, until_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the stream's events with a version above ``after_version``, oldest first."""
        query = (
            select(events)
            .where(events.c.stream == stream, events.c.version > after_version)
            .order_by(events.c.version)
        )
        if until_seq is not None:
            query = query.where(events.c.seq <= until_seq)
        with self._read_connection(f"reading stream {stream} from") as connection:
            return [_row_to_event(row) for row in connection.execute(query)]

    def read_all(
        self,
        *,
        after_seq: int = 0,
        limit: int | None = None,
        until_seq: int | None = None,
        until_time: str | None = None,
        stream_prefix: str = "",
        streams: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Return events of all streams in global order, after ``after_seq``.

        ``until_time`` is a journal time string; events recorded at or before it are returned.
        """
        query = select(events).where(events.c.seq > after_seq).order_by(events.c.seq)
        if until_seq is not None:
            query = query.where(events.c.seq <= until_seq)
        if until_time is not None:
            query = query.where(events.c.recorded_at <= until_time)
        if stream_prefix:
            query = query.where(events.c.stream.startswith(stream_prefix, autoescape=True))
        if streams is not None:
            query = query.where(events.c.stream.in_(list(streams)))
        if limit is not None:
            query = query.limit(limit)
        with self._read_connection("reading") as connection:
            return [_row_to_event(row) for row in connection.execute(query)]

    def iter_all(self, *, after_seq: int = 0, batch_size: int = 5000, **filters: Any) -> Iterator[StoredEvent]:
        """Yield events in global order in batches, so a large journal is never held whole."""
        while True:
            batch = self.read_all(after_seq=after_seq, limit=batch_size, **filters)
            yield from batch
            if len(batch) < batch_size:
                return
            after_seq = batch[-1].seq

    def iter_after_snapshots(
        self, *, schema: int, stream_prefix: str = "", batch_size: int = 5000
    ) -> Iterator[StoredEvent]:
        """Yield, in global order, the events of streams under ``stream_prefix`` that come after
        each stream's newest snapshot in format ``schema`` (all events of a stream without one).

        The cost depends on the number of streams and the length of their tails, not on the
        length of the history: the stream names are found by one index seek per stream, each
        stream's newest snapshot version by another, and each tail by a range of the
        (stream, version) index. The rows arrive from one query, ``batch_size`` at a time.
        """
        query = _tails_query(schema, stream_prefix)
        with self._read_connection("reading") as connection:
            for rows in connection.execute(query).partitions(batch_size):
                for row in rows:
                    yield _row_to_event(row)

    def events_for_command(self, command_id: str) -> list[StoredEvent]:
        """Return the intent and outcome events of one command."""
        query = select(events).where(events.c.command_id == command_id).order_by(events.c.seq)
        with self._read_connection("reading") as connection:
            return [_row_to_event(row) for row in connection.execute(query)]

    def wait_for_events(self, after_seq: int, timeout: float) -> bool:
        """Block until this process appends past ``after_seq`` or ``timeout`` passes.

        Appends by other processes are not signalled; ``follow`` polls for those.
        """
        with self._appended:
            if self._last_seq_notified > after_seq or self._closed:
                return True
            return self._appended.wait_for(
                lambda: self._last_seq_notified > after_seq or self._closed, timeout=timeout
            )

    def follow(
        self,
        *,
        after_seq: int = 0,
        stop: threading.Event | None = None,
        poll_interval: float = 0.5,
        stream_prefix: str = "",
        streams: Sequence[str] | None = None,
    ) -> Iterator[StoredEvent]:
        """Yield events after ``after_seq`` as they are committed, until ``stop`` is set.

        Appends made through this store wake the loop at once; appends by another process
        are seen within ``poll_interval`` seconds.
        """
        while not (stop is not None and stop.is_set()) and not self._closed:
            # Filtered reads can skip past other streams' events, so an empty read waits on the
            # global head. The head is read first: an append committed after the read but
            # before a later head read would otherwise wait out the poll interval.
            head = self.last_seq()
            batch = self.read_all(
                after_seq=after_seq, limit=1000, stream_prefix=stream_prefix, streams=streams
            )
            if batch:
                yield from batch
                after_seq = batch[-1].seq
                continue
            self.wait_for_events(max(after_seq, head), timeout=poll_interval)

    # -- integrity --------------------------------------------------------------------------

    def verify(self, *, batch_size: int = 5000, expected_head: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the hash chain from the first event and report the first seq that breaks it.

        A row that was edited fails its own hash; a removed row shows as a gap in seq; rows
        swapped or reordered fail the link to their predecessor.

        Removing the newest rows leaves no gap, so the walk alone cannot see it.
        ``expected_head`` is the ``(last_seq, head_hash)`` of an earlier verify, kept outside the
        journal: the chain must still contain that event with that hash.
        """
        previous_hash = GENESIS_HASH
        expected_seq = 1
        checked = 0
        after_seq = 0

        def broken(seq: int, reason: str) -> VerifyResult:
            return VerifyResult(ok=False, events_checked=checked, last_seq=expected_seq - 1,
                                head_hash=previous_hash, first_bad_seq=seq, reason=reason)

        with self._read_connection("verifying") as connection:
            while True:
                rows = connection.execute(
                    select(events).where(events.c.seq > after_seq).order_by(events.c.seq).limit(batch_size)
                ).all()
                for row in rows:
                    failure = self._check_row(row, expected_seq, previous_hash)
                    if failure is not None:
                        return broken(*failure)
                    if expected_head is not None and row.seq == expected_head[0] and row.hash != expected_head[1]:
                        return broken(row.seq, f"event seq {row.seq} has hash {row.hash}, not the expected head hash {expected_head[1]}")
                    previous_hash = row.hash
                    expected_seq = row.seq + 1
                    checked += 1
                if len(rows) < batch_size:
                    break
                after_seq = rows[-1].seq

        if expected_head is not None and expected_seq - 1 < expected_head[0]:
            return broken(expected_seq, f"the journal ends at seq {expected_seq - 1}, before the expected head seq "
                                        f"{expected_head[0]}: its newest events were removed")
        return VerifyResult(
            ok=True, events_checked=checked, last_seq=expected_seq - 1, head_hash=previous_hash
        )

    @staticmethod
    def _check_row(row: Any, expected_seq: int, previous_hash: str) -> tuple[int, str] | None:
        if row.seq != expected_seq:
            return expected_seq, f"event seq {expected_seq} is missing (next stored seq is {row.seq})"
        try:
            stored = _row_to_event(row)
            # NaN, Infinity and numbers too large for a float are parsed but cannot be re-encoded.
            canonical = canonical_json(stored.data)
        except (TypeError, ValueError, RecursionError) as exc:
            return row.seq, f"event data is not valid JSON: {exc}"
        if canonical != row.data:
            return row.seq, "event data is not in canonical form: it was rewritten"
        expected_hash = chain_hash(previous_hash, stored.hashed_body())
        if expected_hash != row.hash:
            return row.seq, (
                "hash does not match the event and its predecessor: the event was edited, "
                "or an event before it was removed or reordered"
            )
        return None

    # -- snapshots --------------------------------------------------------------------------

    def save_snapshot(
        self, stream: str, version: int, last_seq: int, state: Mapping[str, Any], *, schema: int, keep: int = 2
    ) -> None:
        """Store a stream's folded state at ``version``, keeping the newest ``keep`` per stream."""
        row = {
            "stream": stream,
            "version": version,
            "last_seq": last_seq,
            "state": canonical_json(dict(state)),
            "schema": schema,
            "taken_at": utc_now(),
        }
        with self._write_transaction(f"saving a snapshot of stream {stream} in") as connection:
            exists = connection.execute(
                select(snapshots.c.version).where(
                    snapshots.c.stream == stream, snapshots.c.version == version
                )
            ).first()
            if exists is None:
                connection.execute(snapshots.insert(), [row])
            stale = connection.execute(
                select(snapshots.c.version)
                .where(snapshots.c.stream == stream)
                .order_by(snapshots.c.version.desc())
                .offset(keep)
            ).scalars().all()
            if stale:
                connection.execute(
                    snapshots.delete().where(
                        snapshots.c.stream == stream, snapshots.c.version.in_(stale)
                    )
                )

    def load_snapshot(
        self, stream: str, *, schema: int, max_version: int | None = None, max_seq: int | None = None
    ) -> Snapshot | None:
        """Return the newest snapshot of ``stream`` in format ``schema`` within the bounds."""
        query = (
            select(snapshots)
            .where(snapshots.c.stream == stream, snapshots.c.schema == schema)
            .order_by(snapshots.c.version.desc())
            .limit(1)
        )
        if max_version is not None:
            query = query.where(snapshots.c.version <= max_version)
        if max_seq is not None:
            query = query.where(snapshots.c.last_seq <= max_seq)
        with self._read_connection(f"reading a snapshot of stream {stream} from") as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return Snapshot(
            stream=row.stream,
            version=row.version,
            last_seq=row.last_seq,
            state=json.loads(row.state),
            schema=row.schema,
            taken_at=row.taken_at,
        )

    def load_snapshots(self, *, schema: int) -> dict[str, Snapshot]:
        """Return the newest snapshot of every stream in format ``schema``."""
        newest = (
            select(snapshots.c.stream, func.max(snapshots.c.version).label("version"))
            .where(snapshots.c.schema == schema)
            .group_by(snapshots.c.stream)
            .subquery()
        )
        query = select(snapshots).join(
            newest,
            (snapshots.c.stream == newest.c.stream) & (snapshots.c.version == newest.c.version),
        )
        with self._read_connection("reading snapshots from") as connection:
            rows = connection.execute(query).all()
        return {
            row.stream: Snapshot(
                stream=row.stream,
                version=row.version,
                last_seq=row.last_seq,
                state=json.loads(row.state),
                schema=row.schema,
                taken_at=row.taken_at,
            )
            for row in rows
        }

    # -- maintenance ------------------------------------------------------------------------

    def backup(self, destination: Path) -> int:
        """Write a consistent copy of a live SQLite journal to ``destination``; return its last seq.

        Uses SQLite's online backup, which copies a single consistent snapshot while writers
        go on. The copy is created with mode 0600.
        """
        if self.sqlite_path is None:
            msg = f"journal backup needs an SQLite journal file; {self.url} is not one (use the database's own tools)"
            raise JournalUnavailable(self.url, "backing up", msg)
        destination = Path(destination)
        if destination.exists():
            msg = f"backup destination {destination} already exists; choose a new path"
            raise FileExistsError(msg)

        destination.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(destination, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            with self._translate_errors("backing up"):
                raw = self.engine.raw_connection()
                try:
                    target = sqlite3.connect(destination)
                    try:
                        raw.driver_connection.backup(target)  # type: ignore[union-attr]
                        last_seq = target.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    finally:
                        target.close()
                finally:
                    raw.close()
        except Exception:
            destination.unlink(missing_ok=True)
            raise
        return int(last_seq)

    def schema_revision(self) -> str | None:
        """Return the journal's Alembic revision."""
        with self._read_connection("reading the schema revision of") as connection:
            return migrate.current_revision(connection)
