"""Runtime error translation, driven by fake runtime scripts that need no root."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.base import ContainerNotFound, ExecutableNotFound, RuntimeCommandError
from adapters.runc import OciRuntime, is_not_found, last_error_line


def fake_runtime(directory: Path, body: str) -> Path:
    """Write an executable shell script standing in for runc; ``$LOG`` is its --log path."""
    script = directory / "fake-runtime"
    script.write_text(
        "#!/bin/sh\n"
        'for argument; do case "$argument" in --log=*) LOG="${argument#--log=}";; esac; done\n'
        f"{body}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.parametrize(
    ("log_text", "stderr_text", "expected"),
    [
        pytest.param(
            '{"level":"info","msg":"starting","time":"t"}\n'
            '{"level":"error","msg":"first failure","time":"t"}\n'
            '{"level":"error","msg":"last failure","time":"t"}\n',
            "ignored stderr",
            "last failure",
            id="last-json-error-wins",
        ),
        pytest.param(
            '{"level":"warning","msg":"cgroup v1 is deprecated","time":"t"}\n',
            "plain stderr message\n",
            "plain stderr message",
            id="stderr-when-log-has-no-error",
        ),
        pytest.param(
            "",
            'time="2024-05-01T12:00:00Z" level=error msg="container \\"x\\" does not exist"\n',
            'container "x" does not exist',
            id="text-format-stderr",
        ),
        pytest.param(
            'not json\n{"msg":"crun message","level":"error","time":"t"}',
            "",
            "crun message",
            id="skips-non-json-lines",
        ),
        pytest.param("", "", "", id="nothing"),
    ],
)
def test_last_error_line(log_text: str, stderr_text: str, expected: str) -> None:
    assert last_error_line(log_text, stderr_text) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("container does not exist", True, id="runc"),
        pytest.param(
            "error opening file `/run/crun/x/status`: No such file or directory", True, id="crun"
        ),
        pytest.param(
            'exec: "sh": executable file not found in $PATH', False, id="missing-executable"
        ),
        pytest.param("container not running", False, id="not-running"),
    ],
)
def test_is_not_found(message: str, expected: bool) -> None:
    assert is_not_found(message) is expected


def test_failure_carries_runtime_log_message(tmp_path: Path) -> None:
    script = fake_runtime(
        tmp_path,
        'echo \'{"level":"error","msg":"container is not paused","time":"t"}\' >> "$LOG"\n'
        "echo 'stderr text' >&2\n"
        "exit 1",
    )
    runtime = OciRuntime(str(script), tmp_path / "root")

    with pytest.raises(RuntimeCommandError) as caught:
        runtime.resume("web-1")

    error = caught.value
    assert type(error) is RuntimeCommandError
    assert error.operation == "resume"
    assert error.container_id == "web-1"
    assert error.message == "container is not paused"
    assert error.exit_status == 1
    assert error.argv[-2:] == ["resume", "web-1"]
    assert f"--root={tmp_path / 'root'}" in error.argv
    assert "--log-format=json" in error.argv
    assert error.log_path == tmp_path / "root-logs" / "web-1.log"
    assert str(error) == (
        "OCI runtime resume failed for container web-1: container is not paused "
        f"(runtime log: {error.log_path})"
    )


def test_failure_reads_only_this_calls_log_lines(tmp_path: Path) -> None:
    script = fake_runtime(
        tmp_path,
        'echo "{\\"level\\":\\"error\\",\\"msg\\":\\"failure $$\\",\\"time\\":\\"t\\"}" >> "$LOG"\n'
        "exit 1",
    )
    runtime = OciRuntime(str(script), tmp_path / "root")
    messages = []

    for _ in range(2):
        with pytest.raises(RuntimeCommandError) as caught:
            runtime.pause("web-1")
        messages.append(caught.value.message)

    assert messages[0] != messages[1]
    assert len(runtime.log_path("web-1").read_text().splitlines()) == 2


def test_does_not_exist_raises_container_not_found(tmp_path: Path) -> None:
    script = fake_runtime(
        tmp_path,
        'echo \'{"level":"error","msg":"container does not exist","time":"t"}\' >> "$LOG"\nexit 1',
    )
    runtime = OciRuntime(str(script), tmp_path / "root")

    with pytest.raises(ContainerNotFound) as caught:
        runtime.state("ghost")

    assert caught.value.container_id == "ghost"
    assert caught.value.message == "container does not exist"


def test_stderr_is_used_without_log(tmp_path: Path) -> None:
    script = fake_runtime(tmp_path, "echo 'flag provided but not defined: -x' >&2\nexit 2")
    runtime = OciRuntime(str(script), tmp_path / "root")

    with pytest.raises(RuntimeCommandError) as caught:
        runtime.start("web-1")

    assert caught.value.message == "flag provided but not defined: -x"
    assert caught.value.exit_status == 2


def test_silent_failure_names_exit_status(tmp_path: Path) -> None:
    runtime = OciRuntime(str(fake_runtime(tmp_path, "exit 7")), tmp_path / "root")

    with pytest.raises(RuntimeCommandError) as caught:
        runtime.start("web-1")

    assert caught.value.message == "exited with status 7 and no error message"


def test_hung_runtime_times_out(tmp_path: Path) -> None:
    script = fake_runtime(tmp_path, "exec sleep 1000")
    runtime = OciRuntime(str(script), tmp_path / "root", timeout=0.5)

    with pytest.raises(RuntimeCommandError) as caught:
        runtime.state("web-1")

    assert caught.value.message == "timed out after 0.5 s"
    assert caught.value.exit_status is None
    assert "timed out" in str(caught.value)


def test_missing_binary_names_package(tmp_path: Path) -> None:
    runtime = OciRuntime("crun-not-installed", tmp_path / "root")

    with pytest.raises(ExecutableNotFound) as caught:
        runtime.list()

    assert caught.value.executable == "crun-not-installed"


@pytest.mark.parametrize(("binary", "package"), [("runc", "runc"), ("crun", "crun")])
def test_missing_known_runtime_names_debian_package(
    tmp_path: Path, binary: str, package: str
) -> None:
    runtime = OciRuntime(str(tmp_path / "bin" / binary), tmp_path / "root")

    with pytest.raises(ExecutableNotFound) as caught:
        runtime.state("web-1")

    assert caught.value.package == package
    assert f"install the Debian package {package!r}" in str(caught.value)


def test_parsed_outputs(tmp_path: Path) -> None:
    script = fake_runtime(
        tmp_path,
        'case "$*" in\n'
        '  *" list "*) echo null;;\n'
        '  *" ps "*) echo "[12, 13]";;\n'
        '  *" events "*) echo \'{"type":"stats","id":"web-1","data":{"pids":{"current":2}}}\';;\n'
        '  *" state "*) echo \'{"id":"web-1","pid":12,"status":"running","bundle":"/b"}\';;\n'
        "esac",
    )
    runtime = OciRuntime(str(script), tmp_path / "root")

    assert runtime.list() == []
    assert runtime.pids("web-1") == [12, 13]
    assert runtime.stats("web-1") == {"pids": {"current": 2}}
    state = runtime.state("web-1")
    assert (state.id, state.pid, state.status, state.bundle) == ("web-1", 12, "running", "/b")
