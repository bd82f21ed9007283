"""The container and process machines, walked over every (state, event) pair."""

from __future__ import annotations

import itertools

import pytest

from fsm import (
    ContainerStatus,
    Event,
    EventRejected,
    ProcessStatus,
    event_types,
    next_container_status,
    next_process_status,
)
from fsm import events as ev
from fsm.machines import CONTAINER_MACHINE

S = ContainerStatus
P = ProcessStatus
ALL = set(ContainerStatus)
LIVE = {S.CREATED, S.RUNNING, S.PAUSED, S.STOPPED}

REF = {"container_id": "web", "process_id": "init", "pid": 42}


def _exit(process: str) -> ev.ProcessExited:
    return ev.ProcessExited(process, 0, None, False, None, "shim")


# Sample of each event that may reach the container machine, with the expected destination
# per accepted source state (None: accepted without moving). Sources not listed are rejected.
CASES: dict[str, tuple[Event, dict[ContainerStatus, ContainerStatus | None]]] = {
    "Created": (ev.Created(REF, "/run/bosun/web"), {S.NEW: S.CREATED, S.DELETED: S.CREATED}),
    "Started": (ev.Started(), {S.CREATED: S.RUNNING}),
    "Started-restored": (
        ev.Started(restored_from="cp1", init=REF),
        {S.CREATED: S.RUNNING, S.STOPPED: S.RUNNING},
    ),
    "Paused": (ev.Paused(), {S.RUNNING: S.PAUSED}),
    "Resumed": (ev.Resumed(), {S.PAUSED: S.RUNNING}),
    "ProcessExited-init": (
        _exit("init"),
        {S.CREATED: S.STOPPED, S.RUNNING: S.STOPPED, S.PAUSED: S.STOPPED},
    ),
    "ProcessExited-exec": (_exit("e1"), {state: None for state in LIVE}),
    "Deleted": (ev.Deleted(), {S.CREATED: S.DELETED, S.STOPPED: S.DELETED}),
    "StateReconciled-to-paused": (
        ev.StateReconciled("running", "paused", "frozen behind bosun's back"),
        {S.RUNNING: S.PAUSED},
    ),
    "StateReconciled-to-running": (
        ev.StateReconciled("paused", "running", "thawed behind bosun's back"),
        {S.PAUSED: S.RUNNING},
    ),
    "StateReconciled-mismatch": (ev.StateReconciled("paused", "stopped", "x"), {}),
    "Killed": (ev.Killed(9, "init"), {state: None for state in LIVE}),
    "Updated": (ev.Updated({"pids": {"limit": 10}}), {state: None for state in LIVE}),
    "ExecStarted": (ev.ExecStarted("e1", REF), {state: None for state in LIVE}),
    "CheckpointCreated": (ev.CheckpointCreated("cp1", "/cp", False), {s: None for s in LIVE}),
    "CheckpointDeleted": (ev.CheckpointDeleted("cp1"), {state: None for state in LIVE}),
    "ShimReattached": (ev.ShimReattached("init", 7), {state: None for state in LIVE}),
    "ShimLost": (ev.ShimLost("init", "gone"), {state: None for state in LIVE}),
    **{
        name: (cls(reason="boom"), {state: None for state in ALL})  # type: ignore[call-arg]
        for name, cls in event_types().items()
        if issubclass(cls, ev.Failure)
    },
}


def test_cases_cover_every_container_trigger() -> None:
    covered = {event.type for event, _ in CASES.values()}
    assert covered == set(CONTAINER_MACHINE.events)


@pytest.mark.parametrize(
    ("case", "status"),
    list(itertools.product(CASES, ContainerStatus)),
    ids=lambda value: str(value),
)
def test_container_event_in_state_follows_table(case: str, status: ContainerStatus) -> None:
    event, accepted = CASES[case]

    if status in accepted:
        expected = accepted[status] or status
        assert next_container_status("web", status, event) is expected
    else:
        with pytest.raises(EventRejected) as caught:
            next_container_status("web", status, event)
        assert "container web" in str(caught.value)
        assert f"state is {status.value}" in str(caught.value)


@pytest.mark.parametrize(
    "intent",
    [cls for cls in event_types().values() if issubclass(cls, ev.Intent)],
    ids=lambda cls: cls.type,
)
def test_intent_never_moves_container_machine(intent: type[Event]) -> None:
    assert intent.type not in CONTAINER_MACHINE.events


def test_pause_in_stopped_rejection_names_accepting_state() -> None:
    with pytest.raises(EventRejected) as caught:
        next_container_status("web", S.STOPPED, ev.Paused())

    assert str(caught.value) == (
        "cannot apply Paused to container web: state is stopped; Paused is accepted in running"
    )


def test_plain_start_of_stopped_rejected() -> None:
    with pytest.raises(EventRejected, match="only be started from a checkpoint"):
        next_container_status("web", S.STOPPED, ev.Started())


PROCESS_CASES: dict[str, tuple[Event, dict[ProcessStatus, ProcessStatus]]] = {
    "Started": (ev.Started(), {P.CREATED: P.RUNNING}),
    "ExecStarted": (ev.ExecStarted("e1", REF), {P.CREATED: P.RUNNING}),
    "ProcessExited": (_exit("e1"), {P.CREATED: P.EXITED, P.RUNNING: P.EXITED}),
}


@pytest.mark.parametrize(
    ("case", "status"),
    list(itertools.product(PROCESS_CASES, ProcessStatus)),
    ids=lambda value: str(value),
)
def test_process_event_in_state_follows_table(case: str, status: ProcessStatus) -> None:
    event, accepted = PROCESS_CASES[case]

    if status in accepted:
        assert next_process_status("web", "e1", status, event) is accepted[status]
    else:
        with pytest.raises(EventRejected) as caught:
            next_process_status("web", "e1", status, event)
        assert "process e1 of container web" in str(caught.value)
        assert f"state is {status.value}" in str(caught.value)


def test_exit_of_exited_process_is_rejected() -> None:
    with pytest.raises(EventRejected, match="accepted in created, running"):
        next_process_status("web", "init", P.EXITED, _exit("init"))
