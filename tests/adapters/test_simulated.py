"""The simulated runtime and shim: runc-like rules, exits, faults and events behind bosun's back."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import (
    AdapterError,
    ContainerNotFound,
    ExitInfo,
    ProcessRef,
    ProcessSpec,
    Runtime,
    RuntimeCommandError,
    Shim,
    ShimError,
    ShimTimeout,
)
from adapters.simulated import (
    SimulatedCall,
    SimulatedCrash,
    SimulatedRuntime,
    SimulatedShim,
    SimulatedWorld,
)

BUNDLE = Path("/bundles/web")
STATE = Path("/run/bosun/web")


class Rig:
    """A world with a runtime, a shim and a recorder of exit callbacks."""

    def __init__(self, *, sync_callbacks: bool = True) -> None:
        self.world = SimulatedWorld(sync_callbacks=sync_callbacks)
        self.runtime = SimulatedRuntime(self.world)
        self.shim = SimulatedShim(self.world)
        self.exits: list[tuple[ProcessRef, ExitInfo]] = []

    def record(self, ref: ProcessRef, info: ExitInfo) -> None:
        self.exits.append((ref, info))

    def create(self, container_id: str = "web", *, start: bool = True) -> ProcessRef:
        ref = self.shim.create(container_id, BUNDLE, STATE)
        self.shim.watch(ref, self.record)
        if start:
            self.runtime.start(container_id)
        return ref

    def exec(self, exec_id: str = "e1", container_id: str = "web") -> ProcessRef:
        ref = self.shim.exec(container_id, exec_id, ProcessSpec(args=["sh"]), STATE / exec_id)
        self.shim.watch(ref, self.record)
        return ref


@pytest.fixture
def rig() -> Rig:
    return Rig()


# Ports and references.


def test_adapters_implement_ports(rig: Rig) -> None:
    assert isinstance(rig.runtime, Runtime)
    assert isinstance(rig.shim, Shim)
    assert rig.runtime.name == "simulated"


def test_process_refs_have_unique_pids(rig: Rig) -> None:
    init = rig.create()
    exec_ref = rig.exec()
    other = rig.create("db")

    pids = [ref.pid for ref in (init, exec_ref, other)] + [
        ref.shim_pid for ref in (init, exec_ref, other)
    ]
    assert len(set(pids)) == len(pids)
    assert init.pid_start_time != exec_ref.pid_start_time
    assert init.exit_file == f"{STATE}/exit/web"
    assert exec_ref.process_id == "e1"


def test_state_reports_status_pid_and_bundle(rig: Rig) -> None:
    ref = rig.create(start=False)

    state = rig.runtime.state("web")

    assert state.status == "created"
    assert state.pid == ref.pid
    assert state.bundle == str(BUNDLE)
    assert state.created is not None
    assert [listed.id for listed in rig.runtime.list()] == ["web"]


def test_missing_container_raises_not_found(rig: Rig) -> None:
    with pytest.raises(ContainerNotFound, match="container does not exist") as caught:
        rig.runtime.state("ghost")
    assert caught.value.container_id == "ghost"


# runc's status rules.


def test_create_existing_id_raises_shim_error(rig: Rig) -> None:
    rig.create()

    with pytest.raises(ShimError, match="container with given ID already exists"):
        rig.shim.create("web", BUNDLE, STATE)


def test_start_of_running_container_raises(rig: Rig) -> None:
    rig.create()

    with pytest.raises(RuntimeCommandError, match="cannot start an already running container"):
        rig.runtime.start("web")


def test_start_of_stopped_container_raises(rig: Rig) -> None:
    rig.create()
    rig.runtime.kill("web", signal.SIGKILL)

    with pytest.raises(RuntimeCommandError, match="cannot start a container that has stopped"):
        rig.runtime.start("web")


def test_pause_of_stopped_container_raises(rig: Rig) -> None:
    rig.create()
    rig.runtime.kill("web", signal.SIGKILL)

    with pytest.raises(RuntimeCommandError, match="container not running"):
        rig.runtime.pause("web")


def test_resume_of_running_container_raises(rig: Rig) -> None:
    rig.create()

    with pytest.raises(RuntimeCommandError, match="container not paused"):
        rig.runtime.resume("web")


def test_pause_then_resume_round_trips(rig: Rig) -> None:
    rig.create()

    rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "paused"

    rig.runtime.resume("web")
    assert rig.runtime.state("web").status == "running"


def test_delete_of_running_container_raises_runc_message(rig: Rig) -> None:
    rig.create()

    with pytest.raises(RuntimeCommandError) as caught:
        rig.runtime.delete("web")

    assert caught.value.message == "cannot delete container web that is not stopped: running"
    assert rig.runtime.state("web").status == "running"


def test_delete_of_created_container_kills_init(rig: Rig) -> None:
    rig.create(start=False)

    rig.runtime.delete("web")

    assert rig.world.status("web") is None
    assert rig.exits[0][1].status == 137


def test_force_delete_of_paused_container_records_sigkill(rig: Rig) -> None:
    rig.create()
    rig.runtime.pause("web")

    rig.runtime.delete("web", force=True)

    assert rig.world.status("web") is None
    assert [info.status for _, info in rig.exits] == [137]
    assert rig.exits[0][1].signal == signal.SIGKILL


def test_kill_of_stopped_container_raises(rig: Rig) -> None:
    rig.create()
    rig.runtime.kill("web", signal.SIGKILL)

    with pytest.raises(RuntimeCommandError, match="container not running"):
        rig.runtime.kill("web", signal.SIGTERM)
    rig.runtime.kill("web", signal.SIGKILL, all_processes=True)


def test_exec_in_stopped_container_raises(rig: Rig) -> None:
    rig.create()
    rig.runtime.kill("web", signal.SIGKILL)

    with pytest.raises(ShimError, match="cannot exec in a stopped container"):
        rig.exec()


def test_exec_in_paused_container_raises(rig: Rig) -> None:
    rig.create()
    rig.runtime.pause("web")

    with pytest.raises(ShimError, match="cannot exec in a paused container"):
        rig.exec()


# Signals and exits.


@pytest.mark.parametrize(
    ("sent", "status"),
    [(signal.SIGKILL, 137), (signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["sigkill", "sigterm", "sigint"],
)
def test_kill_of_running_init_exits_128_plus_signal(rig: Rig, sent: int, status: int) -> None:
    ref = rig.create()

    rig.runtime.kill("web", sent)

    assert rig.runtime.state("web").status == "stopped"
    assert rig.runtime.state("web").pid == 0
    info = rig.shim.read_exit(ref)
    assert info is not None
    assert info.status == status
    assert info.signal == sent
    assert rig.exits == [(ref, info)]


def test_sigterm_ignored_when_bundle_traps_it(rig: Rig) -> None:
    rig.world.configure_bundle(BUNDLE, ignore_signals=[signal.SIGTERM, signal.SIGKILL])
    ref = rig.create()

    rig.runtime.kill("web", signal.SIGTERM)
    assert rig.runtime.state("web").status == "running"
    assert rig.shim.read_exit(ref) is None

    rig.runtime.kill("web", signal.SIGKILL)  # cannot be trapped
    assert rig.runtime.state("web").status == "stopped"


def test_sigchld_does_not_end_process(rig: Rig) -> None:
    rig.create()

    rig.runtime.kill("web", signal.SIGCHLD)

    assert rig.runtime.state("web").status == "running"


def test_sigterm_to_paused_container_delivered_on_resume(rig: Rig) -> None:
    rig.create()
    rig.runtime.pause("web")

    rig.runtime.kill("web", signal.SIGTERM)
    assert rig.runtime.state("web").status == "paused"
    assert rig.exits == []

    rig.runtime.resume("web")
    assert rig.runtime.state("web").status == "stopped"
    assert rig.exits[0][1].status == 143


def test_signals_queued_after_fatal_one_are_dropped(rig: Rig) -> None:
    rig.create()
    rig.runtime.pause("web")
    rig.runtime.kill("web", signal.SIGTERM)
    rig.runtime.kill("web", signal.SIGUSR1)

    rig.runtime.resume("web")

    assert rig.runtime.state("web").status == "stopped"
    assert [info.status for _, info in rig.exits] == [143]


def test_sigkill_to_paused_container_kills_at_once(rig: Rig) -> None:
    rig.create()
    rig.runtime.pause("web")

    rig.runtime.kill("web", signal.SIGKILL)

    assert rig.runtime.state("web").status == "stopped"
    assert rig.exits[0][1].status == 137


def test_init_exit_kills_exec_processes(rig: Rig) -> None:
    init = rig.create()
    exec_ref = rig.exec()

    rig.world.exit_process("web", "init", 0)

    assert rig.shim.read_exit(init) == rig.exits[0][1]
    exec_info = rig.shim.read_exit(exec_ref)
    assert exec_info is not None
    assert exec_info.status == 137
    assert [ref.process_id for ref, _ in rig.exits] == ["init", "e1"]
    assert rig.runtime.pids("web") == []


def test_exec_exit_leaves_container_running(rig: Rig) -> None:
    init = rig.create()
    exec_ref = rig.exec()
    assert rig.runtime.pids("web") == [init.pid, exec_ref.pid]

    rig.world.exit_process("web", "e1", 3)

    assert rig.runtime.state("web").status == "running"
    assert rig.shim.read_exit(exec_ref) == ExitInfo(3, exited_at=rig.exits[0][1].exited_at)
    assert rig.runtime.pids("web") == [init.pid]


def test_kill_all_reaches_exec_processes(rig: Rig) -> None:
    rig.world.configure_bundle(BUNDLE, ignore_signals=[signal.SIGTERM])
    rig.create()
    exec_ref = rig.exec()

    rig.runtime.kill("web", signal.SIGKILL, all_processes=True)

    assert rig.shim.read_exit(exec_ref) is not None
    assert {ref.process_id for ref, _ in rig.exits} == {"init", "e1"}


def test_exit_recorded_once_and_watch_fires_once(rig: Rig) -> None:
    ref = rig.create()
    rig.world.exit_process("web", "init", 1, oom=True)

    with pytest.raises(ValueError, match="process init of container web is not running"):
        rig.world.exit_process("web", "init", 2)
    info = rig.shim.read_exit(ref)
    assert info is not None
    assert info.status == 1
    assert info.oom is True
    assert len(rig.exits) == 1


def test_watch_after_exit_fires_at_once(rig: Rig) -> None:
    ref = rig.shim.create("web", BUNDLE, STATE)
    rig.runtime.start("web")
    rig.world.exit_process("web", "init", 0)

    rig.shim.watch(ref, rig.record)

    assert rig.exits[0][1].status == 0


def test_unwatch_stops_callback(rig: Rig) -> None:
    ref = rig.create()
    rig.shim.unwatch(ref)

    rig.world.exit_process("web", "init", 0)

    assert rig.exits == []


def test_close_drops_only_own_watches(rig: Rig) -> None:
    ref = rig.create()
    other = SimulatedShim(rig.world)
    seen: list[ExitInfo] = []
    other.watch(ref, lambda _, info: seen.append(info))

    rig.shim.close()
    rig.world.exit_process("web", "init", 0)

    assert rig.exits == []
    assert [info.status for info in seen] == [0]


def test_callbacks_run_on_dispatcher_thread() -> None:
    rig = Rig(sync_callbacks=False)
    threads: list[str] = []
    ref = rig.shim.create("web", BUNDLE, STATE)
    rig.shim.watch(ref, lambda _, __: threads.append(threading.current_thread().name))
    rig.runtime.start("web")

    rig.runtime.kill("web", signal.SIGKILL)
    rig.world.drain()

    assert threads == ["simulated-shim-watcher"]
    rig.world.close()


def test_failing_callback_does_not_stop_later_ones(rig: Rig) -> None:
    def explode(ref: ProcessRef, info: ExitInfo) -> None:
        raise RuntimeError("callback bug")

    rig.create()
    rig.exec()
    rig.shim.watch(rig.world.process("web", "e1").ref(), explode)

    rig.world.exit_process("web", "e1", 0)
    rig.world.exit_process("web", "init", 0)

    assert [ref.process_id for ref, _ in rig.exits] == ["e1", "init"]


# Lost exits, dead shims and recycled pids.


def test_lose_exit_reports_status_lost(rig: Rig) -> None:
    ref = rig.create()
    rig.world.lose_exit("web", "init")

    rig.world.exit_process("web", "init", 0)

    info = rig.shim.read_exit(ref)
    assert info is not None
    assert info.status_lost is True
    assert info.status == 255
    assert info.reason is not None and "exit status lost" in info.reason
    assert rig.exits == [(ref, info)]
    assert rig.runtime.state("web").status == "stopped"


def test_kill_shim_keeps_process_and_loses_exit(rig: Rig) -> None:
    ref = rig.create()

    rig.world.kill_shim("web", "init")

    assert rig.shim.shim_alive(ref) is False
    assert rig.shim.process_alive(ref) is True
    assert rig.runtime.state("web").status == "running"
    info = rig.shim.read_exit(ref)
    assert info is not None and info.status_lost is True
    assert rig.exits[0][1].status_lost is True

    rig.world.exit_process("web", "init", 0)
    assert rig.shim.read_exit(ref) == info


def test_recycle_pid_makes_process_not_alive(rig: Rig) -> None:
    ref = rig.create()

    rig.world.recycle_pid("web", "init")

    assert rig.shim.process_alive(ref) is False
    start_time = rig.world.pid_in_use(ref.pid)
    assert start_time is not None
    assert start_time != ref.pid_start_time
    assert rig.exits[0][1].status == 137


# Behind bosun's back.


def test_pause_behind_back_shows_in_state(rig: Rig) -> None:
    rig.create()

    rig.world.pause_behind_back("web")
    assert rig.runtime.state("web").status == "paused"

    rig.world.resume_behind_back("web")
    assert rig.runtime.state("web").status == "running"


# Update, stats, checkpoint and restore.


def test_update_merges_resources_into_stats(rig: Rig) -> None:
    rig.create()

    rig.runtime.update("web", {"memory": {"limit": 1 << 20}})
    stats = rig.runtime.stats("web")

    assert stats["memory"]["usage"]["limit"] == 1 << 20
    assert stats["pids"]["current"] == 1


def test_checkpoint_then_restore_runs_new_init(rig: Rig, tmp_path: Path) -> None:
    old = rig.create()
    image = tmp_path / "cp1"

    rig.runtime.checkpoint("web", image, work_path=tmp_path / "work")
    assert rig.runtime.state("web").status == "stopped"
    assert (image / "simulated-dump.json").exists()
    rig.runtime.delete("web")

    new = rig.shim.restore("web", BUNDLE, STATE, image)

    assert rig.runtime.state("web").status == "running"
    assert new.pid != old.pid
    assert new.shim_pid != old.shim_pid
    assert rig.shim.process_alive(new) is True


def test_checkpoint_leave_running_keeps_container(rig: Rig, tmp_path: Path) -> None:
    rig.create()

    rig.runtime.checkpoint("web", tmp_path / "cp1", work_path=tmp_path / "w", leave_running=True)

    assert rig.runtime.state("web").status == "running"
    assert str(tmp_path / "cp1") in rig.world.checkpoints


def test_restore_over_existing_container_raises(rig: Rig, tmp_path: Path) -> None:
    rig.create()
    rig.runtime.checkpoint("web", tmp_path / "cp1", work_path=tmp_path / "w", leave_running=True)

    with pytest.raises(ShimError, match="container with given ID already exists"):
        rig.shim.restore("web", BUNDLE, STATE, tmp_path / "cp1")


def test_restore_from_unknown_image_raises(rig: Rig, tmp_path: Path) -> None:
    with pytest.raises(ShimError, match="no checkpoint image in"):
        rig.shim.restore("web", BUNDLE, STATE, tmp_path / "nothing")


def test_checkpoint_of_paused_container_raises(rig: Rig, tmp_path: Path) -> None:
    rig.create()
    rig.runtime.pause("web")

    with pytest.raises(RuntimeCommandError, match="container not running"):
        rig.runtime.checkpoint("web", tmp_path / "cp1", work_path=tmp_path / "w")


# Fault injection.


def test_fail_next_raises_once_without_effect(rig: Rig) -> None:
    rig.create()
    rig.world.fail_next("pause", "unable to freeze")

    with pytest.raises(RuntimeCommandError, match="unable to freeze"):
        rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "running"

    rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "paused"


def test_fail_next_for_other_container_waits(rig: Rig) -> None:
    rig.create()
    rig.create("db")
    rig.world.fail_next("pause", "boom", container_id="db")

    rig.runtime.pause("web")
    with pytest.raises(RuntimeCommandError, match="boom"):
        rig.runtime.pause("db")


def test_fail_next_create_raises_shim_error(rig: Rig) -> None:
    rig.world.fail_next("create", "bundle config.json: no such file")

    with pytest.raises(ShimError, match="no such file"):
        rig.shim.create("web", BUNDLE, STATE)
    assert rig.world.status("web") is None


def test_configured_create_error_raises(rig: Rig) -> None:
    rig.world.configure_bundle(BUNDLE, create_error="exec: \"nope\": executable file not found")

    with pytest.raises(ShimError, match="executable file not found"):
        rig.shim.create("web", BUNDLE, STATE)


def test_fail_next_read_exit_raises_adapter_error(rig: Rig) -> None:
    ref = rig.create()
    rig.world.fail_next("read_exit", "exit file unreadable")

    with pytest.raises(AdapterError, match="exit file unreadable"):
        rig.shim.read_exit(ref)


def test_stall_runtime_call_times_out_without_effect(rig: Rig) -> None:
    rig.create()
    rig.world.stall_next("pause")

    with pytest.raises(RuntimeCommandError, match="timed out after 30 s"):
        rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "running"


def test_stall_applied_times_out_after_effect(rig: Rig) -> None:
    rig.create()
    rig.world.stall_next("pause", applied=True)

    with pytest.raises(RuntimeCommandError, match="timed out"):
        rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "paused"


def test_stall_create_raises_shim_timeout_and_leaves_nothing(rig: Rig) -> None:
    rig.world.stall_next("create", applied=True)

    with pytest.raises(ShimTimeout, match="did not report a pid within 5 s"):
        rig.shim.create("web", BUNDLE, STATE, timeout=5)
    assert rig.world.status("web") is None


def test_die_after_pause_leaves_container_paused(rig: Rig) -> None:
    rig.create()
    rig.world.die_at("pause")

    with pytest.raises(SimulatedCrash):
        rig.runtime.pause("web")
    assert rig.runtime.state("web").status == "paused"

    rig.runtime.resume("web")  # fires only once


def test_die_before_start_leaves_container_created(rig: Rig) -> None:
    rig.create(start=False)
    rig.world.die_at("start", phase="before")

    with pytest.raises(SimulatedCrash):
        rig.runtime.start("web")
    assert rig.runtime.state("web").status == "created"


def test_simulated_crash_passes_except_exception(rig: Rig) -> None:
    rig.create()
    rig.world.die_at("pause")

    with pytest.raises(SimulatedCrash):
        try:
            rig.runtime.pause("web")
        except Exception:  # noqa: BLE001 - the point is that this handler does not catch it
            pytest.fail("SimulatedCrash was caught by except Exception")


def test_hook_sees_every_call_phase(rig: Rig) -> None:
    seen: list[SimulatedCall] = []
    rig.world.add_hook(seen.append)

    rig.create(start=False)

    assert [(call.operation, call.phase) for call in seen] == [
        ("create", "before"), ("create", "after"), ("watch", "before"), ("watch", "after"),
    ]
    assert seen[0].container_id == "web"
    assert seen[0].process_id == "init"


def test_unknown_operation_raises_value_error(rig: Rig) -> None:
    with pytest.raises(ValueError, match="invalid operation 'frobnicate'"):
        rig.world.fail_next("frobnicate", "x")


# Invariants under random operations.

OPERATIONS = ["create", "start", "pause", "resume", "kill9", "kill15", "delete", "delete_force",
              "exec", "exit_init", "exit_exec", "kill_shim", "pause_behind_back"]


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(["a", "b"])),
                      max_size=40))
def test_random_operations_keep_consistency(steps: list[tuple[str, str]]) -> None:
    rig = Rig()
    refs: list[ProcessRef] = []
    exec_count = 0

    for operation, container_id in steps:
        try:
            if operation == "create":
                refs.append(rig.create(container_id, start=False))
            elif operation == "start":
                rig.runtime.start(container_id)
            elif operation in ("pause", "resume"):
                getattr(rig.runtime, operation)(container_id)
            elif operation.startswith("kill") and operation != "kill_shim":
                rig.runtime.kill(container_id, int(operation.removeprefix("kill")))
            elif operation == "delete":
                rig.runtime.delete(container_id)
            elif operation == "delete_force":
                rig.runtime.delete(container_id, force=True)
            elif operation == "exec":
                exec_count += 1
                refs.append(rig.exec(f"e{exec_count}", container_id))
            elif operation == "exit_init":
                rig.world.exit_process(container_id, "init", 0)
            elif operation == "exit_exec":
                rig.world.exit_process(container_id, f"e{exec_count}", 0)
            elif operation == "kill_shim":
                rig.world.kill_shim(container_id, "init")
            else:
                rig.world.pause_behind_back(container_id)
        except (AdapterError, ValueError, KeyError):
            pass

        # Each process's exit is reported at most once, and only after its shim is gone.
        reported = [ref for ref, _ in rig.exits]
        assert len(reported) == len(set(reported))
        for ref in refs:
            assert (ref in reported) == (not rig.shim.shim_alive(ref))
        # A container reports a pid exactly when its init is alive, and stopped when it is not.
        for state in rig.runtime.list():
            init = rig.world.process(state.id, "init")
            assert (state.pid != 0) == init.alive
            assert (state.status == "stopped") == (not init.alive)
        # Live pids are unique across the world.
        live = [p.pid for p in rig.world.processes.values() if p.alive]
        assert len(live) == len(set(live))


def test_pause_behind_back_of_paused_raises(rig: Rig) -> None:
    rig.create()
    rig.world.pause_behind_back("web")

    with pytest.raises(ValueError, match="cannot pause container web: container not running"):
        rig.world.pause_behind_back("web")
