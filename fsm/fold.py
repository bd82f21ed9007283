"""Folding a stream's events into state.

A container's state is the fold of its journal stream: ``fold`` starts from an empty state (or a
snapshot) and ``apply`` adds one stored record at a time. Replay runs the same machines as live
operation (``fsm.machines`` and the command table in ``fsm.rules``). A record that breaks a rule
is listed in ``anomalies`` with its seq and the reason, and otherwise ignored. Live operation calls ``apply(..., strict=True)``, which
raises instead.

How records change state:

- an intent is checked against the command table and recorded in ``pending`` under its
  command_id; it changes nothing else;
- an outcome must carry the command_id of a pending intent whose command it answers; it closes
  that entry (a success also runs the container machine);
- a fact (an exit, a reconciliation, a shim finding) runs the machines directly.

Every record, applied or not, advances ``version`` and ``last_seq``, because the next append to
the stream must name the stream's real last version.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from fsm.errors import EventRejected, ExitRejected, InvalidSnapshot, LifecycleError
from fsm.events import (
    DAEMON_EVENT_TYPES,
    CheckpointCreated,
    CheckpointDeleted,
    Created,
    DaemonStarted,
    DaemonStopped,
    Deleted,
    Event,
    ExecStarted,
    Failure,
    Fact,
    Intent,
    Killed,
    Outcome,
    ProcessExited,
    RecoveryFinished,
    RecoveryStarted,
    ShimLost,
    ShimReattached,
    Started,
    UnknownContainerFound,
    Updated,
    event_from_data,
    outcome_types_for,
)
from fsm.machines import INIT_PROCESS, next_container_status, next_process_status
from fsm.rules import Command, ContainerStatus, ProcessStatus, check_command

# Version of the dict written by ``ContainerState.to_snapshot``; a snapshot of another format
# is refused by ``from_snapshot`` and the caller replays from the start instead.
SNAPSHOT_FORMAT = 1


class RecordedEvent(Protocol):
    """A stored event as the journal returns it; ``journal``'s stored event type fits."""

    @property
    def seq(self) -> int: ...

    @property
    def version(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...

    @property
    def command_id(self) -> str | None: ...

    @property
    def recorded_at(self) -> str: ...  # ISO 8601 UTC


@dataclasses.dataclass(frozen=True)
class Record:
    """A plain ``RecordedEvent``, for tests and for callers that build records by hand."""

    seq: int
    version: int
    type: str
    data: Mapping[str, Any]
    command_id: str | None = None
    recorded_at: str = "1970-01-01T00:00:00.000000+00:00"

    @classmethod
    def of(cls, event: Event, *, seq: int, version: int, command_id: str | None = None,
           recorded_at: str = "1970-01-01T00:00:00.000000+00:00") -> Record:
        """Build the record of ``event`` with the given journal metadata."""
        return cls(seq, version, event.type, event.to_data(), command_id, recorded_at)


@dataclasses.dataclass
class ProcessState:
    """One process of a container: init or an exec."""

    id: str
    status: ProcessStatus
    pid: int | None = None
    exit_status: int | None = None
    signal: int | None = None
    oom: bool = False
    exited_at: str | None = None
    source: str | None = None  # who saw the exit: "shim" or "recovery"
    reason: str | None = None  # why the status is 255 when no monitor observed the exit
    args: list[str] | None = None
    ref: dict[str, Any] | None = None  # the ProcessRef data, to find the process after a restart


@dataclasses.dataclass(frozen=True)
class PendingIntent:
    """An intent whose outcome is not yet in the journal: the command in flight, or cut off."""

    command_id: str
    type: str
    command: Command
    data: dict[str, Any]
    seq: int
    version: int
    recorded_at: str


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """A record that the rules reject, found during replay; it was not applied."""

    seq: int
    version: int
    type: str
    reason: str


@dataclasses.dataclass
class ContainerState:
    """The state of one container: the fold of its stream up to ``version``."""

    id: str
    status: ContainerStatus = ContainerStatus.NEW
    version: int = 0  # stream version of the last record folded, applied or not
    last_seq: int = 0
    incarnation: int = 0  # number of successful creates; a create after delete adds one
    bundle: str | None = None
    runtime: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_status: int | None = None  # init's, None until it exited
    state_dir: str | None = None
    processes: dict[str, ProcessState] = dataclasses.field(default_factory=dict)
    pending: dict[str, PendingIntent] = dataclasses.field(default_factory=dict)
    checkpoints: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    anomalies: list[Anomaly] = dataclasses.field(default_factory=list)

    def to_snapshot(self) -> dict[str, Any]:
        """Return the state as a JSON-safe dict that ``from_snapshot`` reads back."""
        snapshot = dataclasses.asdict(self)
        snapshot["format"] = SNAPSHOT_FORMAT
        return snapshot

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, copy_data: bool = True) -> ContainerState:
        """Rebuild a state from ``to_snapshot`` output; raise ``InvalidSnapshot`` if it is not one.

        ``copy_data=False`` takes ownership of ``snapshot``'s nested values instead of copying
        them, for a caller that decoded it just for this.
        """
        found = snapshot.get("format")
        if found != SNAPSHOT_FORMAT:
            msg = f"snapshot format {found!r} is not {SNAPSHOT_FORMAT}; replay from the start"
            raise InvalidSnapshot(msg)
        try:
            fields = {key: value for key, value in snapshot.items() if key != "format"}
            if copy_data:
                fields = copy.deepcopy(fields)
            fields["status"] = ContainerStatus(fields["status"])
            fields["processes"] = {
                key: ProcessState(**{**value, "status": ProcessStatus(value["status"])})
                for key, value in fields["processes"].items()
            }
            fields["pending"] = {
                key: PendingIntent(**{**value, "command": Command(value["command"])})
                for key, value in fields["pending"].items()
            }
            fields["anomalies"] = [Anomaly(**value) for value in fields["anomalies"]]
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"snapshot of container {snapshot.get('id')!r} cannot be read: {exc}"
            raise InvalidSnapshot(msg) from exc

    @property
    def init(self) -> ProcessState | None:
        """The init process, None before the first create."""
        return self.processes.get(INIT_PROCESS)


def fold(container_id: str, records: Iterable[RecordedEvent],
         snapshot: Mapping[str, Any] | None = None) -> ContainerState:
    """Fold a container stream's records into its state, starting from ``snapshot`` if given.

    Records at or below the snapshot's version are skipped, so passing the whole stream with a
    snapshot gives the same state as passing only the records after it.
    """
    if snapshot is None:
        state = ContainerState(id=container_id)
    else:
        state = ContainerState.from_snapshot(snapshot)
        if state.id != container_id:
            msg = f"snapshot is of container {state.id}, not {container_id}"
            raise InvalidSnapshot(msg)
    for record in records:
        if snapshot is not None and record.version <= state.version:
            continue
        apply(state, record)
    return state


def apply(state: ContainerState, record: RecordedEvent, *, strict: bool = False) -> ContainerState:
    """Fold one record into ``state`` in place and return ``state``.

    A record the rules reject changes nothing but ``version``, ``last_seq`` and ``anomalies``.
    With ``strict`` (live operation) it raises instead: ``CommandNotAllowed`` for an intent,
    ``EventRejected`` for an outcome or fact, and ``ExitRejected`` when the init exit itself is
    rejected, which means the supervisor's state is wrong.
    """
    if record.version <= state.version:
        reason = f"version {record.version} was already folded (state is at {state.version})"
        return _reject(state, record, EventRejected(state.id, state.status, record.type, reason),
                       strict=strict)

    gap = state.version + 1 != record.version
    expected = state.version + 1
    state.version = record.version
    state.last_seq = record.seq
    if gap:
        # The record is still applied: a missing record is reported, and guessing its content
        # would be worse than folding what exists.
        reason = f"version gap: expected version {expected}, found {record.version}"
        state.anomalies.append(Anomaly(record.seq, record.version, record.type, reason))

    try:
        event = _decode(state, record)
        _apply_event(state, event, record)
    except LifecycleError as exc:
        _reject(state, record, exc, strict=strict)
    return state


def _reject(state: ContainerState, record: RecordedEvent, error: LifecycleError, *,
            strict: bool) -> ContainerState:
    if strict:
        raise error
    state.anomalies.append(Anomaly(record.seq, record.version, record.type, str(error)))
    return state


def _decode(state: ContainerState, record: RecordedEvent) -> Event:
    if record.type in DAEMON_EVENT_TYPES:
        raise EventRejected(state.id, state.status, record.type,
                            "a daemon event does not belong in a container stream")
    return event_from_data(record.type, record.data)


def _apply_event(state: ContainerState, event: Event, record: RecordedEvent) -> None:
    # Every handler checks everything before it writes, so a rejection leaves state untouched.
    if isinstance(event, Intent):
        _apply_intent(state, event, record)
    elif isinstance(event, Outcome):
        _apply_outcome(state, event, record)
    elif isinstance(event, Fact):
        _apply_fact(state, event, record)
    else:  # pragma: no cover - every registered event is one of the three kinds
        raise EventRejected(state.id, state.status, event.type, "event has no kind")


def _apply_intent(state: ContainerState, event: Intent, record: RecordedEvent) -> None:
    command = event.requested_command
    check_command(state.id, state.status, command)
    if record.command_id is None:
        raise EventRejected(state.id, state.status, event.type, "the intent has no command_id")
    if record.command_id in state.pending:
        reason = f"command_id {record.command_id} is already pending"
        raise EventRejected(state.id, state.status, event.type, reason)

    state.pending[record.command_id] = PendingIntent(
        command_id=record.command_id,
        type=event.type,
        command=command,
        # The record's data is what to_data() wrote; copying it avoids re-serialising the
        # event, which dominated replay time.
        data=dict(record.data),
        seq=record.seq,
        version=record.version,
        recorded_at=record.recorded_at,
    )


def _apply_outcome(state: ContainerState, event: Outcome, record: RecordedEvent) -> None:
    pending = state.pending.get(record.command_id) if record.command_id is not None else None
    if pending is None:
        reason = f"no pending intent has command_id {record.command_id}"
        raise EventRejected(state.id, state.status, event.type, reason)

    success, failure = outcome_types_for(pending.command)
    # delete --force kills first, so a Killed under its command_id is a step that keeps it pending.
    is_step = isinstance(event, Killed) and pending.command is Command.DELETE_FORCE
    if not isinstance(event, (success, failure)) and not is_step:
        reason = f"{event.type} does not answer {pending.type} ({pending.command.label})"
        raise EventRejected(state.id, state.status, event.type, reason)

    new_status = next_container_status(state.id, state.status, event)
    if not isinstance(event, Failure):
        handler = _OUTCOME_HANDLERS.get(type(event), _no_change)
        handler(state, event, record, pending, new_status)
    state.status = new_status
    if not is_step:
        del state.pending[pending.command_id]


def _apply_fact(state: ContainerState, event: Fact, record: RecordedEvent) -> None:
    if isinstance(event, ProcessExited):
        _apply_exit(state, event, record)
        return
    if isinstance(event, (ShimReattached, ShimLost)):
        _require_process(state, event, event.process)
    state.status = next_container_status(state.id, state.status, event)


def _require_process(state: ContainerState, event: Event, process_id: str) -> ProcessState:
    process = state.processes.get(process_id)
    if process is None:
        reason = f"container has no process {process_id}"
        raise EventRejected(state.id, state.status, event.type, reason, process_id=process_id)
    return process


def _apply_exit(state: ContainerState, event: ProcessExited, record: RecordedEvent) -> None:
    is_init = event.process == INIT_PROCESS
    try:
        new_status = next_container_status(state.id, state.status, event)
        process = _require_process(state, event, event.process)
        process_status = next_process_status(state.id, event.process, process.status, event)
    except EventRejected as exc:
        if not is_init:
            raise
        # The exit of init is forced: its rejection means bosun's belief is wrong.
        raise ExitRejected(state.id, exc.status, exc.event_type, exc.reason,
                           process_id=exc.process_id) from None

    if not is_init:
        # An exec's exit is its last record, so the process leaves the state.
        del state.processes[event.process]
        state.status = new_status
        return

    process.status = process_status
    process.exit_status = event.status
    process.signal = event.signal
    process.oom = event.oom
    process.exited_at = event.exited_at
    process.source = event.source
    process.reason = event.reason
    state.exit_status = event.status
    state.finished_at = event.exited_at or record.recorded_at
    state.status = new_status


# Success outcome handlers. Each runs after the machines accepted the event and before the new
# status is written, and raises EventRejected before writing anything if the data does not fit.


def _on_created(state: ContainerState, event: Created, record: RecordedEvent,
                pending: PendingIntent, new_status: ContainerStatus) -> None:
    override = pending.data.get("process") or {}
    init = ProcessState(
        id=INIT_PROCESS,
        status=ProcessStatus.CREATED,
        pid=event.init.get("pid"),
        args=override.get("args"),
        ref=_copy_json(event.init),
    )
    # A create after delete starts a new incarnation: nothing of the old one carries over.
    state.incarnation += 1
    state.bundle = pending.data.get("bundle")
    state.runtime = pending.data.get("runtime")
    state.labels = dict(pending.data.get("labels") or {})
    state.created_at = record.recorded_at
    state.started_at = None
    state.finished_at = None
    state.exit_status = None
    state.state_dir = event.state_dir
    state.processes = {INIT_PROCESS: init}
    state.checkpoints = {}
    state.resources = {}


def _on_started(state: ContainerState, event: Started, record: RecordedEvent,
                pending: PendingIntent, new_status: ContainerStatus) -> None:
    current = state.processes.get(INIT_PROCESS)
    if event.init is not None or state.status is ContainerStatus.STOPPED:
        # A restore runs a new init process, which replaces the old one whatever its state.
        ref = _copy_json(event.init) if event.init is not None else None
        args = current.args if current is not None else None
        init = ProcessState(id=INIT_PROCESS, status=ProcessStatus.RUNNING,
                            pid=(ref or {}).get("pid"), args=args, ref=ref)
    else:
        current = _require_process(state, event, INIT_PROCESS)
        init = dataclasses.replace(
            current, status=next_process_status(state.id, INIT_PROCESS, current.status, event)
        )
    state.processes[INIT_PROCESS] = init
    state.started_at = record.recorded_at
    state.finished_at = None
    state.exit_status = None


def _on_exec_started(state: ContainerState, event: ExecStarted, record: RecordedEvent,
                     pending: PendingIntent, new_status: ContainerStatus) -> None:
    if event.process in state.processes:
        reason = f"container already has a process {event.process}"
        raise EventRejected(state.id, state.status, event.type, reason, process_id=event.process)
    status = next_process_status(state.id, event.process, ProcessStatus.CREATED, event)
    state.processes[event.process] = ProcessState(
        id=event.process,
        status=status,
        pid=event.ref.get("pid"),
        args=list(pending.data.get("args") or []),
        ref=_copy_json(event.ref),
    )


def _on_updated(state: ContainerState, event: Updated, record: RecordedEvent,
                pending: PendingIntent, new_status: ContainerStatus) -> None:
    # The runtime keeps every value an update does not name, so updates merge.
    state.resources = _merge(state.resources, event.resources)


def _on_checkpoint_created(state: ContainerState, event: CheckpointCreated,
                           record: RecordedEvent, pending: PendingIntent,
                           new_status: ContainerStatus) -> None:
    # Without leave_running the dump stops the container; that exit arrives as ProcessExited.
    state.checkpoints[event.name] = {
        "path": event.path,
        "created_at": record.recorded_at,
        "leave_running": event.leave_running,
    }


def _on_checkpoint_deleted(state: ContainerState, event: CheckpointDeleted,
                           record: RecordedEvent, pending: PendingIntent,
                           new_status: ContainerStatus) -> None:
    if event.name not in state.checkpoints:
        reason = f"container has no checkpoint {event.name}"
        raise EventRejected(state.id, state.status, event.type, reason)
    del state.checkpoints[event.name]


def _on_deleted(state: ContainerState, event: Deleted, record: RecordedEvent,
                pending: PendingIntent, new_status: ContainerStatus) -> None:
    # Deleting a container removes its checkpoint images with its state directory, which is
    # why the command table has no checkpoint delete for a deleted container.
    state.checkpoints = {}


def _no_change(state: ContainerState, event: Any, record: RecordedEvent,
               pending: PendingIntent, new_status: ContainerStatus) -> None:
    """Handle an outcome that changes nothing but the pending entry (Paused, Resumed, Killed)."""


_OUTCOME_HANDLERS: Mapping[type[Event], Any] = {
    Created: _on_created,
    Started: _on_started,
    ExecStarted: _on_exec_started,
    Updated: _on_updated,
    CheckpointCreated: _on_checkpoint_created,
    CheckpointDeleted: _on_checkpoint_deleted,
    Deleted: _on_deleted,
}


def _copy_json(value: Any) -> Any:
    """Copy decoded JSON (dicts, lists and scalars) so the state shares nothing with the record.

    ``copy.deepcopy`` does the same for any object, but keeps a memo and dispatches by type,
    which made it the largest cost of folding an exec during replay.
    """
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclasses.dataclass
class DaemonState:
    """The fold of a daemon stream: the current or last run and its recovery."""

    host: str | None = None
    version: int = 0
    last_seq: int = 0
    runs: int = 0  # DaemonStarted events seen
    crashed_runs: int = 0  # runs followed by another start with no DaemonStopped between
    running: bool = False  # started and not stopped; after a crash this stays true until the next start
    pid: int | None = None
    daemon_version: str | None = None
    runtime: str | None = None
    shim: str | None = None
    started_at: str | None = None
    previous_run_clean: bool | None = None  # as the starting daemon reported it
    stopped_at: str | None = None
    stop_reason: str | None = None
    recovery_started_at: str | None = None
    recovery_containers: int | None = None
    recovery_finished_at: str | None = None
    recovery_counts: dict[str, int] | None = None
    recovery_duration_seconds: float | None = None
    unknown_containers: dict[str, str] = dataclasses.field(default_factory=dict)
    anomalies: list[Anomaly] = dataclasses.field(default_factory=list)


def fold_daemon(records: Iterable[RecordedEvent], *, host: str | None = None) -> DaemonState:
    """Fold a daemon stream's records; a record of another type is listed as an anomaly."""
    state = DaemonState(host=host)
    for record in records:
        state.version = record.version
        state.last_seq = record.seq
        try:
            event = event_from_data(record.type, record.data)
        except LifecycleError as exc:
            state.anomalies.append(Anomaly(record.seq, record.version, record.type, str(exc)))
            continue
        _apply_daemon_event(state, event, record)
    return state


def _apply_daemon_event(state: DaemonState, event: Event, record: RecordedEvent) -> None:
    if isinstance(event, DaemonStarted):
        if state.running:
            state.crashed_runs += 1
        # A new run's recovery replaces the last run's.
        state.runs += 1
        state.running = True
        state.pid = event.pid
        state.daemon_version = event.version
        state.runtime = event.runtime
        state.shim = event.shim
        state.started_at = record.recorded_at
        state.previous_run_clean = event.previous_run_clean
        state.stopped_at = None
        state.stop_reason = None
        state.recovery_started_at = None
        state.recovery_containers = None
        state.recovery_finished_at = None
        state.recovery_counts = None
        state.recovery_duration_seconds = None
        state.unknown_containers = {}
    elif isinstance(event, RecoveryStarted):
        state.recovery_started_at = record.recorded_at
        state.recovery_containers = event.containers
    elif isinstance(event, RecoveryFinished):
        state.recovery_finished_at = record.recorded_at
        state.recovery_counts = dict(event.counts)
        state.recovery_duration_seconds = event.duration_seconds
    elif isinstance(event, UnknownContainerFound):
        state.unknown_containers[event.container_id] = event.status
    elif isinstance(event, DaemonStopped):
        state.running = False
        state.stopped_at = record.recorded_at
        state.stop_reason = event.reason
    else:
        reason = f"{event.type} does not belong in a daemon stream"
        state.anomalies.append(Anomaly(record.seq, record.version, record.type, reason))
