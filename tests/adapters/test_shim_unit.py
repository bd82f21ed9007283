"""conmon adapter pieces that need no root: exit files, lost monitors, argv, watching, identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from adapters.base import AdapterError, ExitInfo, ProcessRef
from adapters.conmon import ConmonShim, private_bundle
from adapters.identity import is_same_process, process_start_time, process_usage
from adapters.runc import OciRuntime


@pytest.fixture
def shim(tmp_path: Path) -> ConmonShim:
    # Stand-in executables: these tests never start conmon or the runtime.
    runtime = OciRuntime("/bin/true", tmp_path / "runtime-root", extra_args=["--debug"])
    return ConmonShim(runtime, conmon="/bin/true", state_root=tmp_path / "shim")


@pytest.fixture
def dead_pid() -> tuple[int, float]:
    """Return the pid and start time of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start_time = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, start_time


def make_ref(tmp_path: Path, shim_pid: int, shim_start_time: float) -> ProcessRef:
    (tmp_path / "exit").mkdir(parents=True, exist_ok=True)
    (tmp_path / "persist").mkdir(exist_ok=True)
    return ProcessRef(
        container_id="web-1",
        process_id="init",
        pid=shim_pid,
        pid_start_time=shim_start_time,
        shim_pid=shim_pid,
        shim_start_time=shim_start_time,
        exit_file=str(tmp_path / "exit" / "web-1"),
        oom_file=str(tmp_path / "persist" / "oom"),
        log_path=str(tmp_path / "output.log"),
    )


def live_ref(tmp_path: Path) -> ProcessRef:
    """Return a ref whose shim is this test process, so the shim counts as alive."""
    pid = os.getpid()
    start_time = process_start_time(pid)
    assert start_time is not None
    return make_ref(tmp_path, pid, start_time)


@pytest.mark.parametrize(
    ("content", "status", "signal_number"),
    [
        pytest.param("0", 0, None, id="clean-exit"),
        pytest.param("3\n", 3, None, id="exit-code"),
        pytest.param("128", 128, None, id="exit-128-is-no-signal"),
        pytest.param("137", 137, 9, id="sigkill"),
        pytest.param("143", 143, 15, id="sigterm"),
        pytest.param("192", 192, 64, id="highest-signal"),
        pytest.param("255", 255, None, id="exit-255"),
    ],
)
def test_read_exit_parses_exit_file(
    shim: ConmonShim, tmp_path: Path, content: str, status: int, signal_number: int | None
) -> None:
    ref = live_ref(tmp_path)
    Path(ref.exit_file).write_text(content)

    info = shim.read_exit(ref)

    assert info is not None
    assert info.status == status
    assert info.signal == signal_number
    assert info.oom is False
    assert info.status_lost is False
    assert info.exited_at is not None and info.exited_at.endswith("+00:00")


def test_read_exit_reports_oom_mark(shim: ConmonShim, tmp_path: Path) -> None:
    ref = live_ref(tmp_path)
    Path(ref.exit_file).write_text("137")
    Path(ref.oom_file).write_text("")

    info = shim.read_exit(ref)

    assert info is not None
    assert info.oom is True
    assert info.signal == 9


def test_read_exit_is_none_while_shim_lives(shim: ConmonShim, tmp_path: Path) -> None:
    assert shim.read_exit(live_ref(tmp_path)) is None


def test_read_exit_reports_lost_status_when_shim_gone(
    shim: ConmonShim, tmp_path: Path, dead_pid: tuple[int, float]
) -> None:
    ref = make_ref(tmp_path, *dead_pid)

    info = shim.read_exit(ref)

    assert info is not None
    assert info.status == 255
    assert info.status_lost is True
    assert info.reason == (
        f"exit status lost: shim conmon pid {dead_pid[0]} exited without writing a status"
    )


def test_read_exit_prefers_exit_file_of_gone_shim(
    shim: ConmonShim, tmp_path: Path, dead_pid: tuple[int, float]
) -> None:
    ref = make_ref(tmp_path, *dead_pid)
    Path(ref.exit_file).write_text("0")

    info = shim.read_exit(ref)

    assert info is not None
    assert info.status == 0
    assert info.status_lost is False
    assert info.reason is None


def test_read_exit_rejects_invalid_exit_file(shim: ConmonShim, tmp_path: Path) -> None:
    ref = live_ref(tmp_path)
    Path(ref.exit_file).write_text("killed")

    with pytest.raises(AdapterError, match="invalid exit file .*'killed' is not an exit status"):
        shim.read_exit(ref)


def test_shim_alive_checks_start_time(shim: ConmonShim, tmp_path: Path) -> None:
    ref = live_ref(tmp_path)
    recycled = make_ref(tmp_path, ref.shim_pid, ref.shim_start_time - 100)

    assert shim.shim_alive(ref)
    assert shim.process_alive(ref)
    assert not shim.shim_alive(recycled)
    assert not shim.process_alive(recycled)


def test_conmon_argv_passes_runtime_and_exit_command(shim: ConmonShim, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"

    argv = shim.conmon_argv(
        "web-1",
        "init",
        tmp_path / "bundle",
        state_dir,
        exit_command=["/usr/bin/bosun", "notify-exit", "web-1"],
    )

    def values(flag: str) -> list[str]:
        return [argv[index + 1] for index, item in enumerate(argv) if item == flag]

    assert values("--cid") == ["web-1"]
    assert values("--runtime") == ["/bin/true"]
    assert values("--runtime-arg") == [
        f"--root={tmp_path / 'runtime-root'}",
        f"--log={state_dir / 'runtime.log'}",
        "--log-format=json",
        "--debug",
    ]
    assert values("--exit-dir") == [str(state_dir / "exit")]
    assert values("--persist-dir") == [str(state_dir / "persist")]
    assert values("--conmon-pidfile") == [str(state_dir / "conmon.pid")]
    assert values("--log-path") == [f"k8s-file:{state_dir / 'output.log'}"]
    assert values("--exit-command") == ["/usr/bin/bosun"]
    assert values("--exit-command-arg") == ["notify-exit", "web-1"]


def test_private_bundle_points_at_original_paths(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = {
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind"]},
            {"destination": "/opt", "source": "opt", "options": ["bind", "ro"]},
            {"destination": "/abs", "type": "bind", "source": "/srv/abs"},
            {"destination": "/proc", "type": "proc", "source": "proc"},
        ],
    }
    (bundle / "config.json").write_text(json.dumps(config))

    private = private_bundle(bundle, tmp_path / "state" / "bundle")

    written = json.loads((private / "config.json").read_text())
    assert private == tmp_path / "state" / "bundle"
    assert sorted(path.name for path in private.iterdir()) == ["config.json"]
    assert written["root"] == {"path": str(bundle / "rootfs"), "readonly": True}
    assert [mount["source"] for mount in written["mounts"]] == [
        str(bundle / "data"), str(bundle / "opt"), "/srv/abs", "proc",
    ]
    assert json.loads((bundle / "config.json").read_text()) == config


def test_exec_conmons_get_distinct_cuuids(shim: ConmonShim, tmp_path: Path) -> None:
    first = shim.conmon_argv("web", "e1", tmp_path, tmp_path / "a")
    second = shim.conmon_argv("db", "e1", tmp_path, tmp_path / "b")
    init = shim.conmon_argv("web", "init", tmp_path, tmp_path / "c")

    def cuuid(argv: list[str]) -> str:
        return argv[argv.index("--cuuid") + 1]

    assert cuuid(first) != cuuid(second)
    assert cuuid(init) == "web"


def test_watch_reports_gone_shim_once(
    shim: ConmonShim, tmp_path: Path, dead_pid: tuple[int, float]
) -> None:
    ref = make_ref(tmp_path, *dead_pid)
    Path(ref.exit_file).write_text("3")
    reports: list[ExitInfo] = []
    reported = threading.Event()

    def on_exit(exited: ProcessRef, info: ExitInfo) -> None:
        reports.append(info)
        reported.set()

    shim.watch(ref, on_exit)
    assert reported.wait(30)
    shim.close()

    assert [info.status for info in reports] == [3]


def test_watch_reports_exit_of_watched_process(shim: ConmonShim, tmp_path: Path) -> None:
    # A child process plays conmon: it writes the exit file, then exits.
    exit_dir = tmp_path / "exit"
    exit_dir.mkdir()
    script = "import sys; sys.stdin.read(); open(sys.argv[1], 'w').write('42')"
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(exit_dir / "web-1")], stdin=subprocess.PIPE
    )
    try:
        start_time = process_start_time(child.pid)
        assert start_time is not None
        ref = make_ref(tmp_path, child.pid, start_time)
        reports: list[ExitInfo] = []
        reported = threading.Event()

        def on_exit(exited: ProcessRef, info: ExitInfo) -> None:
            reports.append(info)
            reported.set()

        shim.watch(ref, on_exit)
        assert child.stdin is not None
        child.stdin.close()
        assert reported.wait(30)
    finally:
        shim.close()
        child.kill()
        child.wait()

    assert [(info.status, info.status_lost) for info in reports] == [(42, False)]


def test_unwatch_drops_callback(
    shim: ConmonShim, tmp_path: Path, dead_pid: tuple[int, float]
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    reports: list[str] = []
    later_reported = threading.Event()
    try:
        start_time = process_start_time(child.pid)
        assert start_time is not None
        unwatched = make_ref(tmp_path, child.pid, start_time)
        shim.watch(unwatched, lambda exited, info: reports.append("unwatched"))
        shim.unwatch(unwatched)
        assert child.stdin is not None
        child.stdin.close()
        child.wait()

        # A later report proves the watcher thread ran after the unwatched process exited.
        def on_gone_exit(exited: ProcessRef, info: ExitInfo) -> None:
            reports.append("gone")
            later_reported.set()

        gone = make_ref(tmp_path / "gone", *dead_pid)
        shim.watch(gone, on_gone_exit)
        assert later_reported.wait(30)
    finally:
        shim.close()
        child.kill()
        child.wait()

    assert reports == ["gone"]


def test_is_same_process_rejects_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start_time = process_start_time(child.pid)
    assert start_time is not None
    try:
        # Wait for the exit but leave the child unreaped, so it stays a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert not is_same_process(child.pid, start_time)
    finally:
        child.wait()
    assert not is_same_process(child.pid, start_time)
    assert process_start_time(child.pid) is None


def test_is_same_process_for_self() -> None:
    start_time = process_start_time(os.getpid())
    assert start_time is not None

    assert is_same_process(os.getpid(), start_time)
    assert not is_same_process(os.getpid(), start_time + 5)
    assert not is_same_process(0, start_time)


def test_process_usage_of_self() -> None:
    usage = process_usage(os.getpid())

    assert usage["pid"] == os.getpid()
    assert usage["rss"] > 0
    assert usage["num_fds"] >= 3
    assert usage["cpu_user"] >= 0.0
