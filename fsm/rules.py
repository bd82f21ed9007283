"""The command table: which container states accept which commands.

This is the one declaration of what a user may ask for in each state. The supervisor calls
``check_command`` before it appends an intent, and replay calls it again for every intent it
folds, so a command the table rejects is refused live and reported as an anomaly in history.

What moves a container between states is declared separately, in ``fsm.machines``: commands
are requests, and only their outcomes (and facts such as an exit) change the state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from fsm.errors import CommandNotAllowed


class ContainerStatus(enum.StrEnum):
    """The lifecycle state of a container as bosun records it."""

    NEW = "new"  # the stream exists but no container was made yet, e.g. after CreateFailed
    CREATED = "created"  # runtime create succeeded; init exists but has not run user code
    RUNNING = "running"
    PAUSED = "paused"  # the container's cgroup is frozen
    STOPPED = "stopped"  # init exited; the runtime container still exists until deleted
    DELETED = "deleted"  # runtime container removed; a later create starts a new incarnation


class ProcessStatus(enum.StrEnum):
    """The lifecycle state of one process (init or an exec) inside a container."""

    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


class Command(enum.StrEnum):
    """A lifecycle command a user can request of a container.

    Values are identifiers for data and APIs; ``label`` is the command as the CLI spells it.
    """

    CREATE = "create"
    START = "start"
    START_CHECKPOINT = "start_checkpoint"
    PAUSE = "pause"
    RESUME = "resume"
    KILL = "kill"
    EXEC = "exec"
    UPDATE = "update"
    CHECKPOINT = "checkpoint"
    CHECKPOINT_DELETE = "checkpoint_delete"
    DELETE = "delete"
    DELETE_FORCE = "delete_force"

    @property
    def label(self) -> str:
        """The command as typed at the CLI, e.g. ``start --checkpoint``."""
        return _LABELS.get(self, self.value)


_LABELS: Mapping[Command, str] = {
    Command.START_CHECKPOINT: "start --checkpoint",
    Command.CHECKPOINT: "checkpoint create",
    Command.CHECKPOINT_DELETE: "checkpoint delete",
    Command.DELETE_FORCE: "delete --force",
}

_S = ContainerStatus

# The one table of allowed (command, state) pairs.
#
# create is allowed in NEW and in DELETED: creating an id whose container was deleted starts a
# new incarnation in the same stream, so a container's whole history stays under one id.
COMMAND_TABLE: Mapping[Command, frozenset[ContainerStatus]] = {
    Command.CREATE: frozenset({_S.NEW, _S.DELETED}),
    Command.START: frozenset({_S.CREATED}),
    # Restoring needs a container with no live init: a created one is replaced by the restored
    # process, a stopped one is brought back.
    Command.START_CHECKPOINT: frozenset({_S.CREATED, _S.STOPPED}),
    Command.PAUSE: frozenset({_S.RUNNING}),
    Command.RESUME: frozenset({_S.PAUSED}),
    Command.KILL: frozenset({_S.CREATED, _S.RUNNING, _S.PAUSED}),
    Command.EXEC: frozenset({_S.RUNNING}),
    Command.UPDATE: frozenset({_S.CREATED, _S.RUNNING, _S.PAUSED}),
    Command.CHECKPOINT: frozenset({_S.RUNNING}),
    Command.CHECKPOINT_DELETE: frozenset({_S.CREATED, _S.RUNNING, _S.PAUSED, _S.STOPPED}),
    Command.DELETE: frozenset({_S.CREATED, _S.STOPPED}),
    # --force kills a live container, waits for its exit, then deletes it.
    Command.DELETE_FORCE: frozenset({_S.CREATED, _S.RUNNING, _S.PAUSED, _S.STOPPED}),
}


def allowed_states(command: Command) -> list[ContainerStatus]:
    """Return the states in which ``command`` is allowed, in lifecycle order."""
    return [status for status in ContainerStatus if status in COMMAND_TABLE[command]]


def allowed_commands(status: ContainerStatus) -> list[Command]:
    """Return the commands allowed in ``status``, in declaration order."""
    return [command for command in Command if status in COMMAND_TABLE[command]]


def is_allowed(status: ContainerStatus, command: Command) -> bool:
    """Tell whether the command table allows ``command`` in ``status``."""
    return status in COMMAND_TABLE[command]


def check_command(container_id: str, status: ContainerStatus, command: Command) -> None:
    """Raise ``CommandNotAllowed`` unless the command table allows ``command`` in ``status``.

    The error names the container, its state, the states the command needs and the commands the
    current state allows.
    """
    if is_allowed(status, command):
        return
    raise CommandNotAllowed(
        container_id,
        status,
        command,
        allowed_states=allowed_states(command),
        allowed_commands=allowed_commands(status),
    )
