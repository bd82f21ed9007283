"""bosun's lifecycle rules: the event vocabulary, the state machines and the fold.

Pure rules: nothing here touches the journal, a runtime or a database. The supervisor calls
``check_command`` before it journals an intent and folds each stored record with ``apply``.
Replay uses ``fold``, which runs the same machines.
"""

from __future__ import annotations

from fsm.errors import (
    CommandNotAllowed,
    EventRejected,
    ExitRejected,
    InvalidEventData,
    InvalidSnapshot,
    LifecycleError,
    UnknownEventType,
)
from fsm.events import (
    CONTAINER_EVENT_TYPES,
    DAEMON_EVENT_TYPES,
    DaemonFact,
    Event,
    Failure,
    Fact,
    Intent,
    Outcome,
    event_class,
    event_from_data,
    event_types,
    intent_type_for,
    outcome_types_for,
)
from fsm.fold import (
    SNAPSHOT_FORMAT,
    Anomaly,
    ContainerState,
    DaemonState,
    PendingIntent,
    ProcessState,
    Record,
    RecordedEvent,
    apply,
    fold,
    fold_daemon,
)
from fsm.machines import INIT_PROCESS, next_container_status, next_process_status
from fsm.rules import (
    COMMAND_TABLE,
    Command,
    ContainerStatus,
    ProcessStatus,
    allowed_commands,
    allowed_states,
    check_command,
    is_allowed,
)
from fsm.streams import container_stream, daemon_stream, parse_stream

__all__ = [
    "COMMAND_TABLE",
    "CONTAINER_EVENT_TYPES",
    "DAEMON_EVENT_TYPES",
    "INIT_PROCESS",
    "SNAPSHOT_FORMAT",
    "Anomaly",
    "Command",
    "CommandNotAllowed",
    "ContainerState",
    "ContainerStatus",
    "DaemonFact",
    "DaemonState",
    "Event",
    "EventRejected",
    "ExitRejected",
    "Fact",
    "Failure",
    "Intent",
    "InvalidEventData",
    "InvalidSnapshot",
    "LifecycleError",
    "Outcome",
    "PendingIntent",
    "ProcessState",
    "ProcessStatus",
    "Record",
    "RecordedEvent",
    "UnknownEventType",
    "allowed_commands",
    "allowed_states",
    "apply",
    "check_command",
    "container_stream",
    "daemon_stream",
    "event_class",
    "event_from_data",
    "event_types",
    "fold",
    "fold_daemon",
    "intent_type_for",
    "is_allowed",
    "next_container_status",
    "next_process_status",
    "outcome_types_for",
    "parse_stream",
]
