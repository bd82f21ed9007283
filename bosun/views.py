"""JSON shapes of containers and events as the API returns them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fsm.fold import ContainerState
from journal import StoredEvent

# Event types that only recovery writes; other types are marked by their ``source`` field.
RECOVERY_TYPES = frozenset({"StateReconciled", "ShimReattached", "ShimLost"})


def container_json(state: ContainerState) -> dict[str, Any]:
    init = state.processes.get("init")
    return {
        "id": state.id,
        "state": state.status.value,
        "version": state.version,
        "incarnation": state.incarnation,
        "bundle": state.bundle,
        "runtime": state.runtime,
        "labels": dict(state.labels),
        "pid": init.pid if init is not None else None,
        "exit_status": state.exit_status,
        "created_at": state.created_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "processes": [
            {
                "id": process.id,
                "pid": process.pid,
                "state": process.status.value,
                "exit_status": process.exit_status,
                "signal": process.signal,
                "oom": process.oom,
                "exited_at": process.exited_at,
                "source": process.source,
                "reason": process.reason,
                "args": process.args,
            }
            for process in state.processes.values()
        ],
        "checkpoints": [
            {"name": name, **details} for name, details in sorted(state.checkpoints.items())
        ],
        "resources": state.resources,
        "pending": [
            {"command_id": intent.command_id, "type": intent.type, "seq": intent.seq}
            for intent in state.pending.values()
        ],
        "anomalies": [
            {"seq": anomaly.seq, "version": anomaly.version, "type": anomaly.type, "reason": anomaly.reason}
            for anomaly in state.anomalies
        ],
    }


def recovery_windows(daemon_events: Iterable[StoredEvent]) -> list[tuple[int, int]]:
    """Return the seq ranges in which recovery ran, from the daemon streams' events.

    The API serves no command while recovery runs, so every container event inside such a
    range was written by recovery. A recovery cut short by a crash ends at the next start.
    """
    windows: list[tuple[int, int]] = []
    open_since: int | None = None
    for event in daemon_events:
        if event.type == "RecoveryStarted":
            open_since = event.seq
        elif event.type in ("RecoveryFinished", "DaemonStarted") and open_since is not None:
            windows.append((open_since, event.seq))
            open_since = None
    if open_since is not None:
        windows.append((open_since, 1 << 62))
    return windows


def is_recovery_event(event: StoredEvent, windows: Iterable[tuple[int, int]]) -> bool:
    """Tell whether recovery wrote ``event`` rather than a command or a shim."""
    if event.type in RECOVERY_TYPES or event.data.get("source") == "recovery":
        return True
    return any(start < event.seq < end for start, end in windows)


def event_json(event: StoredEvent, windows: Iterable[tuple[int, int]] = ()) -> dict[str, Any]:
    return {**event.to_json(), "recovery": is_recovery_event(event, windows)}
