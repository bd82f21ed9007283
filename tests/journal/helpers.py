"""Helpers shared by the journal tests: raw SQLite access, tampering, and a worker process."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from journal import EventStore, NewEvent, VersionConflict

COLUMNS = ("stream", "version", "type", "data", "recorded_at", "command_id", "host", "hash")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextmanager
def raw_connection(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the journal file with the plain driver, committing on a clean exit."""
    with closing(sqlite3.connect(path)) as connection:
        with connection:
            yield connection


def row_count(path: Path) -> int:
    with raw_connection(path) as connection:
        return connection.execute("SELECT count(*) FROM events").fetchone()[0]


def drop_append_only_triggers(path: Path) -> None:
    with raw_connection(path) as connection:
        connection.execute("DROP TRIGGER events_no_update")
        connection.execute("DROP TRIGGER events_no_delete")


def edit_column(path: Path, seq: int, column: str, value: Any) -> None:
    assert column in COLUMNS, column
    with raw_connection(path) as connection:
        connection.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, seq))


def delete_row(path: Path, seq: int) -> None:
    with raw_connection(path) as connection:
        connection.execute("DELETE FROM events WHERE seq = ?", (seq,))


def swap_rows(path: Path, first_seq: int, second_seq: int) -> None:
    """Exchange every column but seq between two rows, so each seq contains the other's event."""
    select = f"SELECT {', '.join(COLUMNS)} FROM events WHERE seq = ?"
    insert = f"INSERT INTO events (seq, {', '.join(COLUMNS)}) VALUES (?{', ?' * len(COLUMNS)})"
    with raw_connection(path) as connection:
        first = connection.execute(select, (first_seq,)).fetchone()
        second = connection.execute(select, (second_seq,)).fetchone()
        # Deleting both first keeps the unique (stream, version) key satisfied at every step.
        connection.execute("DELETE FROM events WHERE seq IN (?, ?)", (first_seq, second_seq))
        connection.execute(insert, (first_seq, *second))
        connection.execute(insert, (second_seq, *first))


def append_with_retry(
    store: EventStore, stream: str, batch: list[NewEvent]
) -> list[tuple[str, int, int, str]]:
    """Append ``batch`` at the stream's current version, retrying after each conflict."""
    while True:
        try:
            stored = store.append(stream, batch, expected_version=store.stream_version(stream))
        except VersionConflict:
            continue
        return [(event.stream, event.version, event.seq, event.hash) for event in stored]


def run_appender(url: str, worker: int, plan: list[tuple[bool, int]], barrier: Any, results: Any) -> None:
    """Append the planned batches (shared stream or own stream, batch size) and report them.

    Runs in a child process: opens its own store, waits at ``barrier`` so all workers start
    together, and puts the list of committed (stream, version, seq, hash) on ``results``.
    """
    store = EventStore.open(url, host=f"worker-{worker}")
    committed: list[tuple[str, int, int, str]] = []
    try:
        barrier.wait(timeout=120)
        for index, (shared, size) in enumerate(plan):
            stream = "container/shared" if shared else f"container/own-{worker}"
            batch = [NewEvent("tick", {"worker": worker, "index": index, "part": part}) for part in range(size)]
            committed.extend(append_with_retry(store, stream, batch))
    finally:
        store.close()
        results.put((worker, committed))
