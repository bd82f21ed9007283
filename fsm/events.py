"""The event vocabulary: every event a container or daemon stream may contain.

Events are frozen dataclasses holding only their own data. Journal metadata (seq, stream
version, command_id, recorded_at) belongs to the stored record, not to the event.

There are three kinds:

- an *intent* records that a user requested a command (``PauseRequested``); it changes no state;
- an *outcome* records how the command ended, as a success (``Paused``) or a failure
  (``PauseFailed``); outcomes share the intent's command_id;
- a *fact* records something reality forced on bosun (an exit, a lost shim, a container paused
  behind bosun's back, a daemon start).

Event type names are the class names; they are stored in the journal, so renaming a class
breaks every journal that contains it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from fsm.errors import InvalidEventData, UnknownEventType
from fsm.rules import Command

_REGISTRY: dict[str, type[Event]] = {}


@dataclasses.dataclass(frozen=True)
class Event:
    """Base class of every event; subclasses register themselves under their class name."""

    type: ClassVar[str]
    kind: ClassVar[str]  # "intent", "outcome" or "fact"

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        cls.type = cls.__name__
        if cls.__name__ in _REGISTRY:
            msg = f"event type {cls.__name__} is defined twice"
            raise TypeError(msg)
        _REGISTRY[cls.__name__] = cls

    def to_data(self) -> dict[str, Any]:
        """Return the event's fields as a JSON-safe dict (the journal's ``data`` column)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Intent(Event, abstract=True):
    """A requested command; ``requested_by`` contains the caller's uid, gid, pid and cmdline."""

    kind: ClassVar[str] = "intent"
    command: ClassVar[Command]

    requested_by: dict[str, Any] | None = dataclasses.field(default=None, kw_only=True)

    @property
    def requested_command(self) -> Command:
        """The command this intent requests, with its flags taken into account."""
        return self.command


@dataclasses.dataclass(frozen=True)
class Outcome(Event, abstract=True):
    """The result of a requested command: a success or a ``Failure``."""

    kind: ClassVar[str] = "outcome"


@dataclasses.dataclass(frozen=True)
class Failure(Outcome, abstract=True):
    """A command that failed; ``source`` is "daemon", or "recovery" for an interrupted intent."""

    reason: str
    source: str = "daemon"


@dataclasses.dataclass(frozen=True)
class Fact(Event, abstract=True):
    """Something that happened whether or not bosun asked for it."""

    kind: ClassVar[str] = "fact"


# Intents.


@dataclasses.dataclass(frozen=True)
class CreateRequested(Intent):
    """Create a container from an OCI bundle; ``process`` overrides the bundle's process."""

    command: ClassVar[Command] = Command.CREATE

    bundle: str
    runtime: str
    labels: dict[str, str]
    process: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class StartRequested(Intent):
    """Start the created container, or restore it from the named checkpoint."""

    command: ClassVar[Command] = Command.START

    checkpoint: str | None = None

    @property
    def requested_command(self) -> Command:
        return Command.START_CHECKPOINT if self.checkpoint is not None else Command.START


@dataclasses.dataclass(frozen=True)
class PauseRequested(Intent):
    """Freeze the container's cgroup."""

    command: ClassVar[Command] = Command.PAUSE


@dataclasses.dataclass(frozen=True)
class ResumeRequested(Intent):
    """Thaw the container's cgroup."""

    command: ClassVar[Command] = Command.RESUME


@dataclasses.dataclass(frozen=True)
class KillRequested(Intent):
    """Send ``signal`` to one process, or with ``all_processes`` to every process of the container."""

    command: ClassVar[Command] = Command.KILL

    signal: int
    process: str = "init"
    all_processes: bool = False


@dataclasses.dataclass(frozen=True)
class ExecRequested(Intent):
    """Run an extra process, named ``process``, in the running container."""

    command: ClassVar[Command] = Command.EXEC

    process: str
    args: list[str]
    env: list[str]
    cwd: str


@dataclasses.dataclass(frozen=True)
class UpdateRequested(Intent):
    """Change OCI ``linux.resources`` values of the container."""

    command: ClassVar[Command] = Command.UPDATE

    resources: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CheckpointRequested(Intent):
    """Dump the container with CRIU under ``name``; ``options`` are runtime flags."""

    command: ClassVar[Command] = Command.CHECKPOINT

    name: str
    leave_running: bool
    options: list[str]


@dataclasses.dataclass(frozen=True)
class CheckpointDeleteRequested(Intent):
    """Remove the checkpoint image ``name``."""

    command: ClassVar[Command] = Command.CHECKPOINT_DELETE

    name: str


@dataclasses.dataclass(frozen=True)
class DeleteRequested(Intent):
    """Delete the container; with ``force`` a live one is killed first."""

    command: ClassVar[Command] = Command.DELETE

    force: bool = False

    @property
    def requested_command(self) -> Command:
        return Command.DELETE_FORCE if self.force else Command.DELETE


# Success outcomes.


@dataclasses.dataclass(frozen=True)
class Created(Outcome):
    """The runtime created the container; ``init`` is the init process's ``ProcessRef`` data."""

    init: dict[str, Any]
    state_dir: str


@dataclasses.dataclass(frozen=True)
class Started(Outcome):
    """The container runs; after a restore, ``init`` is the new init process's reference."""

    restored_from: str | None = None
    init: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Paused(Outcome):
    """The container's cgroup is frozen."""


@dataclasses.dataclass(frozen=True)
class Resumed(Outcome):
    """The container's cgroup is thawed."""


@dataclasses.dataclass(frozen=True)
class Killed(Outcome):
    """The runtime delivered ``signal``; the exit, if any, follows as ``ProcessExited``."""

    signal: int
    process: str


@dataclasses.dataclass(frozen=True)
class ExecStarted(Outcome):
    """The exec process runs; ``ref`` is its ``ProcessRef`` data."""

    process: str
    ref: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Updated(Outcome):
    """The runtime applied the resource values."""

    resources: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CheckpointCreated(Outcome):
    """CRIU wrote the checkpoint image ``name`` to ``path``."""

    name: str
    path: str
    leave_running: bool


@dataclasses.dataclass(frozen=True)
class CheckpointDeleted(Outcome):
    """The checkpoint image ``name`` was removed."""

    name: str


@dataclasses.dataclass(frozen=True)
class Deleted(Outcome):
    """The runtime container is gone; ``reason`` is set when recovery deleted it."""

    reason: str | None = None


# Failure outcomes, one per command.


@dataclasses.dataclass(frozen=True)
class CreateFailed(Failure):
    """Create failed; the stream stays in its state before the request."""


@dataclasses.dataclass(frozen=True)
class StartFailed(Failure):
    """Start (or restore) failed."""


@dataclasses.dataclass(frozen=True)
class PauseFailed(Failure):
    """Pause failed."""


@dataclasses.dataclass(frozen=True)
class ResumeFailed(Failure):
    """Resume failed."""


@dataclasses.dataclass(frozen=True)
class KillFailed(Failure):
    """Kill failed."""


@dataclasses.dataclass(frozen=True)
class ExecFailed(Failure):
    """Exec failed; no process was added."""


@dataclasses.dataclass(frozen=True)
class UpdateFailed(Failure):
    """Update failed."""


@dataclasses.dataclass(frozen=True)
class CheckpointFailed(Failure):
    """Checkpoint failed; ``reason`` names the dump log when the runtime left one."""


@dataclasses.dataclass(frozen=True)
class CheckpointDeleteFailed(Failure):
    """Checkpoint delete failed."""


@dataclasses.dataclass(frozen=True)
class DeleteFailed(Failure):
    """Delete failed."""


# Facts in a container stream.


@dataclasses.dataclass(frozen=True)
class ProcessExited(Fact):
    """A process ended; recorded exactly once per process.

    ``status`` is the exit code, or 128+N after signal N, or 255 when no shim recorded it
    (then ``reason`` gives the cause). ``source`` is "shim" or "recovery". The fold rejects a
    second exit of the same process as an anomaly.
    """

    process: str
    status: int
    signal: int | None
    oom: bool
    exited_at: str | None
    source: str
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class StateReconciled(Fact):
    """The container was paused or resumed behind bosun's back; recovery records the change."""

    from_state: str
    to_state: str
    reason: str
    source: str = "recovery"


@dataclasses.dataclass(frozen=True)
class ShimReattached(Fact):
    """A restarted daemon found the shim of ``process`` alive and watches it again."""

    process: str
    shim_pid: int


@dataclasses.dataclass(frozen=True)
class ShimLost(Fact):
    """The shim of ``process`` is gone; the exit, if recorded, follows as ``ProcessExited``."""

    process: str
    reason: str


# Facts in a daemon stream.


@dataclasses.dataclass(frozen=True)
class DaemonFact(Fact, abstract=True):
    """A fact about the daemon itself, recorded in the ``daemon/<host>`` stream."""


@dataclasses.dataclass(frozen=True)
class DaemonStarted(DaemonFact):
    """The daemon started; ``previous_run_clean`` is false when the last run did not stop."""

    pid: int
    version: str
    previous_run_clean: bool
    runtime: str
    shim: str


@dataclasses.dataclass(frozen=True)
class RecoveryStarted(DaemonFact):
    """Recovery began over ``containers`` containers not deleted."""

    containers: int


@dataclasses.dataclass(frozen=True)
class RecoveryFinished(DaemonFact):
    """Recovery ended; ``counts`` maps what recovery did to how often it did it."""

    counts: dict[str, int]
    duration_seconds: float


@dataclasses.dataclass(frozen=True)
class DaemonStopped(DaemonFact):
    """The daemon stopped cleanly."""

    reason: str


@dataclasses.dataclass(frozen=True)
class UnknownContainerFound(DaemonFact):
    """The runtime has a container the journal never heard of; it is reported, not touched."""

    container_id: str
    status: str


DAEMON_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, cls in _REGISTRY.items() if issubclass(cls, DaemonFact)
)
CONTAINER_EVENT_TYPES: frozenset[str] = frozenset(_REGISTRY) - DAEMON_EVENT_TYPES

_INTENTS: Mapping[Command, type[Intent]] = {
    Command.CREATE: CreateRequested,
    Command.START: StartRequested,
    Command.START_CHECKPOINT: StartRequested,
    Command.PAUSE: PauseRequested,
    Command.RESUME: ResumeRequested,
    Command.KILL: KillRequested,
    Command.EXEC: ExecRequested,
    Command.UPDATE: UpdateRequested,
    Command.CHECKPOINT: CheckpointRequested,
    Command.CHECKPOINT_DELETE: CheckpointDeleteRequested,
    Command.DELETE: DeleteRequested,
    Command.DELETE_FORCE: DeleteRequested,
}

_OUTCOMES: Mapping[Command, tuple[type[Outcome], type[Failure]]] = {
    Command.CREATE: (Created, CreateFailed),
    Command.START: (Started, StartFailed),
    Command.START_CHECKPOINT: (Started, StartFailed),
    Command.PAUSE: (Paused, PauseFailed),
    Command.RESUME: (Resumed, ResumeFailed),
    Command.KILL: (Killed, KillFailed),
    Command.EXEC: (ExecStarted, ExecFailed),
    Command.UPDATE: (Updated, UpdateFailed),
    Command.CHECKPOINT: (CheckpointCreated, CheckpointFailed),
    Command.CHECKPOINT_DELETE: (CheckpointDeleted, CheckpointDeleteFailed),
    Command.DELETE: (Deleted, DeleteFailed),
    Command.DELETE_FORCE: (Deleted, DeleteFailed),
}


def intent_type_for(command: Command) -> type[Intent]:
    """Return the intent class that requests ``command``."""
    return _INTENTS[command]


def outcome_types_for(command: Command) -> tuple[type[Outcome], type[Failure]]:
    """Return the (success, failure) outcome classes that close an intent for ``command``."""
    return _OUTCOMES[command]


def event_types() -> dict[str, type[Event]]:
    """Return every registered event class by type name."""
    return dict(_REGISTRY)


def event_class(event_type: str) -> type[Event]:
    """Return the event class registered as ``event_type``; raise ``UnknownEventType`` if none."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def event_from_data(event_type: str, data: Mapping[str, Any]) -> Event:
    """Rebuild an event from its stored type name and data.

    Raises ``UnknownEventType`` for a type not in the registry and ``InvalidEventData`` when the
    data lacks a required field or has a field the type does not define.
    """
    cls = event_class(event_type)
    names, required = _field_names(cls)
    if not (names.issuperset(data) and required.issubset(data)):
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidEventData(event_type, f"unknown fields {', '.join(unknown)}")
        missing = sorted(required - set(data))
        raise InvalidEventData(event_type, f"missing fields {', '.join(missing)}")
    return cls(**data)


@functools.cache
def _field_names(cls: type[Event]) -> tuple[frozenset[str], frozenset[str]]:
    """Return the names of all fields of ``cls`` and of those without a default.

    Replay decodes every event through here, so this runs once per class.
    """
    fields = dataclasses.fields(cls)
    required = (
        field.name
        for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    )
    return frozenset(field.name for field in fields), frozenset(required)
