"""Contract tests of the SQLite event store, each on its own journal file."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

import journal.store
from journal import (
    EventStore,
    InvalidEvent,
    JournalError,
    JournalUnavailable,
    NewEvent,
    SchemaTooNew,
    StoredEvent,
    VersionConflict,
    utc_now,
)
from journal.migrate import HEAD_REVISION, head_revision
from tests.journal.helpers import (
    delete_row,
    drop_append_only_triggers,
    edit_column,
    raw_connection,
    row_count,
    sqlite_url,
    swap_rows,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
APPEND_ONLY_MESSAGE = "events are append-only: UPDATE and DELETE are not allowed"
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")

# Upper bound on waiting for another thread or process. A passing test never comes near it.
WAIT_SECONDS = 30.0


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def store(journal_path: Path) -> Iterator[EventStore]:
    opened = EventStore.open(sqlite_url(journal_path), host="test-host")
    yield opened
    opened.close()


def append_one(store: EventStore, stream: str, type_: str = "created", **data: Any) -> StoredEvent:
    version = store.stream_version(stream)
    return store.append(stream, [NewEvent(type_, data)], expected_version=version)[0]


def fill(store: EventStore, count: int) -> list[StoredEvent]:
    """Append ``count`` events spread over three streams, one event per append."""
    streams = ["container/a", "container/b", "daemon/host"]
    return [append_one(store, streams[index % 3], "tick", index=index) for index in range(count)]


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- appending ------------------------------------------------------------------------------


def test_append_returns_stored_fields(store: EventStore) -> None:
    stored = store.append(
        "container/a",
        [NewEvent("created", {"bundle": "/b", "n": 1}, command_id="cmd-1")],
        expected_version=0,
    )

    assert len(stored) == 1
    event = stored[0]
    assert event.seq == 1
    assert event.stream == "container/a"
    assert event.version == 1
    assert event.type == "created"
    assert event.data == {"bundle": "/b", "n": 1}
    assert event.command_id == "cmd-1"
    assert event.host == "test-host"
    assert re.fullmatch(r"[0-9a-f]{64}", event.hash)


def test_append_reads_back_equal(store: EventStore) -> None:
    first = store.append(
        "container/a", [NewEvent("created", {"nested": {"x": [1, 2]}}, "c1")], expected_version=0
    )
    second = store.append("container/a", [NewEvent("started", {"pid": 42})], expected_version=1)

    assert store.read_stream("container/a") == first + second
    assert store.read_all() == first + second


def test_recorded_at_is_utc_with_microseconds(store: EventStore) -> None:
    before = utc_now()
    event = append_one(store, "container/a")
    after = utc_now()

    assert TIME_PATTERN.fullmatch(event.recorded_at)
    assert before <= event.recorded_at <= after


def test_host_defaults_to_hostname(journal_path: Path) -> None:
    store = EventStore.open(sqlite_url(journal_path))
    try:
        event = append_one(store, "container/a")
    finally:
        store.close()

    assert event.host == socket.gethostname()


def test_batch_gets_consecutive_seq_and_versions(store: EventStore) -> None:
    append_one(store, "container/other")
    batch = [NewEvent("created", {}), NewEvent("started", {}), NewEvent("paused", {})]

    stored = store.append("container/a", batch, expected_version=0)

    assert [event.seq for event in stored] == [2, 3, 4]
    assert [event.version for event in stored] == [1, 2, 3]
    assert [event.type for event in stored] == ["created", "started", "paused"]


def test_append_at_stale_version_raises_conflict(store: EventStore) -> None:
    append_one(store, "container/a")
    append_one(store, "container/a")

    with pytest.raises(VersionConflict) as caught:
        store.append("container/a", [NewEvent("started", {})], expected_version=1)

    assert caught.value.stream == "container/a"
    assert caught.value.expected == 1
    assert caught.value.actual == 2
    assert "container/a" in str(caught.value)
    assert "expected version 1" in str(caught.value)
    assert "at version 2" in str(caught.value)


def test_append_at_stale_version_writes_nothing(store: EventStore, journal_path: Path) -> None:
    append_one(store, "container/a")
    before = row_count(journal_path)

    with pytest.raises(VersionConflict):
        store.append("container/a", [NewEvent("started", {})], expected_version=0)

    assert row_count(journal_path) == before
    assert store.stream_version("container/a") == 1


def test_append_ahead_of_stream_raises_conflict(store: EventStore, journal_path: Path) -> None:
    with pytest.raises(VersionConflict) as caught:
        store.append("container/a", [NewEvent("created", {})], expected_version=3)

    assert caught.value.actual == 0
    assert row_count(journal_path) == 0


def test_stale_batch_writes_none_of_its_events(store: EventStore, journal_path: Path) -> None:
    append_one(store, "container/a")
    before = row_count(journal_path)
    batch = [NewEvent("started", {}), NewEvent("paused", {}), NewEvent("resumed", {})]

    with pytest.raises(VersionConflict):
        store.append("container/a", batch, expected_version=0)

    assert row_count(journal_path) == before
    assert [event.type for event in store.read_stream("container/a")] == ["created"]


def test_conflict_leaves_chain_appendable(store: EventStore) -> None:
    append_one(store, "container/a")
    with pytest.raises(VersionConflict):
        store.append("container/a", [NewEvent("started", {})], expected_version=0)

    event = append_one(store, "container/a", "started")

    assert event.seq == 2
    assert store.verify().ok


def test_unique_key_violation_becomes_conflict(
    store: EventStore, journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer that skipped the version check (no lock) meets the unique (stream, version)
    # key instead. The test simulates it by inserting a duplicate inside the transaction.
    append_one(store, "container/a")
    original = store._insert_batch

    def insert_twice(connection: Any, stream: str, encoded: Any, expected_version: int) -> Any:
        stored = original(connection, stream, encoded, expected_version)
        duplicate = {**stored[0].to_json(), "seq": stored[-1].seq + 1, "data": "{}"}
        connection.execute(journal.store.events.insert(), [duplicate])
        return stored

    monkeypatch.setattr(store, "_insert_batch", insert_twice)

    with pytest.raises(VersionConflict) as caught:
        store.append("container/a", [NewEvent("started", {})], expected_version=1)

    assert caught.value.actual == 1
    assert row_count(journal_path) == 1


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        pytest.param([], "empty", id="empty-batch"),
        pytest.param([NewEvent("", {})], "type must not be empty", id="empty-type"),
        pytest.param([NewEvent("created", {"x": {1, 2}})], "not JSON serializable", id="set-value"),
        pytest.param([NewEvent("created", {"x": float("nan")})], "not JSON compliant", id="nan"),
        pytest.param([NewEvent("created", ["a", "b"])], "invalid data", id="list-data"),  # type: ignore[arg-type]
        pytest.param(
            [NewEvent("created", {}), NewEvent("started", {"f": object()})],
            "not JSON serializable",
            id="second-of-batch",
        ),
    ],
)
def test_invalid_event_raises_and_writes_nothing(
    store: EventStore, journal_path: Path, batch: list[NewEvent], reason: str
) -> None:
    append_one(store, "container/a")

    with pytest.raises(InvalidEvent, match=reason):
        store.append("container/a", batch, expected_version=1)

    assert row_count(journal_path) == 1


def test_empty_stream_name_raises_invalid(store: EventStore, journal_path: Path) -> None:
    with pytest.raises(InvalidEvent, match="stream name"):
        store.append("", [NewEvent("created", {})], expected_version=0)

    assert row_count(journal_path) == 0


# -- reading --------------------------------------------------------------------------------


def test_read_stream_after_version(store: EventStore) -> None:
    events = [append_one(store, "container/a", "tick", index=index) for index in range(5)]
    append_one(store, "container/b")

    assert store.read_stream("container/a", after_version=2) == events[2:]
    assert store.read_stream("container/a", after_version=5) == []
    assert store.read_stream("container/missing") == []


def test_read_stream_until_seq(store: EventStore) -> None:
    events = fill(store, 9)
    in_stream_a = [event for event in events if event.stream == "container/a"]

    assert store.read_stream("container/a", until_seq=4) == in_stream_a[:2]


def test_read_all_orders_by_seq(store: EventStore) -> None:
    events = fill(store, 9)

    read = store.read_all()

    assert [event.seq for event in read] == list(range(1, 10))
    assert read == events


def test_read_all_after_seq_and_limit(store: EventStore) -> None:
    events = fill(store, 9)

    assert store.read_all(after_seq=3) == events[3:]
    assert store.read_all(after_seq=3, limit=2) == events[3:5]
    assert store.read_all(limit=0) == []
    assert store.read_all(after_seq=9) == []


def test_read_all_until_seq(store: EventStore) -> None:
    events = fill(store, 9)

    assert store.read_all(until_seq=4) == events[:4]
    assert store.read_all(after_seq=2, until_seq=4) == events[2:4]


def test_read_all_until_time(store: EventStore) -> None:
    early = fill(store, 3)
    cutoff = early[-1].recorded_at
    late = fill(store, 3)
    # Later events may share the cutoff's microsecond, and those count as before it.
    expected = early + [event for event in late if event.recorded_at <= cutoff]

    assert store.read_all(until_time=cutoff) == expected
    assert store.read_all(until_time="2000-01-01T00:00:00.000000Z") == []


def test_read_all_stream_prefix(store: EventStore) -> None:
    events = fill(store, 9)
    append_one(store, "container_x")  # "_" must match literally, not as a LIKE wildcard

    containers = store.read_all(stream_prefix="container/")

    assert containers == [event for event in events if event.stream.startswith("container/")]
    assert store.read_all(stream_prefix="daemon/", limit=2) == [
        event for event in events if event.stream == "daemon/host"
    ][:2]


def test_stream_versions(store: EventStore) -> None:
    fill(store, 8)
    append_one(store, "container_x")

    assert store.stream_versions() == {
        "container/a": 3,
        "container/b": 3,
        "daemon/host": 2,
        "container_x": 1,
    }
    assert store.stream_versions("container/") == {"container/a": 3, "container/b": 3}
    assert store.stream_versions("nothing/") == {}


def test_events_for_command(store: EventStore) -> None:
    intent = store.append("container/a", [NewEvent("pause_requested", {}, "cmd-7")], expected_version=0)
    append_one(store, "container/b")
    outcome = store.append("container/a", [NewEvent("paused", {}, "cmd-7")], expected_version=1)

    assert store.events_for_command("cmd-7") == intent + outcome
    assert store.events_for_command("cmd-unknown") == []


def test_last_seq(store: EventStore) -> None:
    assert store.last_seq() == 0

    fill(store, 4)

    assert store.last_seq() == 4


# -- follow ---------------------------------------------------------------------------------


class Follower:
    """Collect events from ``store.follow`` on a thread until ``want`` arrived."""

    def __init__(self, store: EventStore, want: int, **options: Any) -> None:
        self.events: list[StoredEvent] = []
        self.done = threading.Event()
        self.stop = threading.Event()
        self._store = store
        self._want = want
        self._options = options
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for event in self._store.follow(stop=self.stop, **self._options):
            self.events.append(event)
            if len(self.events) >= self._want:
                self.done.set()

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        self._store.close()  # wakes a follower waiting out a long poll interval
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive()


def test_follow_sees_appends_from_another_thread(store: EventStore) -> None:
    old = fill(store, 2)
    # A long poll interval shows the follower is woken by the append, not by polling.
    follower = Follower(store, 3, after_seq=store.last_seq(), poll_interval=3600)
    follower.start()
    try:
        appender = threading.Thread(target=fill, args=(store, 3))
        appender.start()
        appender.join(WAIT_SECONDS)

        assert follower.done.wait(WAIT_SECONDS)
    finally:
        follower.finish()

    assert [event.seq for event in follower.events] == [3, 4, 5]
    assert old[-1].seq == 2


def test_follow_sees_append_between_read_and_head(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An append that commits after follow's empty read but before it reads the head must
    # still wake it at once.
    fill(store, 1)
    original_read_all = store.read_all
    appended = threading.Event()

    def read_all_then_append(**options: Any) -> list[StoredEvent]:
        batch = original_read_all(**options)
        if not batch and not appended.is_set():
            appended.set()
            append_one(store, "container/late")
        return batch

    monkeypatch.setattr(store, "read_all", read_all_then_append)
    follower = Follower(store, 1, after_seq=1, poll_interval=3600, stream_prefix="container/late")
    follower.start()
    try:
        assert follower.done.wait(WAIT_SECONDS)
    finally:
        follower.finish()

    assert [event.stream for event in follower.events] == ["container/late"]


def test_follow_filters_by_stream_prefix(store: EventStore) -> None:
    follower = Follower(store, 2, poll_interval=3600, stream_prefix="container/b")
    follower.start()
    try:
        fill(store, 6)

        assert follower.done.wait(WAIT_SECONDS)
    finally:
        follower.finish()

    assert [event.stream for event in follower.events] == ["container/b", "container/b"]


APPENDER_SCRIPT = """
import sys
from journal import EventStore, NewEvent
store = EventStore.open(sys.argv[1], host="other-process")
for index in range(3):
    version = store.stream_version("container/remote")
    store.append("container/remote", [NewEvent("tick", {"index": index})], expected_version=version)
store.close()
"""


def test_follow_sees_appends_from_another_process(store: EventStore, journal_path: Path) -> None:
    fill(store, 1)
    follower = Follower(store, 3, after_seq=1, poll_interval=0.05)
    follower.start()
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER_SCRIPT, sqlite_url(journal_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert child.wait(WAIT_SECONDS) == 0
        assert follower.done.wait(WAIT_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        follower.finish()

    assert [event.data["index"] for event in follower.events] == [0, 1, 2]
    assert {event.host for event in follower.events} == {"other-process"}


# -- hash chain -----------------------------------------------------------------------------


def test_verify_clean_journal_is_ok(store: EventStore) -> None:
    events = fill(store, 7)

    result = store.verify()

    assert result.ok
    assert result.events_checked == 7
    assert result.last_seq == 7
    assert result.head_hash == events[-1].hash
    assert result.first_bad_seq is None


def test_verify_empty_journal_is_ok(store: EventStore) -> None:
    result = store.verify()

    assert result.ok
    assert result.events_checked == 0


def test_verify_walks_several_batches(store: EventStore) -> None:
    events = fill(store, 7)

    result = store.verify(batch_size=2)

    assert result.ok
    assert result.head_hash == events[-1].hash


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("data", '{"index":999}', id="data"),
        pytest.param("data", '{"index": 3}', id="data-reformatted"),
        pytest.param("data", "not json", id="data-not-json"),
        pytest.param("data", '{"index":NaN}', id="data-nan"),
        pytest.param("data", '{"index":1e400}', id="data-overflowing-number"),
        pytest.param("data", "[" * 100_000, id="data-nested-too-deep"),
        pytest.param("type", "forged", id="type"),
        pytest.param("stream", "container/z", id="stream"),
        pytest.param("recorded_at", "2000-01-01T00:00:00.000000Z", id="recorded-at"),
        pytest.param("command_id", "cmd-forged", id="command-id"),
        pytest.param("host", "elsewhere", id="host"),
        pytest.param("hash", "f" * 64, id="hash"),
    ],
)
def test_verify_finds_edited_row(
    store: EventStore, journal_path: Path, column: str, value: str
) -> None:
    fill(store, 7)
    drop_append_only_triggers(journal_path)

    edit_column(journal_path, 4, column, value)
    result = store.verify()

    assert not result.ok
    assert result.first_bad_seq == 4
    assert result.events_checked == 3
    assert result.reason


def test_verify_finds_deleted_middle_row(store: EventStore, journal_path: Path) -> None:
    fill(store, 7)
    drop_append_only_triggers(journal_path)

    delete_row(journal_path, 5)
    result = store.verify()

    assert not result.ok
    assert result.first_bad_seq == 5
    assert "missing" in (result.reason or "")


def test_verify_finds_swapped_rows(store: EventStore, journal_path: Path) -> None:
    fill(store, 7)
    drop_append_only_triggers(journal_path)

    swap_rows(journal_path, 3, 6)
    result = store.verify()

    assert not result.ok
    assert result.first_bad_seq == 3


def test_verify_finds_swapped_neighbours(store: EventStore, journal_path: Path) -> None:
    fill(store, 7)
    drop_append_only_triggers(journal_path)

    swap_rows(journal_path, 6, 7)
    result = store.verify()

    assert not result.ok
    assert result.first_bad_seq == 6


def test_update_is_rejected_by_trigger(store: EventStore, journal_path: Path) -> None:
    fill(store, 3)

    with pytest.raises(sqlite3.IntegrityError, match=APPEND_ONLY_MESSAGE):
        with raw_connection(journal_path) as connection:
            connection.execute("UPDATE events SET type = 'forged' WHERE seq = 2")

    assert store.read_all()[1].type == "tick"
    assert store.verify().ok


def test_delete_is_rejected_by_trigger(store: EventStore, journal_path: Path) -> None:
    fill(store, 3)

    with pytest.raises(sqlite3.IntegrityError, match=APPEND_ONLY_MESSAGE):
        with raw_connection(journal_path) as connection:
            connection.execute("DELETE FROM events WHERE seq = 2")

    assert row_count(journal_path) == 3


# -- storage settings -----------------------------------------------------------------------


def pragma(store: EventStore, name: str) -> Any:
    raw = store.engine.raw_connection()
    try:
        return raw.cursor().execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        raw.close()


def test_connection_uses_wal(store: EventStore) -> None:
    assert pragma(store, "journal_mode") == "wal"


def test_connection_syncs_fully(store: EventStore) -> None:
    assert pragma(store, "synchronous") == 2


def test_connection_sets_busy_timeout(store: EventStore) -> None:
    assert pragma(store, "busy_timeout") == 30000


def test_busy_timeout_follows_option(journal_path: Path) -> None:
    store = EventStore.open(sqlite_url(journal_path), busy_timeout=2.5)
    try:
        assert pragma(store, "busy_timeout") == 2500
    finally:
        store.close()


def test_invalid_synchronous_raises(journal_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        EventStore.open(sqlite_url(journal_path), synchronous="SOMETIMES")


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_journal_files_are_owner_only(store: EventStore, journal_path: Path, suffix: str) -> None:
    fill(store, 1)

    assert file_mode(Path(f"{journal_path}{suffix}")) == 0o600


def test_journal_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "journal.db"

    store = EventStore.open(sqlite_url(path))
    store.close()

    assert path.exists()
    assert file_mode(path.parent) == 0o700


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_saves_and_loads(store: EventStore) -> None:
    store.save_snapshot("container/a", 3, 10, {"status": "running", "pids": [1]}, schema=1)

    snapshot = store.load_snapshot("container/a", schema=1)

    assert snapshot is not None
    assert snapshot.stream == "container/a"
    assert snapshot.version == 3
    assert snapshot.last_seq == 10
    assert snapshot.state == {"status": "running", "pids": [1]}
    assert snapshot.schema == 1
    assert TIME_PATTERN.fullmatch(snapshot.taken_at)


def test_snapshot_missing_loads_none(store: EventStore) -> None:
    store.save_snapshot("container/a", 3, 10, {}, schema=1)

    assert store.load_snapshot("container/b", schema=1) is None
    assert store.load_snapshot("container/a", schema=2) is None


def test_snapshot_keep_prunes_oldest(store: EventStore, journal_path: Path) -> None:
    for version in (1, 2, 3, 4):
        store.save_snapshot("container/a", version, version * 10, {"v": version}, schema=1, keep=2)
    store.save_snapshot("container/b", 1, 5, {}, schema=1, keep=2)

    with raw_connection(journal_path) as connection:
        kept = connection.execute(
            "SELECT stream, version FROM snapshots ORDER BY stream, version"
        ).fetchall()

    assert kept == [("container/a", 3), ("container/a", 4), ("container/b", 1)]


def test_snapshot_same_version_keeps_first(store: EventStore) -> None:
    store.save_snapshot("container/a", 2, 20, {"first": True}, schema=1)
    store.save_snapshot("container/a", 2, 20, {"first": False}, schema=1)

    snapshot = store.load_snapshot("container/a", schema=1)

    assert snapshot is not None
    assert snapshot.state == {"first": True}


def test_snapshot_bounds_pick_older(store: EventStore) -> None:
    for version in (2, 4, 6):
        store.save_snapshot("container/a", version, version * 10, {"v": version}, schema=1, keep=5)

    by_version = store.load_snapshot("container/a", schema=1, max_version=5)
    by_seq = store.load_snapshot("container/a", schema=1, max_seq=39)
    both = store.load_snapshot("container/a", schema=1, max_version=6, max_seq=20)

    assert by_version is not None and by_version.version == 4
    assert by_seq is not None and by_seq.version == 2
    assert both is not None and both.version == 2
    assert store.load_snapshot("container/a", schema=1, max_version=1) is None


def test_load_snapshots_returns_newest_per_stream(store: EventStore) -> None:
    store.save_snapshot("container/a", 1, 1, {"v": 1}, schema=1, keep=5)
    store.save_snapshot("container/a", 2, 3, {"v": 2}, schema=1, keep=5)
    store.save_snapshot("container/b", 1, 2, {"v": 1}, schema=1, keep=5)
    store.save_snapshot("container/b", 5, 9, {"v": 5}, schema=2, keep=5)

    snapshots = store.load_snapshots(schema=1)

    assert {stream: snap.version for stream, snap in snapshots.items()} == {
        "container/a": 2,
        "container/b": 1,
    }
    assert snapshots["container/a"].state == {"v": 2}
    assert store.load_snapshots(schema=3) == {}



def test_tails_after_snapshots_in_seq_order(store: EventStore) -> None:
    # Interleave three container streams and one stream outside the prefix whose name sorts
    # between them ("container0" follows "container/" in byte order).
    for step in range(6):
        for stream in ("container/a", "container/b", "container/c", "container0"):
            append_one(store, stream, f"step{step}", step=step)
    store.save_snapshot("container/a", 2, 9, {}, schema=1)
    store.save_snapshot("container/a", 4, 17, {}, schema=1)
    store.save_snapshot("container/b", 5, 18, {}, schema=2)  # Another format, so it is ignored.
    store.save_snapshot("container/c", 6, 23, {}, schema=1)  # The stream has no events after it.

    tails = list(store.iter_after_snapshots(schema=1, stream_prefix="container/", batch_size=2))

    assert [(event.stream, event.version) for event in tails] == [
        ("container/b", 1), ("container/b", 2), ("container/b", 3), ("container/b", 4),
        ("container/a", 5), ("container/b", 5), ("container/a", 6), ("container/b", 6),
    ]
    assert [event.seq for event in tails] == sorted(event.seq for event in tails)
    assert tails[-1].data == {"step": 5}
    assert tails == [event for event in store.read_all() if (event.stream, event.version) in
                     {(tail.stream, tail.version) for tail in tails}]


def test_tails_without_prefix_cover_all_streams(store: EventStore) -> None:
    append_one(store, "container/a", "created")
    append_one(store, "daemon/host", "started")
    append_one(store, "container/a", "started")
    store.save_snapshot("container/a", 1, 1, {}, schema=1)

    tails = list(store.iter_after_snapshots(schema=1))

    assert [(event.stream, event.version) for event in tails] == [("daemon/host", 1), ("container/a", 2)]
    assert list(store.iter_after_snapshots(schema=1, stream_prefix="none/")) == []

# -- backup ---------------------------------------------------------------------------------


def test_backup_during_appends_copies_consistent_prefix(store: EventStore, tmp_path: Path) -> None:
    fill(store, 5)
    destination = tmp_path / "backup" / "copy.db"
    started = threading.Event()
    stop = threading.Event()

    def keep_appending() -> None:
        while not stop.is_set():
            append_one(store, "container/busy", "tick")
            started.set()

    appender = threading.Thread(target=keep_appending)
    appender.start()
    try:
        assert started.wait(WAIT_SECONDS)
        last_seq = store.backup(destination)
    finally:
        stop.set()
        appender.join(WAIT_SECONDS)
    assert not appender.is_alive()
    mode = file_mode(destination)

    copy = EventStore.open(sqlite_url(destination))
    try:
        copied = copy.read_all()
        copy_verify = copy.verify()
    finally:
        copy.close()
    original = store.read_all(until_seq=last_seq)

    assert mode == 0o600
    assert last_seq > 5
    assert copied == original
    assert copy_verify.ok
    assert copy_verify.head_hash == original[-1].hash
    assert store.last_seq() >= last_seq


def test_backup_copy_verifies_like_original(store: EventStore, tmp_path: Path) -> None:
    fill(store, 5)
    destination = tmp_path / "copy.db"

    store.backup(destination)
    copy = EventStore.open(sqlite_url(destination))
    try:
        assert copy.verify() == store.verify()
        assert copy.schema_revision() == store.schema_revision()
    finally:
        copy.close()


def test_backup_to_existing_destination_raises(store: EventStore, tmp_path: Path) -> None:
    fill(store, 2)
    destination = tmp_path / "copy.db"
    destination.write_bytes(b"keep me")

    with pytest.raises(FileExistsError, match="already exists"):
        store.backup(destination)

    assert destination.read_bytes() == b"keep me"


def test_backup_driver_failure_raises_unavailable(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, 2)
    destination = tmp_path / "copy.db"

    class FailingSqlite:
        """The sqlite3 module, except that opening the backup target fails."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sqlite3, name)

        @staticmethod
        def connect(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(journal.store, "sqlite3", FailingSqlite())

    with pytest.raises(JournalUnavailable, match="unable to open database file"):
        store.backup(destination)

    assert not destination.exists()


# -- schema ---------------------------------------------------------------------------------


def test_fresh_journal_is_at_head(store: EventStore) -> None:
    assert store.schema_revision() == head_revision()
    assert head_revision() == "0001"


def test_head_constant_matches_alembic_scripts() -> None:
    # Opening a journal trusts HEAD_REVISION to skip Alembic, so it must name the scripts' head.
    assert HEAD_REVISION == head_revision()


def test_opening_journal_at_head_skips_alembic(journal_path: Path) -> None:
    EventStore.open(sqlite_url(journal_path)).close()
    probe = (
        "import sys; from journal import EventStore; "
        f"EventStore.open({sqlite_url(journal_path)!r}).close(); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))"
    )

    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "make_old",
    [
        pytest.param(lambda path: path.touch(), id="zero-bytes"),
        pytest.param(
            lambda path: sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close(),
            id="no-tables",
        ),
    ],
)
def test_older_journal_is_upgraded(journal_path: Path, make_old: Any) -> None:
    make_old(journal_path)

    store = EventStore.open(sqlite_url(journal_path))
    try:
        revision = store.schema_revision()
        event = append_one(store, "container/a")
    finally:
        store.close()

    assert revision == head_revision()
    assert event.seq == 1


def test_reopen_keeps_events(journal_path: Path) -> None:
    first = EventStore.open(sqlite_url(journal_path))
    events = fill(first, 3)
    first.close()

    second = EventStore.open(sqlite_url(journal_path))
    try:
        assert second.read_all() == events
        assert second.schema_revision() == head_revision()
    finally:
        second.close()


def test_future_schema_raises_too_new(journal_path: Path) -> None:
    store = EventStore.open(sqlite_url(journal_path))
    fill(store, 2)
    store.close()
    with raw_connection(journal_path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    before = journal_path.read_bytes()

    with pytest.raises(SchemaTooNew) as caught:
        EventStore.open(sqlite_url(journal_path))

    assert caught.value.found == "9999"
    assert caught.value.known_head == head_revision()
    assert "9999" in str(caught.value)
    assert head_revision() in str(caught.value)
    assert journal_path.read_bytes() == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param("header", "file is not a database", id="garbage-header"),
        pytest.param("truncate", "database disk image is malformed", id="torn-file"),
    ],
)
def test_damaged_file_raises_unavailable(journal_path: Path, damage: str, message: str) -> None:
    store = EventStore.open(sqlite_url(journal_path))
    for index in range(200):
        append_one(store, "container/a", "tick", index=index, padding="x" * 200)
    store.close()
    size = journal_path.stat().st_size
    page_size = 4096
    assert size > 8 * page_size
    with open(journal_path, "r+b") as file:
        if damage == "header":
            file.write(b"not a journal " * 8)
        else:
            file.truncate(size // 2 + page_size // 2)

    with pytest.raises(JournalUnavailable) as caught:
        EventStore.open(sqlite_url(journal_path))

    assert str(journal_path) in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlalchemy.exc.DBAPIError)


def test_read_only_journal_append_raises_unavailable(journal_path: Path) -> None:
    writable = EventStore.open(sqlite_url(journal_path))
    fill(writable, 2)
    writable.close()
    read_only = EventStore.open(f"sqlite:///file:{journal_path}?mode=ro&uri=true")

    try:
        with pytest.raises(JournalUnavailable, match="readonly") as caught:
            append_one(read_only, "container/a")
        assert str(journal_path) in str(caught.value)
    finally:
        read_only.close()

    assert row_count(journal_path) == 2


def test_immutable_journal_open_raises_unavailable(journal_path: Path) -> None:
    # Root ignores permission bits, so the file is made immutable instead.
    EventStore.open(sqlite_url(journal_path)).close()
    result = subprocess.run(["chattr", "+i", str(journal_path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {result.stderr.strip()}")

    try:
        with pytest.raises(JournalUnavailable) as caught:
            EventStore.open(sqlite_url(journal_path))
    finally:
        subprocess.run(["chattr", "-i", str(journal_path)], check=True)

    assert str(journal_path) in str(caught.value)
    assert "opening" in str(caught.value)


# -- error translation ----------------------------------------------------------------------


def wrapped(error: Exception) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError.instance("SELECT 1", {}, error, sqlite3.Error)


DRIVER_ERRORS = [
    pytest.param(sqlite3.OperationalError("database is locked"), id="raw-locked"),
    pytest.param(sqlite3.DatabaseError("file is not a database"), id="raw-not-a-database"),
    pytest.param(sqlite3.IntegrityError("NOT NULL constraint failed"), id="raw-integrity"),
    pytest.param(wrapped(sqlite3.OperationalError("database is locked")), id="wrapped-locked"),
    pytest.param(
        wrapped(sqlite3.DatabaseError("file is not a database")), id="wrapped-not-a-database"
    ),
    pytest.param(
        wrapped(sqlite3.IntegrityError("NOT NULL constraint failed")), id="wrapped-integrity"
    ),
]


@pytest.mark.parametrize("error", DRIVER_ERRORS)
def test_driver_error_becomes_unavailable(store: EventStore, error: Exception) -> None:
    driver_message = str(getattr(error, "orig", None) or error)

    with pytest.raises(JournalUnavailable) as caught:
        with store._translate_errors("reading"):
            raise error

    assert caught.value.__cause__ is error
    assert caught.value.cause == driver_message
    assert caught.value.action == "reading"
    assert str(caught.value) == f"reading journal {store.url}: {driver_message}"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(VersionConflict("container/a", 1, 2), id="journal-error"),
        pytest.param(ValueError("not a driver error"), id="value-error"),
    ],
)
def test_other_error_passes_untranslated(store: EventStore, error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        with store._translate_errors("reading"):
            raise error

    assert caught.value is error


def test_journal_errors_share_base() -> None:
    for error_type in (VersionConflict, SchemaTooNew, JournalUnavailable, InvalidEvent):
        assert issubclass(error_type, JournalError)
