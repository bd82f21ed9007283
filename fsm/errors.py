"""Errors raised by the lifecycle rules.

Every error names the container, its state and what was attempted, so that a message read in a
log or at the CLI needs no further lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsm.rules import Command, ContainerStatus


class LifecycleError(Exception):
    """Base class of every error raised by ``fsm``."""


class CommandNotAllowed(LifecycleError):
    """Raised when a command is requested in a state the command table does not allow it in.

    Raised before anything is appended, so a rejected command leaves no trace in the journal.
    """

    def __init__(
        self,
        container_id: str,
        status: ContainerStatus,
        command: Command,
        allowed_states: Sequence[ContainerStatus],
        allowed_commands: Sequence[Command],
    ) -> None:
        self.container_id = container_id
        self.status = status
        self.command = command
        self.allowed_states = list(allowed_states)
        self.allowed_commands = list(allowed_commands)
        states = ", ".join(state.value for state in self.allowed_states) or "no state"
        commands = ", ".join(allowed.label for allowed in self.allowed_commands) or "none"
        super().__init__(
            f"cannot {command.label} container {container_id}: state is {status.value}; "
            f"{command.label} is allowed in {states}; "
            f"commands allowed in {status.value}: {commands}"
        )


class EventRejected(LifecycleError):
    """Raised when a state machine has no transition for an event in the current state.

    Only strict application raises it (live operation); replay records the same finding as an
    anomaly in the folded state instead.
    """

    def __init__(
        self,
        container_id: str,
        status: str,
        event_type: str,
        reason: str,
        *,
        process_id: str | None = None,
    ) -> None:
        self.container_id = container_id
        self.process_id = process_id
        self.status = status
        self.event_type = event_type
        self.reason = reason
        target = f"container {container_id}"
        if process_id is not None:
            target = f"process {process_id} of {target}"
        super().__init__(f"cannot apply {event_type} to {target}: state is {status}; {reason}")


class ExitRejected(EventRejected):
    """Raised when the machines reject the exit of a container's init process in live operation.

    The exit is the one forced transition: the process is gone whatever the journal believes.
    A rejection therefore means the supervisor's state is wrong, which is a bug, not a user error.
    """


class UnknownEventType(LifecycleError):
    """Raised when an event type name is not in the event registry."""

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        super().__init__(f"unknown event type {event_type!r}")


class InvalidEventData(LifecycleError):
    """Raised when stored event data does not match the fields of its event type."""

    def __init__(self, event_type: str, problem: str) -> None:
        self.event_type = event_type
        self.problem = problem
        super().__init__(f"invalid data for event {event_type}: {problem}")


class InvalidSnapshot(LifecycleError):
    """Raised when a snapshot cannot be read back into a state (wrong format or missing fields)."""
