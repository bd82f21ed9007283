"""``bosun journal ...``: commands that open the journal directly, with no daemon involved.

``journal`` and ``fsm`` are imported inside each command, so that importing this module (and
the CLI) stays cheap. Each command writes to the given streams and returns its exit status;
a failure that ends the command raises ``OfflineError`` with a one-line message.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bosun import output

if TYPE_CHECKING:
    from fsm import ContainerState
    from journal import EventStore


class OfflineError(Exception):
    """Raised when a journal command cannot run: missing file, unreadable database, bad argument."""


def sqlite_file(url: str) -> Path | None:
    """Return the database file named by an SQLite URL, None for other URLs and in-memory ones.

    Parsed here rather than with SQLAlchemy so a missing file is reported before anything opens
    it: opening an SQLite URL creates the file.
    """
    scheme, separator, rest = url.partition(":///")
    if not separator or scheme.split("+")[0] != "sqlite":
        return None
    database = urllib.parse.unquote(rest.partition("?")[0])
    if not database or database == ":memory:":
        return None
    return Path(database)


def _require_file(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        msg = f"journal file {path} not found (set --journal or BOSUN_JOURNAL to the journal's URL)"
        raise OfflineError(msg)


def _open(url: str, *, migrate_schema: bool = False) -> EventStore:
    """Open an existing journal, raising ``OfflineError`` with the driver's message if that fails."""
    from journal import EventStore, JournalError

    _require_file(url)
    try:
        return EventStore.open(url, migrate_schema=migrate_schema)
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc


# -- migrate --------------------------------------------------------------------------------


def migrate(url: str, out: TextIO) -> int:
    """Upgrade the journal's schema to this bosun's head revision and print both revisions.

    A missing SQLite file is created, which makes this the way to start a new journal.
    """
    from journal import EventStore, JournalError
    from journal.store import create_journal_engine

    try:
        before_store = EventStore(create_journal_engine(url), url)
        try:
            before = before_store.schema_revision()
        finally:
            before_store.close()
        store = EventStore.open(url, migrate_schema=True)
        try:
            after = store.schema_revision()
        finally:
            store.close()
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc

    if before == after:
        out.write(f"journal schema revision {after or 'none'}: already current\n")
    else:
        out.write(f"journal schema revision {before or 'none'} -> {after}\n")
    return 0


# -- verify ---------------------------------------------------------------------------------


def verify(url: str, out: TextIO, *, as_json: bool = False, expected_head: tuple[int, str] | None = None) -> int:
    """Walk the hash chain and return 0 if it holds, else print the first bad seq and return 1.

    ``expected_head`` is the seq and hash an earlier verify printed; the chain must still hold it.
    """
    from journal import JournalError

    store = _open(url)
    try:
        result = store.verify(expected_head=expected_head)
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc
    finally:
        store.close()

    if as_json:
        report = {
            "ok": result.ok,
            "events_checked": result.events_checked,
            "last_seq": result.last_seq,
            "head_hash": result.head_hash,
            "first_bad_seq": result.first_bad_seq,
            "reason": result.reason,
        }
        out.write(json.dumps(report) + "\n")
    elif result.ok:
        out.write(f"journal ok: {result.events_checked} events, head {result.last_seq}:{result.head_hash}\n")
    else:
        out.write(
            f"journal broken at seq {result.first_bad_seq}: {result.reason} "
            f"({result.events_checked} events before it verified)\n"
        )
    return 0 if result.ok else 1


# -- export ---------------------------------------------------------------------------------


def export(url: str, out: TextIO) -> int:
    """Write every event, with its hash, as one JSON object per line in seq order."""
    from journal import JournalError

    store = _open(url)
    try:
        for event in store.iter_all():
            out.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc
    finally:
        store.close()
    return 0


# -- backup ---------------------------------------------------------------------------------


def backup(url: str, destination: Path, out: TextIO) -> int:
    """Copy a live SQLite journal to ``destination`` with SQLite's online backup."""
    from journal import JournalError

    store = _open(url)
    try:
        last_seq = store.backup(destination)
    except FileExistsError as exc:
        raise OfflineError(str(exc)) from exc
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc
    finally:
        store.close()
    out.write(f"journal backed up to {destination}: head seq {last_seq}\n")
    return 0


# -- replay ---------------------------------------------------------------------------------


def parse_until(value: str) -> tuple[int | None, str | None]:
    """Read ``--until``: digits are a seq, anything else an ISO 8601 time (UTC if it has no zone).

    Returns (seq, None) or (None, time in the journal's format).
    """
    from journal import format_time, parse_time

    text = value.strip()
    if text.isdigit():
        return int(text), None
    try:
        moment = parse_time(text)
    except ValueError:
        msg = (
            f"invalid --until {value!r}: give an event seq such as 42 or an ISO 8601 time "
            "such as 2024-05-01T12:00:00Z"
        )
        raise OfflineError(msg) from None
    return None, format_time(moment)


def replay(
    url: str,
    out: TextIO,
    *,
    until: str | None = None,
    container_id: str | None = None,
    as_json: bool = False,
) -> int:
    """Fold container streams using only events up to ``until`` and print each container's state."""
    from bosun.views import container_json
    from fsm import ContainerState, apply, container_stream, parse_stream
    from journal import JournalError

    until_seq, until_time = parse_until(until) if until is not None else (None, None)
    filters: dict[str, Any] = {"stream_prefix": "container/"}
    if container_id is not None:
        try:
            filters = {"streams": [container_stream(container_id)]}
        except ValueError as exc:
            raise OfflineError(str(exc)) from None
    if until_seq is not None:
        filters["until_seq"] = until_seq
    if until_time is not None:
        filters["until_time"] = until_time

    store = _open(url)
    states: dict[str, ContainerState] = {}
    last_seq = 0
    last_time: str | None = None
    try:
        for event in store.iter_all(**filters):
            _, name = parse_stream(event.stream)
            state = states.get(name)
            if state is None:
                state = states[name] = ContainerState(id=name)
            apply(state, event)
            last_seq, last_time = event.seq, event.recorded_at
    except JournalError as exc:
        raise OfflineError(str(exc)) from exc
    finally:
        store.close()

    if container_id is not None and container_id not in states:
        bound = f" up to {until}" if until is not None else ""
        raise OfflineError(f"container {container_id} not found in the journal{bound}")

    containers = [container_json(states[name]) for name in sorted(states)]
    if as_json:
        report = {"until": until, "last_seq": last_seq, "last_recorded_at": last_time, "containers": containers}
        out.write(json.dumps(report, indent=2) + "\n")
        return 0

    if not containers:
        bound = f" up to {until}" if until is not None else ""
        out.write(f"no container events{bound}\n")
        return 0
    out.write(f"state after seq {last_seq} ({output.short_time(last_time)})\n")
    out.write(output.format_containers(containers) + "\n")
    for container in containers:
        for anomaly in container["anomalies"]:
            out.write(
                f"anomaly in {container['id']} at seq {anomaly['seq']} ({anomaly['type']}): "
                f"{anomaly['reason']}\n"
            )
    return 0

