"""The supervisor and daemon on the simulated runtime: caching, snapshots, parallelism."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.simulated import SimulatedCall, SimulatedRuntime, SimulatedShim, SimulatedWorld
from bosun.config import DaemonSettings
from bosun.crash import CrashPoints, SimulatedCrash
from bosun.daemon import Daemon
from bosun.errors import VersionMismatch
from fsm.fold import fold
from fsm.streams import container_stream
from journal import EventStore

# Safety net for threads a test waits on; not a measurement.
THREAD_LIMIT = 30.0


def make_bundle(path: Path, args: list[str] | None = None, env: list[str] | None = None) -> Path:
    (path / "rootfs").mkdir(parents=True)
    config = {"process": {"args": args or ["sleep", "600"], "env": env or [], "cwd": "/"}, "root": {"path": "rootfs"}}
    (path / "config.json").write_text(json.dumps(config))
    return path


class Harness:
    """A daemon on the simulated runtime that can be restarted on the same journal and world."""

    def __init__(self, base: Path, snapshot_interval: int = 64) -> None:
        self.base = base
        self.world = SimulatedWorld(sync_callbacks=True)
        self.settings = DaemonSettings(
            root=base / "root",
            journal_url=f"sqlite:///{base}/journal.db",
            socket=base / "root" / "bosun.sock",
            snapshot_interval=snapshot_interval,
        )
        self.daemon: Daemon | None = None
        self.start()

    def start(self) -> Daemon:
        store = EventStore.open(self.settings.journal_url)
        runtime = SimulatedRuntime(self.world, root=self.settings.runtime_root)
        self.daemon = Daemon(self.settings, store, runtime, SimulatedShim(self.world))
        self.daemon.recover()
        return self.daemon

    def restart(self) -> Daemon:
        assert self.daemon is not None
        self.daemon.stop("test restart")
        return self.start()

    def close(self) -> None:
        if self.daemon is not None and not self.daemon.stopping:
            self.daemon.stop("test end")
        self.world.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()


def test_ps_with_1000_containers_reads_no_journal(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    try:
        bundle = make_bundle(tmp_path / "bundle")
        supervisor = harness.daemon.supervisor
        for index in range(1000):
            supervisor.create(f"c{index}", str(bundle))
        harness.restart()
        store = harness.daemon.store

        def forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError("ps read the journal")

        store.read_stream = forbidden  # type: ignore[method-assign]
        store.read_all = forbidden  # type: ignore[method-assign]
        listed = harness.daemon.supervisor.states()

        assert len(listed) == 1000
        assert {state.status.value for state in listed} == {"created"}
    finally:
        harness.close()


def test_snapshots_keep_restart_replay_short(tmp_path: Path) -> None:
    harness = Harness(tmp_path, snapshot_interval=16)
    try:
        bundle = make_bundle(tmp_path / "bundle")
        supervisor = harness.daemon.supervisor
        supervisor.create("busy", str(bundle), start=True)
        for _ in range(50):
            supervisor.pause("busy")
            supervisor.resume("busy")
        live = supervisor.get("busy")

        replayed_events: list[int] = []
        original = EventStore.iter_after_snapshots

        def counting_tails(self: EventStore, *args: object, **kwargs: object) -> Iterator:
            for event in original(self, *args, **kwargs):  # type: ignore[arg-type]
                if event.stream == container_stream("busy"):
                    replayed_events.append(event.version)
                yield event

        EventStore.iter_after_snapshots = counting_tails  # type: ignore[method-assign]
        try:
            daemon = harness.restart()
        finally:
            EventStore.iter_after_snapshots = original  # type: ignore[method-assign]
        store = daemon.store
        snapshot = store.load_snapshot(container_stream("busy"), schema=1)
        replayed = fold("busy", store.read_stream(container_stream("busy")))

        assert live.version == 204
        assert snapshot is not None
        assert snapshot.version > live.version - 16
        assert 0 < len(replayed_events) < 16
        assert daemon.supervisor.get("busy").to_snapshot() == replayed.to_snapshot()
        assert replayed.status == live.status
    finally:
        harness.close()


def test_exec_process_removed_after_exit(harness: Harness, tmp_path: Path) -> None:
    supervisor = harness.daemon.supervisor
    supervisor.create("host", str(make_bundle(tmp_path / "bundle")), start=True)
    supervisor.exec("host", "job", ["true"])
    assert supervisor.get("host").processes["job"].status.value == "running"

    harness.world.exit_process("host", "job", 0)

    state = supervisor.get("host")
    assert "job" not in state.processes
    events = harness.daemon.store.read_stream(container_stream("host"))
    exits = [e for e in events if e.type == "ProcessExited" and e.data["process"] == "job"]
    assert len(exits) == 1
    assert exits[0].data["status"] == 0


def test_env_values_are_redacted_by_default(harness: Harness, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", env=["API_TOKEN=hunter2", "PATH=/bin"])
    supervisor = harness.daemon.supervisor

    supervisor.create("secretive", str(bundle))

    raw = (tmp_path / "journal.db").read_bytes() + (tmp_path / "journal.db-wal").read_bytes()
    assert b"hunter2" not in raw
    intent = harness.daemon.store.read_stream(container_stream("secretive"))[0]
    env = intent.data["process"]["env"]
    assert env[0].startswith("API_TOKEN=hmac-sha256:")
    assert env[1].startswith("PATH=hmac-sha256:")


def test_if_version_mismatch_appends_nothing(harness: Harness, tmp_path: Path) -> None:
    supervisor = harness.daemon.supervisor
    supervisor.create("v", str(make_bundle(tmp_path / "bundle")), start=True)
    version = supervisor.get("v").version

    with pytest.raises(VersionMismatch) as raised:
        supervisor.pause("v", if_version=version - 1)

    assert f"at version {version}, not {version - 1}" in str(raised.value)
    assert supervisor.get("v").version == version
    assert harness.daemon.store.stream_version(container_stream("v")) == version


def test_other_containers_proceed_while_one_command_blocks(harness: Harness, tmp_path: Path) -> None:
    supervisor = harness.daemon.supervisor
    bundle = make_bundle(tmp_path / "bundle")
    supervisor.create("slow", str(bundle), start=True)
    supervisor.create("fast", str(bundle), start=True)
    entered = threading.Event()
    release = threading.Event()

    def block_slow_pause(call: SimulatedCall) -> None:
        if call.operation == "pause" and call.container_id == "slow" and call.phase == "before":
            entered.set()
            release.wait(THREAD_LIMIT)

    harness.world.add_hook(block_slow_pause)
    slow = threading.Thread(target=supervisor.pause, args=("slow",))
    slow.start()
    try:
        assert entered.wait(THREAD_LIMIT)
        supervisor.pause("fast")
        assert supervisor.get("fast").status.value == "paused"
        assert supervisor.get("slow").status.value == "running"
    finally:
        release.set()
        slow.join(THREAD_LIMIT)
    assert supervisor.get("slow").status.value == "paused"


def test_runtime_failure_journals_failure_and_keeps_state(harness: Harness, tmp_path: Path) -> None:
    supervisor = harness.daemon.supervisor
    supervisor.create("flaky", str(make_bundle(tmp_path / "bundle")), start=True)
    harness.world.fail_next("pause", "container cgroup is busy", container_id="flaky")

    with pytest.raises(Exception, match="container cgroup is busy"):
        supervisor.pause("flaky")

    state = supervisor.get("flaky")
    events = harness.daemon.store.read_stream(container_stream("flaky"))
    assert state.status.value == "running"
    assert [e.type for e in events[-2:]] == ["PauseRequested", "PauseFailed"]
    assert "container cgroup is busy" in events[-1].data["reason"]
    assert state.pending == {}


def test_requested_by_recorded_on_every_intent(harness: Harness, tmp_path: Path) -> None:
    supervisor = harness.daemon.supervisor
    who = {"uid": 0, "gid": 0, "pid": 4242, "cmdline": "bosun pause x"}
    supervisor.create("x", str(make_bundle(tmp_path / "bundle")), start=True, requested_by=who)
    supervisor.pause("x", requested_by=who)

    intents = [e for e in harness.daemon.store.read_stream(container_stream("x")) if e.type.endswith("Requested")]

    assert [e.type for e in intents] == ["CreateRequested", "StartRequested", "PauseRequested"]
    assert all(e.data["requested_by"] == who for e in intents)


def crash_during(harness: Harness, point: str, command: Callable[[], object]) -> Daemon:
    """Run ``command`` with a crash at ``point``, drop the daemon as SIGKILL would, and restart."""
    daemon = harness.daemon
    assert daemon is not None

    def crash(reached: str) -> None:
        raise SimulatedCrash(reached)

    daemon.supervisor.crash = CrashPoints(point, on_crash=crash)
    with pytest.raises(SimulatedCrash):
        command()
    daemon.shim.close()
    daemon.store.close()
    return harness.start()


def test_restore_crash_after_runtime_starts(harness: Harness, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    supervisor = harness.daemon.supervisor
    supervisor.create("web", str(bundle), start=True)
    supervisor.checkpoint("web", "before")
    old_init = supervisor.get("web").processes["init"]

    daemon = crash_during(harness, "start_checkpoint:after-runtime",
                          lambda: supervisor.start("web", checkpoint="before"))

    state = daemon.supervisor.get("web")
    history = daemon.store.read_stream(container_stream("web"))
    assert daemon.runtime.state("web").status == "running"
    assert state.status.value == "running"
    assert state.processes["init"].pid != old_init.pid
    assert state.pending == {}
    assert [record.type for record in history][-2:] == ["Started", "ShimReattached"]
    assert history[-2].data["restored_from"] == "before"
    assert daemon.audit()["ok"] is True


def test_restore_crash_after_intent_fails(harness: Harness, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    supervisor = harness.daemon.supervisor
    supervisor.create("web", str(bundle), start=True)
    supervisor.checkpoint("web", "before")

    daemon = crash_during(harness, "start_checkpoint:after-intent",
                          lambda: supervisor.start("web", checkpoint="before"))

    state = daemon.supervisor.get("web")
    last = daemon.store.read_stream(container_stream("web"))[-1]
    assert state.status.value == "stopped"
    assert daemon.runtime.state("web").status == "stopped"
    assert last.type == "StartFailed"
    assert "interrupted" in last.data["reason"]
    assert daemon.audit()["ok"] is True
