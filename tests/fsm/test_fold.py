"""Folding container and daemon streams: lifecycle, anomalies, snapshots."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsm import (
    Command,
    CommandNotAllowed,
    ContainerState,
    ContainerStatus,
    Event,
    EventRejected,
    ExitRejected,
    InvalidSnapshot,
    ProcessStatus,
    Record,
    apply,
    fold,
    fold_daemon,
)
from fsm import events as ev

S = ContainerStatus


def ref(process: str = "init", pid: int = 100) -> dict[str, Any]:
    return {
        "container_id": "web",
        "process_id": process,
        "pid": pid,
        "pid_start_time": 1.0,
        "shim_pid": pid - 1,
        "shim_start_time": 0.5,
        "exit_file": f"/run/bosun/web/exits/{process}",
        "oom_file": f"/run/bosun/web/oom/{process}",
        "log_path": f"/run/bosun/web/{process}.log",
    }


def exited(process: str = "init", status: int = 0, signal: int | None = None,
           source: str = "shim", reason: str | None = None) -> ev.ProcessExited:
    return ev.ProcessExited(process, status, signal, False, None, source, reason)


class Stream:
    """Builds a container stream the way the journal stores one: seq, version, command_id."""

    def __init__(self, seq_start: int = 1) -> None:
        self.records: list[Record] = []
        self._seq = seq_start
        self._commands = 0

    def add(self, event: Event, command_id: str | None = None) -> Record:
        version = len(self.records) + 1
        record = Record.of(event, seq=self._seq, version=version, command_id=command_id,
                           recorded_at=f"2024-01-01T00:00:{version:02d}.000000+00:00")
        self._seq += 10  # other streams interleave, so seq is not the version
        self.records.append(record)
        return record

    def command(self, intent: ev.Intent, *outcomes: Event) -> str:
        """Add an intent and its outcomes under one new command_id."""
        self._commands += 1
        command_id = f"cmd-{self._commands}"
        self.add(intent, command_id)
        for outcome in outcomes:
            self.add(outcome, command_id)
        return command_id

    def fold(self) -> ContainerState:
        return fold("web", self.records)


def created_stream() -> Stream:
    stream = Stream()
    stream.command(ev.CreateRequested("/b/web", "runc", {"app": "web"}, {"args": ["sh"]}),
                   ev.Created(ref(), "/run/bosun/web"))
    return stream


def running_stream() -> Stream:
    stream = created_stream()
    stream.command(ev.StartRequested(), ev.Started())
    return stream


def long_stream() -> Stream:
    """A history touching every success path, two incarnations and a few anomalies."""
    stream = running_stream()
    stream.command(ev.PauseRequested(), ev.Paused())
    stream.command(ev.UpdateRequested({"memory": {"limit": 10}}), ev.Updated({"memory": {"limit": 10}}))
    stream.command(ev.ResumeRequested(), ev.Resumed())
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", ref("e1", 200)))
    stream.command(ev.CheckpointRequested("cp1", True, []),
                   ev.CheckpointCreated("cp1", "/cp/web/cp1", True))
    stream.add(exited("e1"))
    stream.command(ev.PauseRequested(), ev.PauseFailed("runc says no"))
    stream.add(ev.StateReconciled("running", "paused", "frozen behind bosun's back"))
    stream.command(ev.KillRequested(9), ev.Killed(9, "init"))
    stream.add(exited("init", 137, 9))
    stream.command(ev.PauseRequested())  # rejected: stopped
    stream.add(exited("init", 137, 9))  # rejected: duplicate exit
    stream.command(ev.StartRequested(checkpoint="cp1"),
                   ev.Started(restored_from="cp1", init=ref(pid=300)))
    stream.command(ev.DeleteRequested(force=True), ev.Killed(9, "init"), exited("init", 137, 9),
                   ev.Deleted())
    stream.command(ev.CreateRequested("/b/web2", "crun", {}, None), ev.Created(ref(pid=400), "/s"))
    stream.command(ev.StartRequested())  # left pending, as a crash leaves it
    return stream


# Lifecycle.


def test_create_start_pause_resume_exit_delete_moves_status() -> None:
    stream = running_stream()
    assert stream.fold().status is S.RUNNING

    stream.command(ev.PauseRequested(), ev.Paused())
    assert stream.fold().status is S.PAUSED

    stream.command(ev.ResumeRequested(), ev.Resumed())
    stream.add(exited("init", 3))
    state = stream.fold()
    assert state.status is S.STOPPED
    assert state.exit_status == 3
    assert state.init is not None and state.init.status is ProcessStatus.EXITED

    stream.command(ev.DeleteRequested(), ev.Deleted())
    state = stream.fold()
    assert state.status is S.DELETED
    assert state.anomalies == []
    assert state.pending == {}


def test_created_copies_bundle_and_init_from_intent() -> None:
    state = created_stream().fold()

    assert state.status is S.CREATED
    assert state.incarnation == 1
    assert state.bundle == "/b/web"
    assert state.runtime == "runc"
    assert state.labels == {"app": "web"}
    assert state.state_dir == "/run/bosun/web"
    assert state.init is not None
    assert state.init.status is ProcessStatus.CREATED
    assert state.init.pid == 100
    assert state.init.args == ["sh"]
    assert state.created_at is not None


def test_start_runs_init() -> None:
    state = running_stream().fold()

    assert state.init is not None and state.init.status is ProcessStatus.RUNNING
    assert state.started_at == "2024-01-01T00:00:04.000000+00:00"


def test_version_and_last_seq_track_last_record() -> None:
    stream = running_stream()
    state = stream.fold()

    assert state.version == 4
    assert state.last_seq == stream.records[-1].seq


def test_intent_without_outcome_stays_pending() -> None:
    stream = running_stream()
    command_id = stream.command(ev.PauseRequested())

    state = stream.fold()

    assert state.status is S.RUNNING
    assert list(state.pending) == [command_id]
    pending = state.pending[command_id]
    assert pending.command is Command.PAUSE
    assert pending.type == "PauseRequested"
    assert pending.version == 5


def test_recovery_failure_closes_interrupted_intent() -> None:
    stream = running_stream()
    stream.command(ev.PauseRequested(), ev.PauseFailed("interrupted", source="recovery"))

    state = stream.fold()

    assert state.pending == {}
    assert state.status is S.RUNNING
    assert state.anomalies == []


def test_create_failed_leaves_stream_new() -> None:
    stream = Stream()
    stream.command(ev.CreateRequested("/b", "runc", {}, None), ev.CreateFailed("bad bundle"))

    state = stream.fold()

    assert state.status is S.NEW
    assert state.incarnation == 0
    assert state.pending == {}


def test_exec_removed_after_exit() -> None:
    stream = running_stream()
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", ref("e1", 200)))
    running = stream.fold()
    assert running.processes["e1"].status is ProcessStatus.RUNNING
    assert running.processes["e1"].args == ["ls"]

    stream.add(exited("e1", 2))
    state = stream.fold()

    assert "e1" not in state.processes
    assert state.status is S.RUNNING
    assert state.anomalies == []


def test_folded_refs_share_nothing() -> None:
    stream = running_stream()
    nested = {**ref("e1", 200), "argv": ["ls", "-l"]}
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", nested))
    state = stream.fold()

    for record in stream.records:
        for key in ("init", "ref"):
            if isinstance(record.data.get(key), dict):
                record.data[key]["pid"] = -1
                record.data[key].get("argv", []).append("changed")

    assert state.processes["init"].ref == ref()
    assert state.processes["e1"].ref == nested
    assert state.processes["e1"].ref["argv"] == ["ls", "-l"]


def test_exec_id_reused_after_exit_is_accepted() -> None:
    stream = running_stream()
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", ref("e1", 200)))
    stream.add(exited("e1"))
    stream.command(ev.ExecRequested("e1", ["ps"], [], "/"), ev.ExecStarted("e1", ref("e1", 201)))

    state = stream.fold()

    assert state.processes["e1"].pid == 201
    assert state.anomalies == []


def test_delete_force_of_running_container_reaches_deleted() -> None:
    stream = running_stream()
    command_id = stream.command(ev.DeleteRequested(force=True), ev.Killed(9, "init"))
    assert command_id in stream.fold().pending  # Killed is a step of the delete

    stream.add(exited("init", 137, 9), command_id)
    stream.add(ev.Deleted(), command_id)
    state = stream.fold()

    assert state.status is S.DELETED
    assert state.exit_status == 137
    assert state.pending == {}
    assert state.anomalies == []


def test_restore_of_stopped_container_runs_new_init() -> None:
    stream = running_stream()
    stream.command(ev.CheckpointRequested("cp1", False, []),
                   ev.CheckpointCreated("cp1", "/cp/web/cp1", False))
    stream.add(exited("init", 0))
    stream.command(ev.StartRequested(checkpoint="cp1"),
                   ev.Started(restored_from="cp1", init=ref(pid=300)))

    state = stream.fold()

    assert state.status is S.RUNNING
    assert state.init is not None
    assert state.init.status is ProcessStatus.RUNNING
    assert state.init.pid == 300
    assert state.exit_status is None
    assert state.finished_at is None
    assert state.anomalies == []


def test_recreate_after_delete_starts_new_incarnation() -> None:
    stream = running_stream()
    stream.command(ev.CheckpointRequested("cp1", True, []),
                   ev.CheckpointCreated("cp1", "/cp/web/cp1", True))
    stream.add(exited("init", 1))
    stream.command(ev.DeleteRequested(), ev.Deleted())
    assert stream.fold().checkpoints == {}

    stream.command(ev.CreateRequested("/b/web2", "crun", {"v": "2"}, None),
                   ev.Created(ref(pid=500), "/run/bosun/web"))
    state = stream.fold()

    assert state.status is S.CREATED
    assert state.incarnation == 2
    assert state.bundle == "/b/web2"
    assert state.runtime == "crun"
    assert state.labels == {"v": "2"}
    assert state.exit_status is None
    assert state.started_at is None
    assert state.init is not None and state.init.pid == 500
    assert state.init.status is ProcessStatus.CREATED
    assert state.anomalies == []


def test_update_merges_resources() -> None:
    stream = running_stream()
    stream.command(ev.UpdateRequested({}), ev.Updated({"memory": {"limit": 10}, "pids": {"limit": 5}}))
    stream.command(ev.UpdateRequested({}), ev.Updated({"memory": {"swap": 20}}))

    state = stream.fold()

    assert state.resources == {"memory": {"limit": 10, "swap": 20}, "pids": {"limit": 5}}


def test_checkpoint_created_then_deleted() -> None:
    stream = running_stream()
    stream.command(ev.CheckpointRequested("cp1", True, []),
                   ev.CheckpointCreated("cp1", "/cp/web/cp1", True))
    created = stream.fold()
    assert created.checkpoints["cp1"]["path"] == "/cp/web/cp1"
    assert created.checkpoints["cp1"]["leave_running"] is True

    stream.command(ev.CheckpointDeleteRequested("cp1"), ev.CheckpointDeleted("cp1"))

    assert stream.fold().checkpoints == {}


def test_state_reconciled_pauses_running_container() -> None:
    stream = running_stream()
    stream.add(ev.StateReconciled("running", "paused", "frozen behind bosun's back"))

    assert stream.fold().status is S.PAUSED


# Anomalies.


def test_forbidden_intent_reported_with_seq() -> None:
    stream = running_stream()
    stream.add(exited("init", 0))
    record = stream.add(ev.PauseRequested(), "cmd-x")

    state = stream.fold()

    assert state.status is S.STOPPED
    assert state.pending == {}
    assert len(state.anomalies) == 1
    anomaly = state.anomalies[0]
    assert anomaly.seq == record.seq
    assert anomaly.version == record.version
    assert anomaly.type == "PauseRequested"
    assert "cannot pause container web: state is stopped" in anomaly.reason
    assert state.version == record.version


def test_outcome_without_pending_intent_is_anomaly() -> None:
    stream = running_stream()
    record = stream.add(ev.Paused(), "cmd-nobody")

    state = stream.fold()

    assert state.status is S.RUNNING
    assert [anomaly.seq for anomaly in state.anomalies] == [record.seq]
    assert "no pending intent has command_id cmd-nobody" in state.anomalies[0].reason


def test_outcome_answering_other_command_is_anomaly() -> None:
    stream = running_stream()
    stream.command(ev.PauseRequested(), ev.Resumed())

    state = stream.fold()

    assert state.status is S.RUNNING
    assert "Resumed does not answer PauseRequested" in state.anomalies[0].reason


def test_duplicate_init_exit_is_anomaly() -> None:
    stream = running_stream()
    stream.add(exited("init", 0))
    duplicate = stream.add(exited("init", 1, source="recovery"))

    state = stream.fold()

    assert state.exit_status == 0
    assert [anomaly.seq for anomaly in state.anomalies] == [duplicate.seq]
    assert "state is stopped" in state.anomalies[0].reason


def test_duplicate_exec_exit_is_anomaly() -> None:
    stream = running_stream()
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", ref("e1", 200)))
    stream.add(exited("e1", 0))
    duplicate = stream.add(exited("e1", 0, source="recovery"))

    state = stream.fold()

    assert [anomaly.seq for anomaly in state.anomalies] == [duplicate.seq]
    assert "container has no process e1" in state.anomalies[0].reason


def test_exec_started_for_live_exec_id_is_anomaly() -> None:
    stream = running_stream()
    stream.command(ev.ExecRequested("e1", ["ls"], [], "/"), ev.ExecStarted("e1", ref("e1", 200)))
    stream.command(ev.ExecRequested("e1", ["ps"], [], "/"), ev.ExecStarted("e1", ref("e1", 201)))

    state = stream.fold()

    assert state.processes["e1"].pid == 200
    assert "already has a process e1" in state.anomalies[0].reason


def test_version_gap_is_reported_and_record_applied() -> None:
    stream = running_stream()
    stream.add(ev.ShimReattached("init", 99))
    stream.add(exited("init", 0))
    gapped = stream.records[:4] + stream.records[5:]

    state = fold("web", gapped)

    assert state.status is S.STOPPED
    assert len(state.anomalies) == 1
    assert "version gap: expected version 5, found 6" in state.anomalies[0].reason


def test_unknown_and_daemon_types_are_anomalies() -> None:
    stream = running_stream()
    unknown = stream.add(ev.Paused())
    stream.records[-1] = Record(unknown.seq, unknown.version, "Exploded", {})
    daemon = stream.add(ev.DaemonStopped("x"))

    state = stream.fold()

    assert [anomaly.seq for anomaly in state.anomalies] == [unknown.seq, daemon.seq]
    assert "unknown event type 'Exploded'" in state.anomalies[0].reason
    assert "daemon event" in state.anomalies[1].reason


def test_intent_without_command_id_is_anomaly() -> None:
    stream = running_stream()
    stream.add(ev.PauseRequested())

    state = stream.fold()

    assert "the intent has no command_id" in state.anomalies[0].reason


def test_already_folded_version_is_anomaly_without_moving_version() -> None:
    stream = running_stream()
    state = stream.fold()

    apply(state, stream.records[-1])

    assert state.version == 4
    assert "version 4 was already folded" in state.anomalies[0].reason


# Strict application, as live operation uses it.


def test_strict_forbidden_intent_raises_command_not_allowed() -> None:
    stream = running_stream()
    stream.add(exited("init", 0))
    state = stream.fold()
    record = Record.of(ev.PauseRequested(), seq=999, version=state.version + 1, command_id="c")

    with pytest.raises(CommandNotAllowed, match="state is stopped"):
        apply(state, record, strict=True)
    assert state.pending == {}
    assert state.anomalies == []


def test_strict_rejected_init_exit_raises_exit_rejected() -> None:
    stream = running_stream()
    stream.add(exited("init", 0))
    state = stream.fold()
    record = Record.of(exited("init", 1), seq=999, version=state.version + 1)

    with pytest.raises(ExitRejected) as caught:
        apply(state, record, strict=True)
    assert caught.value.container_id == "web"
    assert state.exit_status == 0


def test_strict_rejected_outcome_raises_event_rejected() -> None:
    state = running_stream().fold()
    record = Record.of(ev.Resumed(), seq=999, version=state.version + 1, command_id="c")

    with pytest.raises(EventRejected, match="no pending intent"):
        apply(state, record, strict=True)


# Snapshots.


@pytest.mark.parametrize("cut", range(0, len(long_stream().records) + 1))
def test_snapshot_plus_tail_equals_full_fold(cut: int) -> None:
    records = long_stream().records
    full = fold("web", records)
    head = fold("web", records[:cut])
    snapshot = json.loads(json.dumps(head.to_snapshot()))

    from_tail = fold("web", records[cut:], snapshot=snapshot)
    from_all = fold("web", records, snapshot=snapshot)

    assert from_tail == full
    assert from_all == full


def test_long_stream_folds_to_expected_end() -> None:
    state = long_stream().fold()

    assert state.status is S.CREATED
    assert state.incarnation == 2
    assert [anomaly.type for anomaly in state.anomalies] == ["PauseRequested", "ProcessExited"]
    assert [pending.command for pending in state.pending.values()] == [Command.START]


def test_snapshot_of_other_container_raises() -> None:
    snapshot = running_stream().fold().to_snapshot()

    with pytest.raises(InvalidSnapshot, match="snapshot is of container web, not db"):
        fold("db", [], snapshot=snapshot)


def test_snapshot_of_other_format_raises() -> None:
    snapshot = running_stream().fold().to_snapshot()
    snapshot["format"] = 99

    with pytest.raises(InvalidSnapshot, match="snapshot format 99"):
        ContainerState.from_snapshot(snapshot)


def test_snapshot_with_missing_field_raises() -> None:
    snapshot = running_stream().fold().to_snapshot()
    del snapshot["processes"]

    with pytest.raises(InvalidSnapshot, match="container 'web' cannot be read"):
        ContainerState.from_snapshot(snapshot)


EVENT_POOL: list[tuple[Event, bool]] = [
    # (event, whether it carries a command_id of the current command)
    (ev.CreateRequested("/b", "runc", {}, None), True),
    (ev.Created(ref(), "/s"), True),
    (ev.CreateFailed("x"), True),
    (ev.StartRequested(), True),
    (ev.StartRequested(checkpoint="cp1"), True),
    (ev.Started(), True),
    (ev.Started(restored_from="cp1", init=ref(pid=9)), True),
    (ev.PauseRequested(), True),
    (ev.Paused(), True),
    (ev.ResumeRequested(), True),
    (ev.Resumed(), True),
    (ev.ExecRequested("e1", ["ls"], [], "/"), True),
    (ev.ExecStarted("e1", ref("e1", 200)), True),
    (ev.CheckpointRequested("cp1", True, []), True),
    (ev.CheckpointCreated("cp1", "/cp", True), True),
    (ev.DeleteRequested(force=True), True),
    (ev.Killed(9, "init"), True),
    (ev.Deleted(), True),
    (exited("init", 137, 9), False),
    (exited("e1", 0), False),
    (ev.StateReconciled("running", "paused", "x"), False),
    (ev.StateReconciled("paused", "running", "x"), False),
]


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(st.tuples(st.integers(0, len(EVENT_POOL) - 1), st.integers(0, 3)),
                   max_size=40),
    cut_fraction=st.floats(0, 1),
)
def test_random_history_snapshot_equals_full_fold(
    picks: list[tuple[int, int]], cut_fraction: float
) -> None:
    # Random histories break the rules often; the anomalies must survive a snapshot too.
    stream = Stream()
    for index, command_number in picks:
        event, has_command = EVENT_POOL[index]
        stream.add(event, f"cmd-{command_number}" if has_command else None)
    records = stream.records
    cut = int(len(records) * cut_fraction)

    full = fold("web", records)
    snapshot = json.loads(json.dumps(fold("web", records[:cut]).to_snapshot()))

    assert fold("web", records[cut:], snapshot=snapshot) == full
    assert full.version == len(records)


# Daemon stream.


def daemon_records(*events: Event) -> list[Record]:
    return [
        Record.of(event, seq=index + 1, version=index + 1,
                  recorded_at=f"2024-01-01T00:00:{index:02d}.000000+00:00")
        for index, event in enumerate(events)
    ]


def test_daemon_fold_reports_last_run_and_recovery() -> None:
    records = daemon_records(
        ev.DaemonStarted(10, "0.1.0", True, "runc", "conmon"),
        ev.RecoveryStarted(2),
        ev.UnknownContainerFound("stray", "running"),
        ev.RecoveryFinished({"exits": 1}, 0.5),
        ev.DaemonStopped("SIGTERM"),
    )

    state = fold_daemon(records, host="h1")

    assert state.host == "h1"
    assert state.runs == 1
    assert state.running is False
    assert state.stop_reason == "SIGTERM"
    assert state.recovery_containers == 2
    assert state.recovery_counts == {"exits": 1}
    assert state.recovery_duration_seconds == 0.5
    assert state.unknown_containers == {"stray": "running"}
    assert state.crashed_runs == 0
    assert state.version == 5


def test_daemon_start_without_stop_counts_crashed_run() -> None:
    records = daemon_records(
        ev.DaemonStarted(10, "0.1.0", True, "runc", "conmon"),
        ev.RecoveryStarted(2),
        ev.DaemonStarted(11, "0.1.0", False, "runc", "conmon"),
    )

    state = fold_daemon(records)

    assert state.runs == 2
    assert state.crashed_runs == 1
    assert state.running is True
    assert state.pid == 11
    assert state.previous_run_clean is False
    assert state.recovery_containers is None


def test_daemon_fold_lists_container_event_as_anomaly() -> None:
    records = daemon_records(ev.Paused())

    state = fold_daemon(records)

    assert state.anomalies[0].type == "Paused"
