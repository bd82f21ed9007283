"""Build large journals fast, for the listing, replay and restart benchmarks.

Appending a million events one transaction at a time through ``EventStore`` would take hours
with ``synchronous=FULL``, so this module writes the rows straight into a journal that
``EventStore.open`` created and migrated, in one transaction with ``synchronous=OFF``. Each row
gets the same canonical JSON and SHA-256 chain link the store would write, so ``verify`` accepts
the file, and each container stream follows the lifecycle rules, so the fold applies every event
without an anomaly.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bosun.supervisor import SNAPSHOT_SCHEMA
from fsm.fold import fold
from fsm.streams import container_stream
from journal import EventStore
from journal.store import GENESIS_HASH, canonical_json, chain_hash

# One container's events before the journal metadata is added: (type, data JSON, command id).
_Event = tuple[str, str, "str | None"]

_WHO = {"cmdline": "bosun bench", "gid": 0, "pid": 4242, "uid": 0}


def container_id(index: int) -> str:
    return f"c{index:05d}"


def _reference(cid: str, process: str, root: str) -> dict[str, Any]:
    directory = f"{root}/containers/{cid}" if process == "init" else f"{root}/containers/{cid}/exec/{process}"
    return {
        "container_id": cid,
        "exit_file": f"{directory}/exit/{cid}",
        "log_path": f"{directory}/output.log",
        "oom_file": f"{directory}/persist/oom",
        "pid": 100000,
        "pid_start_time": 1.0,
        "process_id": process,
        "shim_pid": 100001,
        "shim_socket": f"{directory}/attach",
    }


def _exit(process: str, status: int = 0) -> str:
    return canonical_json({
        "exited_at": "2026-01-01T00:00:00.000000+00:00", "oom": False, "process": process,
        "reason": None, "signal": None, "source": "shim", "status": status,
    })


def container_events(
    index: int, budget: int, bundle: str, root: str, *, deleted: bool, never_started: bool
) -> Iterator[_Event]:
    """Yield one container's events: at most ``budget`` of them, ending stopped (or deleted).

    A ``never_started`` container is created and stops before it is started (3 events). The
    others are started, go through pause/resume and exec cycles until the budget is spent, and
    then exit.
    """
    cid = container_id(index)
    commands = iter(range(10**9))

    def command() -> str:
        return f"{index:08x}{next(commands):024x}"

    create = command()
    yield "CreateRequested", canonical_json({
        "bundle": bundle, "labels": {"bench": "1"}, "runtime": "runc", "requested_by": _WHO,
        "process": {"args": ["sleep", "600"], "cwd": "/", "env": ["PATH=hmac-sha256:0"]},
    }), create
    yield "Created", canonical_json({"init": _reference(cid, "init", root), "state_dir": f"{root}/containers/{cid}"}), create
    used = 2
    tail = 1 + (2 if deleted else 0)

    if not never_started:
        start = command()
        yield "StartRequested", canonical_json({"checkpoint": None, "requested_by": _WHO}), start
        yield "Started", canonical_json({"init": None, "restored_from": None}), start
        used += 2
        cycle = 0
        while True:
            size = 4 if cycle % 2 == 0 else 3
            if used + size + tail > budget:
                break
            if size == 4:
                pause, resume = command(), command()
                yield "PauseRequested", canonical_json({"requested_by": _WHO}), pause
                yield "Paused", "{}", pause
                yield "ResumeRequested", canonical_json({"requested_by": _WHO}), resume
                yield "Resumed", "{}", resume
            else:
                run = command()
                process = f"e{cycle}"
                yield "ExecRequested", canonical_json({
                    "args": ["true"], "cwd": "/", "env": [], "process": process, "requested_by": _WHO,
                }), run
                yield "ExecStarted", canonical_json({"process": process, "ref": _reference(cid, process, root)}), run
                yield "ProcessExited", _exit(process), None
            used += size
            cycle += 1

    yield "ProcessExited", _exit("init", 137), None
    if deleted:
        delete = command()
        yield "DeleteRequested", canonical_json({"force": False, "requested_by": _WHO}), delete
        yield "Deleted", canonical_json({"reason": None}), delete


def _time(seq: int) -> str:
    # One event per millisecond from midnight; a million events span about 17 minutes.
    total_ms = seq
    seconds, milliseconds = divmod(total_ms, 1000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"2026-01-01T{hours:02d}:{minute:02d}:{second:02d}.{milliseconds * 1000:06d}Z"


def build_journal(
    path: Path,
    *,
    containers: int,
    events: int,
    bundle: str,
    root: str = "/nonexistent-bench-root",
    deleted_every: int = 0,
    never_started_every: int = 0,
) -> int:
    """Write a new journal at ``path`` with ``containers`` streams and about ``events`` events.

    Streams are interleaved round robin, as concurrent containers would write them. With
    ``deleted_every`` N > 0, every Nth container ends deleted; with ``never_started_every`` M > 0,
    every Mth container (counting from M-1) stops before it was started. Returns the number of
    events written, which can fall short of ``events`` by a few per container.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    EventStore.open(f"sqlite:///{path}").close()

    host = socket.gethostname()
    host_json = json.dumps(host, ensure_ascii=False)
    deleted = [bool(deleted_every) and index % deleted_every == 0 for index in range(containers)]
    short = [bool(never_started_every) and index % never_started_every == never_started_every - 1
             for index in range(containers)]
    short_events = sum(3 + 2 * deleted[index] for index in range(containers) if short[index])
    long_count = max(1, containers - sum(short))
    budget = max(5, (events - short_events) // long_count)
    streams = [
        (container_stream(container_id(index)),
         container_events(index, budget, bundle, root, deleted=deleted[index], never_started=short[index]))
        for index in range(containers)
    ]
    versions = [0] * containers

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN IMMEDIATE")
    previous = GENESIS_HASH
    seq = 0
    rows: list[tuple[Any, ...]] = []
    active = list(range(containers))
    while active:
        still_active = []
        for index in active:
            stream, generator = streams[index]
            item = next(generator, None)
            if item is None:
                continue
            still_active.append(index)
            event_type, data_json, command_id = item
            seq += 1
            versions[index] += 1
            recorded_at = _time(seq)
            # The same text canonical_json gives for the hashed body: keys sorted, no spaces.
            body = (
                f'{{"command_id":{"null" if command_id is None else chr(34) + command_id + chr(34)},'
                f'"data":{data_json},"host":{host_json},"recorded_at":"{recorded_at}","seq":{seq},'
                f'"stream":"{stream}","type":"{event_type}","version":{versions[index]}}}'
            )
            digest = hashlib.sha256(previous.encode("ascii"))
            digest.update(body.encode("utf-8"))
            event_hash = digest.hexdigest()
            if seq <= 3:
                _check_link(previous, body, event_hash)
            previous = event_hash
            rows.append((seq, stream, versions[index], event_type, data_json, recorded_at, command_id, host, event_hash))
            if len(rows) >= 20000:
                _insert(connection, rows)
                rows = []
        active = still_active
    _insert(connection, rows)
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return seq


def _check_link(previous: str, body: str, event_hash: str) -> None:
    expected = chain_hash(previous, json.loads(body))
    if expected != event_hash:
        msg = f"synthetic event hash {event_hash} differs from the store's {expected}: the builder is out of date"
        raise AssertionError(msg)


def _insert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    connection.executemany(
        "INSERT INTO events (seq, stream, version, type, data, recorded_at, command_id, host, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def add_snapshots(path: Path, interval: int = 64) -> int:
    """Store each container stream's folded state at its last multiple of ``interval``, as the
    supervisor does every ``snapshot_interval`` versions; return how many were stored."""
    store = EventStore.open(f"sqlite:///{path}", synchronous="OFF")
    saved = 0
    try:
        for stream, version in store.stream_versions("container/").items():
            at = version // interval * interval
            if at == 0:
                continue
            records = store.read_stream(stream)[:at]
            state = fold(stream.partition("/")[2], records)
            store.save_snapshot(stream, state.version, state.last_seq, state.to_snapshot(), schema=SNAPSHOT_SCHEMA)
            saved += 1
    finally:
        store.close()
    return saved
