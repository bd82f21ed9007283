"""Real runc and conmon: lifecycle, exit statuses, logs, OOM, failures and lost monitors.

These tests run busybox containers as root and skip, with the reason, where that is impossible.
Every container and conmon a test starts is killed by the ``runtime`` and ``shim`` fixtures.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from adapters.base import (
    ContainerNotFound,
    ExecutableNotFound,
    ExitInfo,
    ProcessRef,
    ProcessSpec,
    RuntimeCommandError,
    ShimError,
    ShimTimeout,
)
from adapters.cgroups import memory_cgroup_dir, memory_limit, oom_kill_count
from adapters.conmon import ConmonShim
from adapters.logs import read_log
from adapters.runc import OciRuntime
from tests.adapters.conftest import BundleFactory, cleanup_runtime, kill_conmons_under
from tests.adapters.support import EXIT_WAIT_LIMIT, new_container_id, wait_for_exit

pytestmark = pytest.mark.runc

MiB = 1024 * 1024


def start_container(
    shim: ConmonShim, runtime: OciRuntime, bundle: Path, state_root: Path
) -> ProcessRef:
    """Create a container under conmon and start it; return its init's ``ProcessRef``."""
    container_id = new_container_id()
    ref = shim.create(container_id, bundle, state_root / container_id / "init")
    runtime.start(container_id)
    return ref


def test_lifecycle_through_runc_and_conmon(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    # Create: the container waits in "created" with its init pid known.
    bundle = make_bundle(["sh", "-c", "sleep 1000; true"], memory_limit=64 * MiB)
    container_id = new_container_id()
    ref = shim.create(container_id, bundle, test_root / "state" / "init")
    state = runtime.state(container_id)
    assert state.status == "created"
    assert state.pid == ref.pid
    # conmon gets a private bundle whose config runs the given bundle's rootfs.
    assert state.bundle == str(test_root / "state" / "init" / "bundle")
    assert json.loads((Path(state.bundle) / "config.json").read_text())["root"]["path"] == str(bundle / "rootfs")
    assert shim.shim_alive(ref)
    assert shim.process_alive(ref)
    assert shim.read_exit(ref) is None

    # Start.
    runtime.start(container_id)
    assert runtime.state(container_id).status == "running"
    assert [container.id for container in runtime.list()] == [container_id]

    # Exec: a second process under its own conmon, with its own exit status and log.
    exec_ref = shim.exec(
        container_id,
        "exec1",
        ProcessSpec(args=["sh", "-c", "echo from exec; exit 5"]),
        test_root / "state" / "exec1",
    )
    assert exec_ref.process_id == "exec1"
    exec_exit = wait_for_exit(shim, exec_ref)
    assert exec_exit.status == 5
    assert exec_exit.signal is None
    assert [line.text for line in read_log(exec_ref.log_path)] == ["from exec"]

    # Pids: init (sh) and its sleep child.
    pids = runtime.pids(container_id)
    assert ref.pid in pids
    assert len(pids) == 2

    # Pause and resume.
    runtime.pause(container_id)
    assert runtime.state(container_id).status == "paused"
    runtime.resume(container_id)
    assert runtime.state(container_id).status == "running"

    # Stats: one sample with the memory limit from the bundle and the live process count.
    stats = runtime.stats(container_id)
    assert stats["memory"]["usage"]["limit"] == 64 * MiB
    assert stats["memory"]["usage"]["usage"] > 0
    assert stats["pids"]["current"] == 2

    # Update: the new limit shows in the cgroup and in the next stats sample.
    runtime.update(container_id, {"memory": {"limit": 32 * MiB}})
    cgroup_dir = memory_cgroup_dir(ref.pid)
    assert cgroup_dir is not None
    assert memory_limit(cgroup_dir) == 32 * MiB
    assert runtime.stats(container_id)["memory"]["usage"]["limit"] == 32 * MiB

    # Kill with SIGKILL: conmon writes 128 + 9.
    runtime.kill(container_id, signal.SIGKILL)
    exit_info = wait_for_exit(shim, ref)
    assert exit_info.status == 137
    assert exit_info.signal == signal.SIGKILL
    assert exit_info.oom is False
    assert exit_info.status_lost is False
    assert exit_info.exited_at is not None
    assert runtime.state(container_id).status == "stopped"

    # Delete.
    runtime.delete(container_id)
    assert runtime.list() == []
    with pytest.raises(ContainerNotFound):
        runtime.state(container_id)


@pytest.mark.parametrize(
    ("args", "expected_status"),
    [
        pytest.param(["true"], 0, id="exit-0"),
        pytest.param(["sh", "-c", "exit 3"], 3, id="exit-3"),
    ],
)
def test_exit_status_from_exit_file(
    runtime: OciRuntime,
    shim: ConmonShim,
    make_bundle: BundleFactory,
    test_root: Path,
    args: list[str],
    expected_status: int,
) -> None:
    ref = start_container(shim, runtime, make_bundle(args), test_root)

    exit_info = wait_for_exit(shim, ref)

    assert exit_info.status == expected_status
    assert exit_info.signal is None
    assert exit_info.status_lost is False
    assert Path(ref.exit_file).read_text().strip() == str(expected_status)


def test_sigkill_gives_status_137(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sh", "-c", "sleep 1000; true"]), test_root)

    runtime.kill(ref.container_id, signal.SIGKILL)
    exit_info = wait_for_exit(shim, ref)

    assert exit_info.status == 137
    assert exit_info.signal == signal.SIGKILL


def test_sigterm_gives_status_143(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    # The shell is PID 1 of the container's pid namespace, and the kernel drops any signal to
    # such a process that has no handler for it, except SIGKILL and SIGSTOP. So SIGTERM to the
    # init alone does nothing. With --all, SIGTERM also reaches `sleep`, which dies of it. The
    # shell gets 128 + 15 as the sleep's status, and "exit $?" passes it on. (With "; true"
    # instead the shell would exit 0.) conmon thus writes 143 although sh itself exited normally.
    bundle = make_bundle(["sh", "-c", "sleep 1000; exit $?"])
    ref = start_container(shim, runtime, bundle, test_root)

    runtime.kill(ref.container_id, signal.SIGTERM, all_processes=True)
    exit_info = wait_for_exit(shim, ref)

    assert exit_info.status == 143
    assert exit_info.signal == signal.SIGTERM
    assert exit_info.oom is False


def test_output_before_fast_exit_is_in_log(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    bundle = make_bundle(["sh", "-c", "echo last words; echo to stderr >&2; exit 0"])
    ref = start_container(shim, runtime, bundle, test_root)

    exit_info = wait_for_exit(shim, ref)
    lines = read_log(ref.log_path)

    assert exit_info.status == 0
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "last words"),
        ("stderr", "to stderr"),
    ]


def test_memory_limit_exceeded_reports_oom(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    # dd is the init process and writes 64 MiB into the /tmp tmpfs. Pages of a tmpfs file are
    # charged to the writer's memory cgroup, so the OOM killer ends dd with SIGKILL at 16 MiB.
    bundle = make_bundle(
        ["dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=64"], memory_limit=16 * MiB
    )
    container_id = new_container_id()
    ref = shim.create(container_id, bundle, test_root / container_id / "init")
    cgroup_dir = memory_cgroup_dir(ref.pid)
    assert cgroup_dir is not None
    runtime.start(container_id)

    exit_info = wait_for_exit(shim, ref)

    assert exit_info.oom is True
    assert exit_info.status == 137
    assert exit_info.signal == signal.SIGKILL
    assert Path(ref.oom_file).exists()
    # The cgroup lives until the container is deleted, so the kernel's own count confirms it.
    assert oom_kill_count(cgroup_dir) == 1


def test_missing_executable_fails_with_runtime_message(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    bundle = make_bundle(["no-such-program", "--flag"])
    container_id = new_container_id()

    with pytest.raises(ShimError) as caught:
        shim.create(container_id, bundle, test_root / container_id / "init")

    assert caught.value.container_id == container_id
    assert '"no-such-program": executable file not found' in caught.value.message
    assert container_id in str(caught.value)
    assert runtime.list() == []


def test_missing_executable_fails_in_direct_create(
    runtime: OciRuntime, make_bundle: BundleFactory, test_root: Path
) -> None:
    bundle = make_bundle(["no-such-program"])
    container_id = new_container_id()

    with pytest.raises(RuntimeCommandError) as caught:
        runtime.create(container_id, bundle, test_root / "pid")

    error = caught.value
    assert not isinstance(error, ContainerNotFound)
    assert error.operation == "create"
    assert '"no-such-program": executable file not found' in error.message
    assert error.exit_status == 1
    assert error.log_path is not None and error.log_path.exists()
    assert error.argv[-1] == container_id
    cleanup_runtime(runtime)


def test_exec_of_missing_executable_fails(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sleep", "1000"]), test_root)

    with pytest.raises(ShimError) as caught:
        shim.exec(
            ref.container_id,
            "exec-missing",
            ProcessSpec(args=["no-such-program"]),
            test_root / "exec-missing",
        )

    assert caught.value.process_id == "exec-missing"
    assert '"no-such-program": executable file not found' in caught.value.message


def test_unknown_container_raises_not_found(runtime: OciRuntime) -> None:
    for operation in (runtime.state, runtime.start, runtime.pause, runtime.pids):
        with pytest.raises(ContainerNotFound) as caught:
            operation("no-such-container")
        assert caught.value.container_id == "no-such-container"
        assert caught.value.message == "container does not exist"


def test_killed_conmon_reports_status_lost(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sleep", "1000"]), test_root)
    reports: list[ExitInfo] = []
    reported = threading.Event()

    def on_exit(exited: ProcessRef, info: ExitInfo) -> None:
        reports.append(info)
        reported.set()

    shim.watch(ref, on_exit)
    os.kill(ref.shim_pid, signal.SIGKILL)
    assert reported.wait(EXIT_WAIT_LIMIT)

    assert len(reports) == 1
    lost = reports[0]
    assert lost.status_lost is True
    assert lost.status == 255
    assert lost.reason is not None
    assert f"conmon pid {ref.shim_pid} exited without writing a status" in lost.reason
    # The monitor is gone but the container is not: that is what tells a lost monitor from an exit.
    assert not shim.shim_alive(ref)
    assert shim.process_alive(ref)
    assert runtime.state(ref.container_id).status == "running"
    assert not Path(ref.exit_file).exists()


def test_watch_reports_exit_once(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sh", "-c", "sleep 1000; exit 7"]), test_root)
    reports: list[tuple[ProcessRef, ExitInfo]] = []
    reported = threading.Event()

    def on_exit(exited: ProcessRef, info: ExitInfo) -> None:
        reports.append((exited, info))
        reported.set()

    shim.watch(ref, on_exit)
    runtime.kill(ref.container_id, signal.SIGTERM, all_processes=True)
    assert reported.wait(EXIT_WAIT_LIMIT)
    shim.close()

    assert len(reports) == 1
    exited, info = reports[0]
    assert exited == ref
    assert info.status == 7
    assert info.status_lost is False


def test_runtime_logs_stay_out_of_runc_root(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sleep", "1000"]), test_root)

    listed = subprocess.run(["runc", "--root", str(runtime.root), "list", "--quiet"],
                            capture_output=True, text=True, check=True, timeout=30)

    assert listed.stdout.split() == [ref.container_id]
    assert listed.stderr == ""
    assert (runtime.log_dir / f"{ref.container_id}.log").is_file()


def test_conmon_leaves_shared_bundle_untouched(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    # conmon makes FIFOs and a socket in the bundle directory it gets, so two containers
    # created from one bundle would share them.
    bundle = make_bundle(["sleep", "1000"])
    before = sorted(path.name for path in bundle.iterdir())

    first = start_container(shim, runtime, bundle, test_root)
    second = start_container(shim, runtime, bundle, test_root)
    shim.exec(first.container_id, "e1", ProcessSpec(args=["true"]), test_root / "exec-e1")

    assert sorted(path.name for path in bundle.iterdir()) == before
    assert runtime.state(first.container_id).status == "running"
    assert runtime.state(second.container_id).status == "running"


@pytest.fixture
def high_fds() -> Iterator[list[int]]:
    """Hold enough descriptors open that every new pipe and pidfd is numbered above 1024."""
    limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit < 1200:
        pytest.skip(f"the open-file limit is {limit}; this test needs 1200")
    spare_fds: list[int] = []
    with open(os.devnull, "rb") as null:
        while not spare_fds or spare_fds[-1] < 1100:
            spare_fds.append(os.dup(null.fileno()))
    yield spare_fds
    for fd in spare_fds:
        os.close(fd)


def test_lifecycle_with_descriptors_above_1024(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path,
    high_fds: list[int],
) -> None:
    ref = start_container(shim, runtime, make_bundle(["sh", "-c", "sleep 1000; exit 3"]), test_root)
    reported = threading.Event()
    reports: list[ExitInfo] = []

    def on_exit(exited: ProcessRef, info: ExitInfo) -> None:
        reports.append(info)
        reported.set()

    shim.watch(ref, on_exit)
    listed = [container.id for container in runtime.list()]
    runtime.kill(ref.container_id, signal.SIGTERM, all_processes=True)
    assert reported.wait(EXIT_WAIT_LIMIT)
    shim.close()

    assert listed == [ref.container_id]
    assert [info.status for info in reports] == [3]


def test_start_timeout_kills_conmon_and_container(
    runtime: OciRuntime, make_bundle: BundleFactory, test_root: Path
) -> None:
    # A runtime wrapper whose create makes the container with runc, then hangs: conmon waits for
    # the runtime to exit and never writes to the sync pipe.
    wrapper = test_root / "hanging-runtime"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for argument; do if [ "$argument" = create ]; then\n'
        '  runc "$@"; exec sleep 1000\n'
        "fi; done\n"
        'exec runc "$@"\n'
    )
    wrapper.chmod(0o755)
    hanging = OciRuntime(str(wrapper), runtime.root)
    shim = ConmonShim(hanging, state_root=test_root / "shim")
    container_id = new_container_id()
    state_dir = test_root / container_id / "init"

    try:
        with pytest.raises(ShimTimeout) as caught:
            shim.create(container_id, make_bundle(["sleep", "1000"]), state_dir, timeout=2)

        message = caught.value.message
        assert "did not report a pid within 2 s" in message
        conmon_pid = int((state_dir / "conmon.pid").read_text())
        assert f"conmon pid {conmon_pid}" in message
        assert "the container" in message
        assert not _is_running(conmon_pid)
        assert runtime.list() == []
    finally:
        shim.close()
        kill_conmons_under(test_root)


def test_missing_conmon_raises_executable_not_found(
    runtime: OciRuntime, make_bundle: BundleFactory, test_root: Path
) -> None:
    shim = ConmonShim(runtime, conmon="no-such-conmon", state_root=test_root / "shim")

    with pytest.raises(ExecutableNotFound) as caught:
        shim.create(new_container_id(), make_bundle(["true"]), test_root / "state")

    assert caught.value.executable == "no-such-conmon"
    assert caught.value.package == "conmon"


@pytest.mark.crun
def test_crun_lifecycle(
    real_runtime_required: None, make_bundle: BundleFactory, test_root: Path
) -> None:
    if shutil.which("crun") is None:
        pytest.skip("needs 'crun' (Debian package 'crun')")
    crun = OciRuntime("crun", test_root / "crun")
    shim = ConmonShim(crun, state_root=test_root / "crun-shim")
    container_id = new_container_id()
    try:
        try:
            crun.version()
            ref = shim.create(
                container_id, make_bundle(["sh", "-c", "sleep 1000; exit $?"]), test_root / "crun1"
            )
        except (ShimError, RuntimeCommandError) as exc:
            pytest.skip(f"crun cannot run containers here: {exc.message}")

        assert crun.state(container_id).status == "created"
        crun.start(container_id)
        assert crun.state(container_id).status == "running"
        crun.pause(container_id)
        assert crun.state(container_id).status == "paused"
        crun.resume(container_id)
        crun.kill(container_id, signal.SIGTERM, all_processes=True)
        assert wait_for_exit(shim, ref).status == 143
        crun.delete(container_id)
        assert crun.list() == []
    finally:
        shim.close()
        cleanup_runtime(crun)
        kill_conmons_under(test_root)


@pytest.mark.criu
def test_checkpoint_and_restore(
    runtime: OciRuntime, shim: ConmonShim, make_bundle: BundleFactory, test_root: Path
) -> None:
    check = subprocess.run(["criu", "check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        output = (check.stderr or check.stdout).strip()
        pytest.skip(f"criu check failed: {'; '.join(output.splitlines()) or check.returncode}")

    # Checkpoint: a counter loop is dumped and the container stops.
    bundle = make_bundle(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"])
    ref = start_container(shim, runtime, bundle, test_root)
    image_path = test_root / "checkpoint" / "image"
    work_path = test_root / "checkpoint" / "work"
    runtime.checkpoint(ref.container_id, image_path, work_path=work_path)
    assert (image_path / "inventory.img").exists()
    assert wait_for_exit(shim, ref).status_lost is False
    runtime.delete(ref.container_id, force=True)

    # Restore under a new conmon: the container runs again from the image.
    restored = shim.restore(ref.container_id, bundle, test_root / "restored", image_path)
    assert runtime.state(ref.container_id).status == "running"
    assert shim.process_alive(restored)

    runtime.kill(ref.container_id, signal.SIGKILL)
    assert wait_for_exit(shim, restored).status == 137


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
