"""Property tests of the journal: concurrent writers in separate processes, and tamper detection."""

from __future__ import annotations

import json
import multiprocessing
import queue
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from journal import EventStore, NewEvent
from tests.journal.helpers import (
    COLUMNS,
    delete_row,
    drop_append_only_triggers,
    edit_column,
    raw_connection,
    run_appender,
    sqlite_url,
    swap_rows,
)

# Upper bound on waiting for a worker process. A passing test never comes near it.
WAIT_SECONDS = 120.0

# Spawned children start clean: no engine, lock or thread inherited from pytest.
SPAWN = multiprocessing.get_context("spawn")

# One worker's appends: (to the shared stream?, batch size).
worker_plans = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=1, max_value=3)), min_size=2, max_size=8
)


def run_workers(url: str, plans: list[list[tuple[bool, int]]]) -> dict[int, list[tuple[str, int, int, str]]]:
    """Run one appender process per plan and return what each reported as committed."""
    barrier = SPAWN.Barrier(len(plans))
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=run_appender, args=(url, worker, plan, barrier, results))
        for worker, plan in enumerate(plans)
    ]
    committed: dict[int, list[tuple[str, int, int, str]]] = {}
    try:
        for process in workers:
            process.start()
        # Drain the queue before joining: a child does not exit while its put is unflushed.
        for _ in workers:
            worker, events = results.get(timeout=WAIT_SECONDS)
            committed[worker] = events
        for process in workers:
            process.join(WAIT_SECONDS)
    except queue.Empty:
        pass
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    assert [process.exitcode for process in workers] == [0] * len(workers)
    return committed


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(worker_plans, min_size=3, max_size=4))
def test_process_appenders_keep_journal_consistent(plans: list[list[tuple[bool, int]]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = sqlite_url(Path(directory) / "journal.db")
        # Migrate once up front so the workers race on appends, not on creating the schema.
        EventStore.open(url).close()

        committed = run_workers(url, plans)

        store = EventStore.open(url)
        try:
            stored = store.read_all()
            result = store.verify()
        finally:
            store.close()

    reported = [event for events in committed.values() for event in events]
    by_seq = {event.seq: event for event in stored}
    keys = [(event.stream, event.version) for event in stored]
    expected_total = sum(size for plan in plans for _, size in plan)

    assert sorted(committed) == list(range(len(plans)))
    assert len(set(keys)) == len(keys)
    assert [event.seq for event in stored] == list(range(1, len(stored) + 1))
    assert len(stored) == expected_total
    assert len(reported) == expected_total
    for stream, version, seq, event_hash in reported:
        assert seq in by_seq, f"committed seq {seq} is missing"
        assert (by_seq[seq].stream, by_seq[seq].version) == (stream, version)
        assert by_seq[seq].hash == event_hash
    for stream in {event.stream for event in stored}:
        versions = [event.version for event in stored if event.stream == stream]
        assert versions == list(range(1, len(versions) + 1)), stream
    assert result.ok
    assert result.events_checked == expected_total


# -- tampering ------------------------------------------------------------------------------

STREAMS = ["container/a", "container/b", "daemon/host"]

journals = st.lists(
    st.tuples(
        st.sampled_from(STREAMS),
        st.sampled_from(["created", "started", "paused", "exited"]),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        st.none() | st.sampled_from(["cmd-1", "cmd-2"]),
    ),
    min_size=3,
    max_size=10,
)

json_texts = st.one_of(
    st.text(max_size=20),
    st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False), max_size=3).map(
        lambda value: json.dumps(value, sort_keys=True, separators=(",", ":"))
    ),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
    st.sampled_from(['{"x":NaN}', '{"x":Infinity}', "1e400", "[]", "null"]),
)


def new_values(column: str) -> st.SearchStrategy[Any]:
    if column == "version":
        return st.integers(min_value=1, max_value=50)
    if column == "command_id":
        return st.none() | st.text(max_size=10)
    if column == "data":
        return json_texts
    return st.text(max_size=70)


@st.composite
def tamperings(draw: st.DrawFn, count: int) -> tuple[str, Any, int]:
    """Draw one tampering of a journal of ``count`` events, with the seq verify must name."""
    kind = draw(st.sampled_from(["edit", "delete", "swap"]))
    if kind == "edit":
        seq = draw(st.integers(min_value=1, max_value=count))
        column = draw(st.sampled_from(COLUMNS))
        return kind, (seq, column, draw(new_values(column))), seq
    if kind == "delete":
        # The newest row is excluded: removing it leaves no gap for the chain walk to find.
        seq = draw(st.integers(min_value=1, max_value=count - 1))
        return kind, seq, seq
    first, second = draw(
        st.lists(st.integers(min_value=1, max_value=count), min_size=2, max_size=2, unique=True)
    )
    return kind, (first, second), min(first, second)


def build_journal(path: Path, entries: list[tuple[str, str, dict[str, Any], str | None]]) -> None:
    store = EventStore.open(sqlite_url(path), host="test-host")
    try:
        for stream, event_type, data, command_id in entries:
            store.append(
                stream,
                [NewEvent(event_type, data, command_id)],
                expected_version=store.stream_version(stream),
            )
    finally:
        store.close()


def apply_tampering(path: Path, kind: str, target: Any) -> None:
    if kind == "delete":
        delete_row(path, target)
    elif kind == "swap":
        swap_rows(path, *target)
    else:
        seq, column, value = target
        with raw_connection(path) as connection:
            (old,) = connection.execute(f"SELECT {column} FROM events WHERE seq = ?", (seq,)).fetchone()
        if old == value:
            reject()
        try:
            edit_column(path, seq, column, value)
        except sqlite3.IntegrityError:
            reject()  # the edit collides with another row's (stream, version)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), entries=journals)
def test_any_single_tampering_is_found_at_its_seq(
    data: st.DataObject, entries: list[tuple[str, str, dict[str, Any], str | None]]
) -> None:
    kind, target, expected_seq = data.draw(tamperings(len(entries)), label="tampering")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.db"
        build_journal(path, entries)
        drop_append_only_triggers(path)

        apply_tampering(path, kind, target)
        store = EventStore.open(sqlite_url(path))
        try:
            result = store.verify()
        finally:
            store.close()

    assert not result.ok
    assert result.first_bad_seq == expected_seq
    assert result.events_checked == expected_seq - 1
