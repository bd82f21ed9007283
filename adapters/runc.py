"""The OCI runtime adapter: runc, crun or any runc-compatible binary driven through its CLI.

Every call passes the runtime a private ``--root`` under bosun's root, so bosun never lists or
touches containers that other tools made. Every call also passes a JSON ``--log`` file, so a
failure carries the runtime's own error line instead of a bare exit status. Calls have a timeout,
because a runtime stuck on a frozen cgroup or a dead FUSE mount must not hang the daemon.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import shutil
import signal as signal_module
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from adapters.base import (
    ContainerNotFound,
    ExecutableNotFound,
    ProcessSpec,
    RuntimeCommandError,
    RuntimeState,
)
from adapters.polling import wait_readable

logger = logging.getLogger(__name__)

DEFAULT_RUNTIME_ROOT = Path("/run/bosun/runtime")
DEFAULT_TIMEOUT = 30.0
# The PATH that `runc spec` puts in a new config.json.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A CRIU dump or restore copies the container's whole memory, so it gets a longer limit.
DEFAULT_CHECKPOINT_TIMEOUT = 300.0

# Debian packages that ship the runtimes and the shim, by executable name.
_PACKAGES = {"runc": "runc", "crun": "crun", "conmon": "conmon"}

# Messages meaning that the container is unknown: runc 1.1 prints "container does not exist", crun
# 1.8 fails to open the container's status file under its root.
_NOT_FOUND_PATTERNS = (
    re.compile(r"container (\S+ )?does not exist"),
    re.compile(r"container \S+ not found"),
    re.compile(r"/status`?: No such file or directory"),
)
# Operations for which "not found" never means an unknown container: create and restore report a
# missing executable that way, and version and list name no container.
_NOT_FOUND_EXEMPT_OPERATIONS = frozenset({"create", "restore", "version", "list"})
# A text-format runc log line: time="..." level=error msg="..."
_TEXT_LOG_MESSAGE = re.compile(r'level=(?:error|fatal|panic) msg="((?:[^"\\]|\\.)*)"')


def package_for(executable: str) -> str | None:
    """Return the Debian package that ships ``executable``, or None when bosun does not know it."""
    return _PACKAGES.get(Path(executable).name)


def resolve_executable(executable: str) -> str:
    """Return the absolute path of ``executable`` (a name on PATH or a path).

    Raises ``ExecutableNotFound`` naming the Debian package when it is missing or not executable.
    """
    if os.sep in executable:
        if os.path.isfile(executable) and os.access(executable, os.X_OK):
            return os.path.abspath(executable)
    else:
        found = shutil.which(executable)
        if found is not None:
            return found
    raise ExecutableNotFound(executable, package_for(executable))


def last_error_line(log_text: str, stderr_text: str = "") -> str:
    """Return the runtime's last error message from its JSON log, falling back to its stderr.

    ``log_text`` contains the JSON lines the runtime wrote during one call, and the last line at
    level error, fatal or panic is returned. When there is none, the last non-empty stderr line is
    returned, with runc's text log format (``time=... level=error msg="..."``) reduced to its
    message.
    """
    message = ""
    for line in log_text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("level") in ("error", "fatal", "panic") and record.get("msg"):
            message = str(record["msg"])
    if message:
        return message

    for line in reversed(stderr_text.splitlines()):
        line = line.strip()
        if not line:
            continue
        match = _TEXT_LOG_MESSAGE.search(line)
        if match:
            return match.group(1).replace('\\"', '"')
        return line
    return ""


def is_not_found(message: str) -> bool:
    """Tell whether a runtime error message says that the container does not exist."""
    return any(pattern.search(message) for pattern in _NOT_FOUND_PATTERNS)


class OciRuntime:
    """An OCI runtime (``runc`` by default) driven through its command line.

    ``binary`` is a name on PATH or a path; ``root`` is the runtime's private state directory.
    ``extra_args`` go before the subcommand on every call (for example ``--systemd-cgroup``).
    Each call appends to a JSON log file per container under ``log_dir`` and reads back only what
    that call wrote. ``log_dir`` defaults to ``<root>-logs`` beside the root, not inside it, because
    ``runc list`` takes every directory in its root for a container. ``timeout`` bounds every call except checkpoint and
    restore, which use ``checkpoint_timeout``.
    """

    def __init__(
        self,
        binary: str = "runc",
        root: Path | str = DEFAULT_RUNTIME_ROOT,
        *,
        extra_args: Sequence[str] = (),
        log_dir: Path | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        checkpoint_timeout: float = DEFAULT_CHECKPOINT_TIMEOUT,
    ) -> None:
        self.name = binary
        self.binary = binary
        self.root = Path(root)
        self.extra_args = list(extra_args)
        self.log_dir = Path(log_dir) if log_dir is not None else self.root.with_name(f"{self.root.name}-logs")
        self.timeout = timeout
        self.checkpoint_timeout = checkpoint_timeout
        self._executable: str | None = None

    def __repr__(self) -> str:
        return f"OciRuntime(binary={self.binary!r}, root={str(self.root)!r})"

    @property
    def executable(self) -> str:
        """The runtime binary's absolute path; raises ``ExecutableNotFound`` when it is missing."""
        if self._executable is None:
            self._executable = resolve_executable(self.binary)
        return self._executable

    def global_args(self, log_path: Path) -> list[str]:
        """Return the arguments that go before every subcommand: root, log file and log format."""
        return [
            f"--root={self.root}",
            f"--log={log_path}",
            "--log-format=json",
            *self.extra_args,
        ]

    def log_path(self, container_id: str) -> Path:
        """Return the JSON log file that runtime calls for ``container_id`` append to."""
        return self.log_dir / f"{container_id or 'runtime'}.log"

    # -- queries ---------------------------------------------------------------------------------

    def version(self) -> str:
        """Return the runtime's ``--version`` output, for example ``runc version 1.1.5+ds1 ...``."""
        argv = [self.executable, "--version"]
        result = self._run_argv("version", "", argv, self.log_path(""), timeout=self.timeout)
        return result.strip()

    def state(self, container_id: str) -> RuntimeState:
        """Return what ``runtime state`` reports about ``container_id``."""
        output = self._run("state", container_id, ["state", container_id])
        return _state_from_data(self._parse_json("state", container_id, output))

    def list(self) -> list[RuntimeState]:
        """Return every container under this runtime's root."""
        output = self._run("list", "", ["list", "--format", "json"])
        data = self._parse_json("list", "", output)
        # runc prints "null" when the root contains no containers.
        if data is None:
            return []
        return [_state_from_data(item) for item in data]

    # The method named list shadows the builtin in this class's annotations, hence builtins.list.
    def pids(self, container_id: str) -> builtins.list[int]:
        """Return the host pids of every process in the container."""
        output = self._run("ps", container_id, ["ps", "--format", "json", container_id])
        data = self._parse_json("ps", container_id, output)
        return [int(pid) for pid in data or []]

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return the ``data`` part of one ``runtime events --stats`` sample."""
        output = self._run("events", container_id, ["events", "--stats", container_id])
        event = self._parse_json("events", container_id, output)
        if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
            msg = f"invalid stats event {output.strip()[:200]!r}: no data object"
            raise RuntimeCommandError("events", container_id, msg)
        return dict(event["data"])

    # -- lifecycle -------------------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: Path | str,
        pid_file: Path | str,
        *,
        options: Sequence[str] = (),
    ) -> None:
        """Run ``runtime create`` directly, without a shim; the container's stdio is /dev/null.

        bosun normally lets the shim run this, so that the shim keeps the container's output.
        """
        argv = ["create", "--bundle", str(bundle), "--pid-file", str(pid_file), *options]
        self._run("create", container_id, [*argv, container_id])

    def restore(
        self,
        container_id: str,
        bundle: Path | str,
        image_path: Path | str,
        pid_file: Path | str,
        *,
        work_path: Path | str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        """Run ``runtime restore --detach`` from a CRIU image directly, without a shim."""
        argv = [
            "restore",
            "--detach",
            "--bundle",
            str(bundle),
            "--image-path",
            str(image_path),
            "--pid-file",
            str(pid_file),
        ]
        if work_path is not None:
            argv += ["--work-path", str(work_path)]
        argv += [*options, container_id]
        self._run("restore", container_id, argv, timeout=self.checkpoint_timeout)

    def exec(
        self,
        container_id: str,
        process: ProcessSpec,
        pid_file: Path | str,
        *,
        process_file: Path | str | None = None,
    ) -> None:
        """Run ``runtime exec --detach`` of ``process`` directly, without a shim.

        The process spec is written to ``process_file``, or to a temporary file removed afterwards.
        """
        with _process_spec_file(process, process_file) as spec_path:
            argv = ["exec", "--detach", "--process", str(spec_path), "--pid-file", str(pid_file)]
            self._run("exec", container_id, [*argv, container_id])

    def start(self, container_id: str) -> None:
        """Run the user process of a created container."""
        self._run("start", container_id, ["start", container_id])

    def kill(self, container_id: str, signal: int, *, all_processes: bool = False) -> None:
        """Send ``signal`` (a number) to the init process, or with ``all_processes`` to all."""
        argv = ["kill"]
        if all_processes:
            argv.append("--all")
        argv += [container_id, str(int(signal))]
        self._run("kill", container_id, argv)

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container."""
        self._run("pause", container_id, ["pause", container_id])

    def resume(self, container_id: str) -> None:
        """Thaw a paused container."""
        self._run("resume", container_id, ["resume", container_id])

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove the container's runtime state; ``force`` kills a running container first."""
        argv = ["delete"]
        if force:
            argv.append("--force")
        self._run("delete", container_id, [*argv, container_id])

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``linux.resources`` values, for example ``{"memory": {"limit": N}}``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", prefix=f"{container_id}-resources-", suffix=".json", dir=self.log_dir
        ) as resources_file:
            json.dump(dict(resources), resources_file)
            resources_file.flush()
            argv = ["update", "--resources", resources_file.name, container_id]
            self._run("update", container_id, argv)

    def checkpoint(
        self,
        container_id: str,
        image_path: Path,
        *,
        work_path: Path,
        leave_running: bool = False,
        options: Sequence[str] = (),
    ) -> None:
        """Dump the container with CRIU into ``image_path``; CRIU's own logs go to ``work_path``.

        ``options`` are runtime flags such as ``--tcp-established``, ``--ext-unix-sk``,
        ``--shell-job`` or ``--file-locks``. When the dump fails, the error names CRIU's dump log.
        """
        Path(image_path).mkdir(parents=True, exist_ok=True)
        Path(work_path).mkdir(parents=True, exist_ok=True)
        argv = ["checkpoint", "--image-path", str(image_path), "--work-path", str(work_path)]
        if leave_running:
            argv.append("--leave-running")
        argv += [*options, container_id]
        try:
            self._run("checkpoint", container_id, argv, timeout=self.checkpoint_timeout)
        except ContainerNotFound:
            raise
        except RuntimeCommandError as exc:
            dump_log = Path(work_path) / "dump.log"
            if dump_log.exists():
                msg = f"{exc.message} (CRIU dump log: {dump_log})"
                raise RuntimeCommandError(
                    exc.operation,
                    container_id,
                    msg,
                    argv=exc.argv,
                    exit_status=exc.exit_status,
                    log_path=exc.log_path,
                ) from exc
            raise

    # -- plumbing --------------------------------------------------------------------------------

    def _run(
        self,
        operation: str,
        container_id: str,
        arguments: Sequence[str],
        *,
        timeout: float | None = None,
    ) -> str:
        log_path = self.log_path(container_id)
        argv = [self.executable, *self.global_args(log_path), *arguments]
        return self._run_argv(
            operation,
            container_id,
            argv,
            log_path,
            timeout=self.timeout if timeout is None else timeout,
        )

    def _run_argv(
        self,
        operation: str,
        container_id: str,
        argv: builtins.list[str],
        log_path: Path,
        *,
        timeout: float,
    ) -> str:
        """Run one runtime command and return its stdout; raise with the runtime's own message."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        logger.debug("running %s for container %s: %s", operation, container_id, argv)

        # Files, not pipes, take the output: a container started by create or exec inherits the
        # runtime's stdio, and a pipe it holds open would block the read forever.
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    close_fds=True,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise ExecutableNotFound(self.binary, package_for(self.binary)) from exc
            try:
                exit_status = _wait(process, timeout)
            except subprocess.TimeoutExpired:
                # The runtime leads its own session, so its children go with it.
                _kill_group(process)
                msg = f"timed out after {timeout:g} s"
                raise RuntimeCommandError(
                    operation, container_id, msg, argv=argv, log_path=log_path
                ) from None
            stdout_text = _read_all(stdout)
            stderr_text = _read_all(stderr)

        if exit_status == 0:
            return stdout_text

        message = last_error_line(_read_from(log_path, log_offset), stderr_text)
        if not message:
            message = f"exited with status {exit_status} and no error message"
        error_class = RuntimeCommandError
        if operation not in _NOT_FOUND_EXEMPT_OPERATIONS and is_not_found(message):
            error_class = ContainerNotFound
        raise error_class(
            operation,
            container_id,
            message,
            argv=argv,
            exit_status=exit_status,
            log_path=log_path,
        )

    def _parse_json(self, operation: str, container_id: str, output: str) -> Any:
        try:
            return json.loads(output)
        except json.JSONDecodeError as exc:
            msg = f"invalid JSON output {output.strip()[:200]!r}: {exc}"
            raise RuntimeCommandError(operation, container_id, msg) from exc


def _state_from_data(data: Mapping[str, Any]) -> RuntimeState:
    return RuntimeState(
        id=str(data["id"]),
        status=str(data["status"]),
        pid=int(data.get("pid") or 0),
        bundle=str(data.get("bundle") or ""),
        created=data.get("created"),
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal_module.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _read_all(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode("utf-8", errors="replace")


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as log_file:
            log_file.seek(offset)
            return log_file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def _process_spec_file(process: ProcessSpec, path: Path | str | None) -> Iterator[Path]:
    """Yield a path holding ``process`` as JSON: ``path`` itself, or a temporary file."""
    data = process_spec_data(process)
    if path is not None:
        Path(path).write_text(json.dumps(data))
        yield Path(path)
        return
    fd, temporary = tempfile.mkstemp(prefix="process-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as spec_file:
            json.dump(data, spec_file)
        yield Path(temporary)
    finally:
        os.unlink(temporary)


def process_spec_data(process: ProcessSpec) -> dict[str, Any]:
    """Return ``process`` as the OCI ``process`` object that ``runtime exec --process`` reads."""
    uid, gid = process.user
    env = list(process.env)
    # runc looks up args[0] in the process's own PATH, so an exec without one finds no command.
    if not any(variable.startswith("PATH=") for variable in env):
        env.insert(0, DEFAULT_PATH)
    return {
        "terminal": process.terminal,
        "user": {"uid": uid, "gid": gid},
        "args": list(process.args),
        "env": env,
        "cwd": process.cwd,
        # No "capabilities" key: runc then gives the process the container's own capability set.
    }


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for ``process`` to exit, blocking on a pidfd.

    ``Popen.wait(timeout=...)`` polls with sleeps that grow to 50 ms, which added several
    milliseconds to every runtime call; a pidfd becomes readable the moment the process exits.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return process.wait()
    try:
        ready = wait_readable(pidfd, timeout)
    finally:
        os.close(pidfd)
    if not ready:
        raise subprocess.TimeoutExpired(process.args, timeout)
    return process.wait()
