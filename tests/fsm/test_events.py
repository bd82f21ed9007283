"""The event vocabulary: registry, JSON round trip, command mappings, stream names."""

from __future__ import annotations

import json

import pytest

from fsm import (
    Command,
    Event,
    InvalidEventData,
    UnknownEventType,
    container_stream,
    daemon_stream,
    event_from_data,
    event_types,
    intent_type_for,
    outcome_types_for,
    parse_stream,
)
from fsm import events as ev

WHO = {"uid": 1000, "gid": 1000, "pid": 4242, "cmdline": ["bosun", "pause", "web"]}
REF = {
    "container_id": "web",
    "process_id": "init",
    "pid": 42,
    "pid_start_time": 1700000000.5,
    "shim_pid": 41,
    "shim_start_time": 1700000000.25,
    "exit_file": "/run/bosun/web/exits/init",
    "oom_file": "/run/bosun/web/oom/init",
    "log_path": "/run/bosun/web/init.log",
}

SAMPLES: list[Event] = [
    ev.CreateRequested("/b/web", "runc", {"app": "web"}, {"args": ["sh"]}, requested_by=WHO),
    ev.StartRequested(checkpoint="cp1", requested_by=WHO),
    ev.PauseRequested(requested_by=WHO),
    ev.ResumeRequested(),
    ev.KillRequested(15, process="e1", all_processes=True),
    ev.ExecRequested("e1", ["ls", "-l"], ["PATH=/bin"], "/tmp"),
    ev.UpdateRequested({"memory": {"limit": 1 << 20}}),
    ev.CheckpointRequested("cp1", True, ["--tcp-established"]),
    ev.CheckpointDeleteRequested("cp1"),
    ev.DeleteRequested(force=True),
    ev.Created(REF, "/run/bosun/web"),
    ev.Started(restored_from="cp1", init=REF),
    ev.Paused(),
    ev.Resumed(),
    ev.Killed(9, "init"),
    ev.ExecStarted("e1", REF),
    ev.Updated({"pids": {"limit": 64}}),
    ev.CheckpointCreated("cp1", "/var/lib/bosun/cp/web/cp1", False),
    ev.CheckpointDeleted("cp1"),
    ev.Deleted(reason="bundle missing"),
    ev.CreateFailed("no such file", source="daemon"),
    ev.StartFailed("interrupted", source="recovery"),
    ev.PauseFailed("boom"),
    ev.ResumeFailed("boom"),
    ev.KillFailed("boom"),
    ev.ExecFailed("boom"),
    ev.UpdateFailed("boom"),
    ev.CheckpointFailed("criu failed, see /x/dump.log"),
    ev.CheckpointDeleteFailed("boom"),
    ev.DeleteFailed("boom"),
    ev.ProcessExited("init", 255, None, False, None, "recovery", reason="exit status lost"),
    ev.StateReconciled("running", "paused", "cgroup frozen"),
    ev.ShimReattached("init", 41),
    ev.ShimLost("e1", "shim pid 41 is gone"),
    ev.DaemonStarted(100, "0.1.0", False, "runc", "conmon"),
    ev.RecoveryStarted(3),
    ev.RecoveryFinished({"exits": 2, "reattached": 1}, 0.25),
    ev.DaemonStopped("SIGTERM"),
    ev.UnknownContainerFound("stray", "running"),
]


def test_samples_cover_every_registered_type() -> None:
    assert {event.type for event in SAMPLES} == set(event_types())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda event: event.type)
def test_event_round_trips_through_json(event: Event) -> None:
    data = json.loads(json.dumps(event.to_data()))

    rebuilt = event_from_data(event.type, data)

    assert rebuilt == event
    assert type(rebuilt) is type(event)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda event: event.type)
def test_event_type_and_kind_are_declared(event: Event) -> None:
    assert event.type == type(event).__name__
    assert event.kind in {"intent", "outcome", "fact"}
    if isinstance(event, ev.Intent):
        assert isinstance(event.command, Command)


def test_unknown_type_raises_naming_it() -> None:
    with pytest.raises(UnknownEventType, match="'Exploded'"):
        event_from_data("Exploded", {})


def test_missing_field_raises_naming_it() -> None:
    with pytest.raises(InvalidEventData, match="missing fields signal"):
        event_from_data("KillRequested", {"process": "init"})


def test_unknown_field_raises_naming_it() -> None:
    with pytest.raises(InvalidEventData, match="unknown fields colour"):
        event_from_data("Paused", {"colour": "blue"})


def test_journal_metadata_is_not_event_data() -> None:
    data = ev.Paused().to_data()

    for key in ("seq", "version", "command_id", "recorded_at"):
        assert key not in data


@pytest.mark.parametrize("command", list(Command), ids=str)
def test_command_maps_to_intent_and_outcomes(command: Command) -> None:
    intent = intent_type_for(command)
    success, failure = outcome_types_for(command)

    assert intent.kind == "intent"
    assert success.kind == "outcome"
    assert issubclass(failure, ev.Failure)
    assert intent.type.removesuffix("Requested") in failure.type


def test_flags_select_requested_command() -> None:
    assert ev.StartRequested().requested_command is Command.START
    assert ev.StartRequested(checkpoint="cp1").requested_command is Command.START_CHECKPOINT
    assert ev.DeleteRequested().requested_command is Command.DELETE
    assert ev.DeleteRequested(force=True).requested_command is Command.DELETE_FORCE


def test_stream_names_round_trip() -> None:
    assert container_stream("web") == "container/web"
    assert daemon_stream("host1") == "daemon/host1"
    assert parse_stream("container/web") == ("container", "web")
    assert parse_stream("daemon/host1") == ("daemon", "host1")


@pytest.mark.parametrize("stream", ["web", "container/", "pod/web", "container/a/b", ""])
def test_invalid_stream_name_raises(stream: str) -> None:
    with pytest.raises(ValueError, match="invalid stream name"):
        parse_stream(stream)


def test_container_id_with_slash_raises() -> None:
    with pytest.raises(ValueError, match="invalid container name 'a/b'"):
        container_stream("a/b")
