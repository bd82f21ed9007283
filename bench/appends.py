"""Journal: durable appends through ``EventStore`` against raw ``sqlite3`` inserts of the same rows."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Section, Sizes, Table, goal_gap, scratch_dir
from journal import EventStore, NewEvent
from journal.store import canonical_json

DURABLE_GOAL = 1000.0  # single-event transitions per second
BATCH_GOAL_RATIO = 2.0  # raw sqlite3 batched inserts per second over the store's

_DATA = {"requested_by": {"cmdline": "bosun pause c1", "gid": 0, "pid": 4242, "uid": 0}}


def run(sizes: Sizes) -> Section:
    section = Section(
        "journal",
        "Journal appends",
        "Every store runs on its own fresh SQLite file in WAL mode with `synchronous=FULL`. Durable: "
        f"{sizes.durable_events} `EventStore.append` calls of one event each (a `PauseRequested`-sized "
        "event), spread over N threads, each thread on its own stream. Batched: "
        f"{sizes.batches} appends of {sizes.batch_size} events to one stream. Raw sqlite3: the same "
        "rows (precomputed, hash included) inserted with the standard `sqlite3` module into the same "
        "schema, one row per `BEGIN IMMEDIATE`/`COMMIT`, or one `executemany` per batch.",
    )
    rows: list[list[str]] = []
    single_rates: list[float] = []
    with scratch_dir("bj") as base:
        for threads in sizes.durable_threads:
            store_rate = _store_single(base / f"single-{threads}.db", sizes.durable_events, threads)
            raw_rate = _raw_single(base / f"raw-single-{threads}.db", sizes.durable_events, threads)
            single_rates.append(store_rate)
            rows.append([
                f"1 event per transaction, {threads} thread{'s' if threads > 1 else ''}",
                f"{store_rate:,.0f}", f"{raw_rate:,.0f}", f"{raw_rate / store_rate:.2f}",
                f">= 1,000/s: {goal_gap(store_rate, DURABLE_GOAL, lower_is_better=False, show=lambda v: f'{v:,.0f}/s')}",
            ])
        store_batched = _store_batched(base / "batched.db", sizes.batches, sizes.batch_size)
        raw_batched = _raw_batched(base / "raw-batched.db", sizes.batches, sizes.batch_size)
        ratio = raw_batched / store_batched
        rows.append([
            f"{sizes.batch_size} events per transaction, 1 thread",
            f"{store_batched:,.0f}", f"{raw_batched:,.0f}", f"{ratio:.2f}",
            f"within 2x of raw: {goal_gap(ratio, BATCH_GOAL_RATIO, lower_is_better=True)}",
        ])
    section.tables.append(Table(
        ["workload", "EventStore events/s", "raw sqlite3 rows/s", "raw / store", "goal"], rows,
    ))
    if len(single_rates) > 1 and max(single_rates) < 1.3 * single_rates[0]:
        section.notes.append(
            "More threads do not raise the durable rate: `EventStore.append` commits each call in its "
            "own `BEGIN IMMEDIATE` transaction with its own fsync, and nothing batches concurrent "
            "appends into one commit (no group commit), so writers queue on SQLite's write lock."
        )
    return section


def _event_rows(stream: str, count: int) -> list[tuple[Any, ...]]:
    data = canonical_json(_DATA)
    return [
        (stream, version, "PauseRequested", data, "2026-01-01T00:00:00.000000Z", f"{version:032x}", "bench", "0" * 64)
        for version in range(1, count + 1)
    ]


def _in_threads(threads: int, work: Callable[[int], None]) -> float:
    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def _store_single(path: Path, total: int, threads: int) -> float:
    store = EventStore.open(f"sqlite:///{path}", synchronous="FULL")
    per_thread = total // threads
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for version in range(per_thread):
                store.append(f"container/t{index}", [NewEvent("PauseRequested", _DATA, f"{version:032x}")],
                             expected_version=version)
        except BaseException as exc:  # reported after join
            errors.append(exc)

    try:
        seconds = _in_threads(threads, work)
    finally:
        store.close()
    if errors:
        raise errors[0]
    return per_thread * threads / seconds


def _store_batched(path: Path, batches: int, size: int) -> float:
    store = EventStore.open(f"sqlite:///{path}", synchronous="FULL")
    batch = [NewEvent("PauseRequested", _DATA, f"{index:032x}") for index in range(size)]
    try:
        began = time.perf_counter()
        for number in range(batches):
            store.append("container/b", batch, expected_version=number * size)
        seconds = time.perf_counter() - began
    finally:
        store.close()
    return batches * size / seconds


def _raw_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


_INSERT = (
    "INSERT INTO events (stream, version, type, data, recorded_at, command_id, host, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _raw_single(path: Path, total: int, threads: int) -> float:
    # The journal schema (table, unique key, index, triggers) comes from the store's migration.
    EventStore.open(f"sqlite:///{path}").close()
    per_thread = total // threads
    prepared = [_event_rows(f"container/t{index}", per_thread) for index in range(threads)]
    connections = [_raw_connection(path) for _ in range(threads)]

    def work(index: int) -> None:
        connection = connections[index]
        for row in prepared[index]:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(_INSERT, row)
            connection.execute("COMMIT")

    try:
        seconds = _in_threads(threads, work)
    finally:
        for connection in connections:
            connection.close()
    return per_thread * threads / seconds


def _raw_batched(path: Path, batches: int, size: int) -> float:
    EventStore.open(f"sqlite:///{path}").close()
    rows = _event_rows("container/b", batches * size)
    connection = _raw_connection(path)
    try:
        began = time.perf_counter()
        for number in range(batches):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(_INSERT, rows[number * size:(number + 1) * size])
            connection.execute("COMMIT")
        seconds = time.perf_counter() - began
    finally:
        connection.close()
    return batches * size / seconds
