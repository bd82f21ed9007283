"""The container and process state machines, built with ``transitions``.

Each machine is one ``transitions.Machine`` holding the transition table; a container or a
process is a model fed through it. The triggers are event type names, and only outcomes and
facts are triggers: intents never move a machine (``fsm.rules`` checks them against the
command table instead). The same machines run in live operation and in replay, so the rules
live in one place.

The machines are built with ``auto_transitions=False`` so no ``to_<state>`` shortcut can skip the
table, and with invalid triggers raising, so a missing transition is never silently ignored.
A trigger whose conditions fail returns False; both cases become ``EventRejected`` here.

The exit of a container's init process is the one forced transition: the process is gone
whatever bosun believes, so the table accepts it from every state with a live init.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from transitions import EventData, Machine, MachineError

from fsm.errors import EventRejected
from fsm.events import (
    CheckpointCreated,
    CheckpointDeleted,
    Created,
    Deleted,
    Event,
    ExecStarted,
    Failure,
    Killed,
    Paused,
    ProcessExited,
    Resumed,
    ShimLost,
    ShimReattached,
    Started,
    StateReconciled,
    Updated,
    event_types,
)
from fsm.rules import ContainerStatus, ProcessStatus

INIT_PROCESS = "init"

_C = ContainerStatus
_P = ProcessStatus

# States in which a runtime container exists.
_LIVE = [_C.CREATED, _C.RUNNING, _C.PAUSED, _C.STOPPED]
# States in which the init process may still be alive.
_INIT_ALIVE = [_C.CREATED, _C.RUNNING, _C.PAUSED]


def _event(event_data: EventData) -> Any:
    # Every trigger is called with the event as its only positional argument.
    return event_data.args[0]


def _is_restore(event_data: EventData) -> bool:
    return bool(_event(event_data).restored_from is not None)


def _is_init_exit(event_data: EventData) -> bool:
    return bool(_event(event_data).process == INIT_PROCESS)


def _is_other_exit(event_data: EventData) -> bool:
    return not _is_init_exit(event_data)


def _reconciles_to_paused(event_data: EventData) -> bool:
    event = _event(event_data)
    return bool(event.from_state == _C.RUNNING and event.to_state == _C.PAUSED)


def _reconciles_to_running(event_data: EventData) -> bool:
    event = _event(event_data)
    return bool(event.from_state == _C.PAUSED and event.to_state == _C.RUNNING)


def _moves(trigger: type[Event], source: list[ContainerStatus] | ContainerStatus,
           dest: ContainerStatus | None, **conditions: Any) -> dict[str, Any]:
    return {"trigger": trigger.type, "source": source, "dest": dest, **conditions}


_FAILURE_TYPES = [cls for cls in event_types().values() if issubclass(cls, Failure)]

# The container transition table. dest None is an internal transition: the event is accepted
# in those states but does not change the state.
CONTAINER_TRANSITIONS: list[dict[str, Any]] = [
    # A deleted container may be created again as a new incarnation of the same stream.
    _moves(Created, [_C.NEW, _C.DELETED], _C.CREATED),
    _moves(Started, _C.CREATED, _C.RUNNING),
    _moves(Started, _C.STOPPED, _C.RUNNING, conditions=[_is_restore]),
    _moves(Paused, _C.RUNNING, _C.PAUSED),
    _moves(Resumed, _C.PAUSED, _C.RUNNING),
    _moves(ProcessExited, _INIT_ALIVE, _C.STOPPED, conditions=[_is_init_exit]),
    # An exec may exit after init did (its exit can be recorded later), so STOPPED accepts it.
    _moves(ProcessExited, _LIVE, None, conditions=[_is_other_exit]),
    _moves(Deleted, [_C.CREATED, _C.STOPPED], _C.DELETED),
    _moves(StateReconciled, _C.RUNNING, _C.PAUSED, conditions=[_reconciles_to_paused]),
    _moves(StateReconciled, _C.PAUSED, _C.RUNNING, conditions=[_reconciles_to_running]),
    # These outcomes may be journaled after init's exit was (a kill races with the exit it
    # causes), so STOPPED accepts them too.
    *(_moves(cls, _LIVE, None)
      for cls in (Killed, Updated, ExecStarted, CheckpointCreated, CheckpointDeleted,
                  ShimReattached, ShimLost)),
    # A failure changes nothing and may close a command requested in any state.
    *(_moves(cls, list(ContainerStatus), None) for cls in _FAILURE_TYPES),
]

PROCESS_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": Started.type, "source": _P.CREATED, "dest": _P.RUNNING},
    {"trigger": ExecStarted.type, "source": _P.CREATED, "dest": _P.RUNNING},
    # An init that was created but never started can still be killed, so CREATED may exit.
    {"trigger": ProcessExited.type, "source": [_P.CREATED, _P.RUNNING], "dest": _P.EXITED},
]


def _build(states: type[ContainerStatus] | type[ProcessStatus],
           transitions: list[dict[str, Any]], name: str) -> Machine:
    return Machine(
        model=None,
        states=states,
        transitions=transitions,
        initial=list(states)[0],
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=True,
        model_attribute="status",
        name=name,
    )


CONTAINER_MACHINE = _build(ContainerStatus, CONTAINER_TRANSITIONS, "container")
PROCESS_MACHINE = _build(ProcessStatus, PROCESS_TRANSITIONS, "process")


@dataclasses.dataclass
class _Cursor:
    """Model that the machine moves; the caller keeps its status only when the trigger succeeds."""

    status: Any


def _accepting_states(machine: Machine, trigger: str) -> list[str]:
    # transitions keys its tables by state name, which for Enum states is the member's name.
    sources = machine.events[trigger].transitions
    return [str(machine.states[name].value) for name in machine.states if name in sources]


# Rejection reasons for a transition whose source state matched but whose conditions failed.
_CONDITION_REASONS: Mapping[tuple[str, str], str] = {
    (Started.type, _C.STOPPED): "a stopped container can only be started from a checkpoint",
    (ProcessExited.type, _C.STOPPED): "the init process already exited",
    (StateReconciled.type, _C.RUNNING): "a running container can only be reconciled to paused",
    (StateReconciled.type, _C.PAUSED): "a paused container can only be reconciled to running",
}


# Results of the machines, keyed by everything a transition or condition reads: the machine,
# the source state, the trigger and the event fields the conditions look at. Replay folds the
# same few combinations millions of times, and running them through transitions each time
# dominated its cost; the first occurrence of each combination still runs the machine.
_ANSWERS: dict[tuple[Any, ...], tuple[bool, Any]] = {}


def _answer_key(machine: Machine, status: Any, event: Event) -> tuple[Any, ...]:
    return (
        machine.name,
        status,
        event.type,
        getattr(event, "restored_from", None) is not None,
        getattr(event, "process", None) == INIT_PROCESS,
        getattr(event, "from_state", None),
        getattr(event, "to_state", None),
    )


def _fire(machine: Machine, container_id: str, process_id: str | None, status: Any,
          event: Event) -> Any:
    """Run ``event`` through ``machine`` from ``status`` and return the resulting status."""
    key = _answer_key(machine, status, event)
    answer = _ANSWERS.get(key)
    if answer is None:
        try:
            answer = (True, _run_machine(machine, container_id, process_id, status, event))
        except EventRejected as exc:
            answer = (False, exc.reason)
        _ANSWERS[key] = answer
    accepted, value = answer
    if accepted:
        return value
    raise EventRejected(container_id, str(status), event.type, value, process_id=process_id)


def _run_machine(machine: Machine, container_id: str, process_id: str | None, status: Any,
                 event: Event) -> Any:
    def rejected(reason: str) -> EventRejected:
        return EventRejected(container_id, str(status), event.type, reason, process_id=process_id)

    if event.type not in machine.events:
        raise rejected(f"{event.type} does not drive this state machine")

    cursor = _Cursor(status)
    try:
        moved = machine.events[event.type].trigger(cursor, event)
    except MachineError:
        states = ", ".join(_accepting_states(machine, event.type))
        raise rejected(f"{event.type} is accepted in {states}") from None
    if not moved:
        raise rejected(_CONDITION_REASONS.get((event.type, status), "the event's data does not match"))
    return cursor.status


def next_container_status(container_id: str, status: ContainerStatus,
                          event: Event) -> ContainerStatus:
    """Return the container state after ``event``; raise ``EventRejected`` if not allowed."""
    result: ContainerStatus = _fire(CONTAINER_MACHINE, container_id, None, status, event)
    return result


def next_process_status(container_id: str, process_id: str, status: ProcessStatus,
                        event: Event) -> ProcessStatus:
    """Return the process state after ``event``; raise ``EventRejected`` if not allowed."""
    result: ProcessStatus = _fire(PROCESS_MACHINE, container_id, process_id, status, event)
    return result


def drives_container(event_type: str) -> bool:
    """Tell whether ``event_type`` is a trigger of the container machine."""
    return event_type in CONTAINER_MACHINE.events
