"""The command table, walked over every (state, command) pair."""

from __future__ import annotations

import itertools

import pytest

from fsm import (
    Command,
    CommandNotAllowed,
    ContainerStatus,
    allowed_commands,
    allowed_states,
    check_command,
)

S = ContainerStatus
C = Command

# Written out independently of fsm.rules so a change to the table has to change this too.
EXPECTED_STATES: dict[Command, set[ContainerStatus]] = {
    C.CREATE: {S.NEW, S.DELETED},
    C.START: {S.CREATED},
    C.START_CHECKPOINT: {S.CREATED, S.STOPPED},
    C.PAUSE: {S.RUNNING},
    C.RESUME: {S.PAUSED},
    C.KILL: {S.CREATED, S.RUNNING, S.PAUSED},
    C.EXEC: {S.RUNNING},
    C.UPDATE: {S.CREATED, S.RUNNING, S.PAUSED},
    C.CHECKPOINT: {S.RUNNING},
    C.CHECKPOINT_DELETE: {S.CREATED, S.RUNNING, S.PAUSED, S.STOPPED},
    C.DELETE: {S.CREATED, S.STOPPED},
    C.DELETE_FORCE: {S.CREATED, S.RUNNING, S.PAUSED, S.STOPPED},
}

PAIRS = list(itertools.product(ContainerStatus, Command))


def test_expected_table_covers_every_command() -> None:
    assert set(EXPECTED_STATES) == set(Command)


@pytest.mark.parametrize(
    ("status", "command"),
    [pair for pair in PAIRS if pair[0] in EXPECTED_STATES[pair[1]]],
    ids=lambda value: str(value),
)
def test_allowed_pair_passes_check(status: ContainerStatus, command: Command) -> None:
    check_command("web", status, command)
    assert command in allowed_commands(status)
    assert status in allowed_states(command)


@pytest.mark.parametrize(
    ("status", "command"),
    [pair for pair in PAIRS if pair[0] not in EXPECTED_STATES[pair[1]]],
    ids=lambda value: str(value),
)
def test_forbidden_pair_raises_with_state_and_allowed(
    status: ContainerStatus, command: Command
) -> None:
    with pytest.raises(CommandNotAllowed) as caught:
        check_command("web", status, command)

    error = caught.value
    message = str(error)
    assert error.container_id == "web"
    assert error.status is status
    assert error.command is command
    assert set(error.allowed_states) == EXPECTED_STATES[command]
    assert error.allowed_commands == allowed_commands(status)
    assert message.startswith(f"cannot {command.label} container web: state is {status.value};")
    assert f"commands allowed in {status.value}: " in message
    for allowed in error.allowed_commands:
        assert allowed.label in message
    assert message == message.lower()


def test_pause_in_stopped_message_lists_stopped_commands() -> None:
    with pytest.raises(CommandNotAllowed) as caught:
        check_command("web", S.STOPPED, C.PAUSE)

    assert str(caught.value) == (
        "cannot pause container web: state is stopped; pause is allowed in running; "
        "commands allowed in stopped: start --checkpoint, checkpoint delete, delete, "
        "delete --force"
    )


def test_allowed_commands_in_deleted_is_create_only() -> None:
    assert allowed_commands(S.DELETED) == [C.CREATE]


def test_command_labels_match_cli_spelling() -> None:
    assert C.START_CHECKPOINT.label == "start --checkpoint"
    assert C.CHECKPOINT.label == "checkpoint create"
    assert C.CHECKPOINT_DELETE.label == "checkpoint delete"
    assert C.DELETE_FORCE.label == "delete --force"
    assert C.PAUSE.label == "pause"
