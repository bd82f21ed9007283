"""Ports between the supervisor and the side effects it drives.

The supervisor talks to two things: an OCI runtime (runc, crun, or the simulated runtime in
``adapters.simulated``) and a shim that monitors one process each (conmon, or the simulated
shim). Both real and simulated adapters implement the Protocols below, so the supervisor, the
recovery code and the property tests never know which one they drive.

Every failure crosses this boundary as an ``AdapterError`` subclass; nothing above ``adapters/``
reads a runtime's exit code or parses its output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class AdapterError(Exception):
    """Base class of every error raised by an adapter."""


class ExecutableNotFound(AdapterError):
    """Raised when the runtime or shim binary is not installed or not executable."""

    def __init__(self, executable: str, package: str | None = None) -> None:
        self.executable = executable
        self.package = package
        hint = f" (install the Debian package {package!r})" if package else ""
        super().__init__(f"executable {executable!r} not found on PATH{hint}")


class RuntimeCommandError(AdapterError):
    """Raised when an OCI runtime command exits non-zero.

    ``message`` is the runtime's own last error line, taken from its JSON ``--log`` file when
    there is one, else from its stderr.
    """

    def __init__(
        self,
        operation: str,
        container_id: str,
        message: str,
        *,
        argv: Sequence[str] = (),
        exit_status: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.operation = operation
        self.container_id = container_id
        self.message = message
        self.argv = list(argv)
        self.exit_status = exit_status
        self.log_path = log_path
        where = f" (runtime log: {log_path})" if log_path else ""
        super().__init__(
            f"OCI runtime {operation} failed for container {container_id}: {message}{where}"
        )


class ContainerNotFound(RuntimeCommandError):
    """Raised when the runtime has no container with the given id."""


class ShimError(AdapterError):
    """Raised when the shim cannot start a process; carries the shim's or runtime's message."""

    def __init__(self, container_id: str, message: str, *, process_id: str = "init") -> None:
        self.container_id = container_id
        self.process_id = process_id
        self.message = message
        super().__init__(f"shim failed for container {container_id} process {process_id}: {message}")


class ShimTimeout(ShimError):
    """Raised when a shim did not report a pid within the timeout; shim and container were killed."""


@dataclasses.dataclass(frozen=True)
class RuntimeState:
    """The state of one container as ``runtime state ID`` reports it."""

    id: str
    status: str  # OCI status: "creating", "created", "running", "paused" or "stopped"
    pid: int  # 0 when the runtime reports no live init process
    bundle: str
    created: str | None = None  # RFC 3339 time as the runtime reports it


@dataclasses.dataclass(frozen=True)
class ProcessRef:
    """Everything needed to find a monitored process again after a daemon restart.

    Stored in the journal when a process starts. ``pid_start_time`` and ``shim_start_time`` are
    psutil ``create_time()`` values; together with the pids they tell a live process from a
    recycled pid.
    """

    container_id: str
    process_id: str  # "init" or the exec id
    pid: int
    pid_start_time: float
    shim_pid: int
    shim_start_time: float
    exit_file: str
    oom_file: str
    log_path: str

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ProcessRef:
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class ExitInfo:
    """How a monitored process ended.

    ``status`` is the exit code, or 128+N after signal N. ``status_lost`` is true when the
    monitor died without writing a status; then ``status`` is 255 and ``reason`` gives the cause.
    """

    status: int
    signal: int | None = None
    oom: bool = False
    exited_at: str | None = None  # ISO 8601 UTC, from the exit file's mtime when known
    status_lost: bool = False
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """The process part of a start request: what ``runtime exec --process`` takes."""

    args: list[str]
    env: list[str] = dataclasses.field(default_factory=list)
    cwd: str = "/"
    user: tuple[int, int] = (0, 0)
    terminal: bool = False


@runtime_checkable
class Runtime(Protocol):
    """An OCI runtime driven through its command line (``runc``-compatible).

    All methods are blocking and raise ``ContainerNotFound`` when the container does not exist,
    ``RuntimeCommandError`` for any other failure and ``ExecutableNotFound`` when the binary is
    missing. No method retries.
    """

    name: str  # "runc", "crun", a path, or "simulated"
    root: Path  # the runtime's private --root under bosun's root

    def state(self, container_id: str) -> RuntimeState: ...

    def list(self) -> list[RuntimeState]: ...

    def start(self, container_id: str) -> None: ...

    def kill(self, container_id: str, signal: int, *, all_processes: bool = False) -> None: ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

    def delete(self, container_id: str, *, force: bool = False) -> None: ...

    def pids(self, container_id: str) -> list[int]: ...

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one sample of ``runtime events --stats`` (cpu, memory, pids, ...)."""
        ...

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``linux.resources`` values (for example ``{"memory": {"limit": N}}``)."""
        ...

    def checkpoint(
        self,
        container_id: str,
        image_path: Path,
        *,
        work_path: Path,
        leave_running: bool = False,
        options: Sequence[str] = (),
    ) -> None:
        """Dump the container with CRIU; ``options`` are runtime flags such as ``--tcp-established``."""
        ...


@runtime_checkable
class Shim(Protocol):
    """A per-process monitor (conmon) that outlives the daemon.

    ``create``, ``exec`` and ``restore`` block until the shim reports the process's pid or a
    failure, at most ``timeout`` seconds; on timeout they kill the shim and the runtime
    container and raise ``ShimTimeout``.
    """

    def create(
        self,
        container_id: str,
        bundle: Path,
        state_dir: Path,
        *,
        exit_command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> ProcessRef:
        """Run ``runtime create`` under a new shim; the container is left in ``created``."""
        ...

    def exec(
        self,
        container_id: str,
        exec_id: str,
        process: ProcessSpec,
        state_dir: Path,
        *,
        exit_command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> ProcessRef:
        """Run ``runtime exec --detach`` of ``process`` under a new shim."""
        ...

    def restore(
        self,
        container_id: str,
        bundle: Path,
        state_dir: Path,
        image_path: Path,
        *,
        options: Sequence[str] = (),
        exit_command: Sequence[str] | None = None,
        timeout: float = 60.0,
    ) -> ProcessRef:
        """Run ``runtime restore`` from a checkpoint image under a new shim; the container runs."""
        ...

    def read_exit(self, ref: ProcessRef) -> ExitInfo | None:
        """Return the exit recorded by the shim, or None while the process has not exited.

        When the shim is gone and wrote no status, return an ``ExitInfo`` with
        ``status_lost=True``.
        """
        ...

    def shim_alive(self, ref: ProcessRef) -> bool:
        """Tell whether the shim of ``ref`` is still the same live process (pid and start time)."""
        ...

    def process_alive(self, ref: ProcessRef) -> bool:
        """Tell whether the monitored process is still the same live process."""
        ...

    def pid_reused(self, ref: ProcessRef) -> bool:
        """Tell whether the pid of ``ref`` now names a different live process (start time differs)."""
        ...

    def signal_process(self, ref: ProcessRef, signal: int) -> bool:
        """Send ``signal`` to the monitored process itself, only if it is still the same process.

        Used for exec processes and for processes whose shim is gone. Returns False, sending
        nothing, when the process has exited or its pid was reused.
        """
        ...

    def locate(self, container_id: str, process_id: str, state_dir: Path) -> ProcessRef | None:
        """Rebuild the ref of a process started in ``state_dir`` from the shim's own files.

        Recovery uses it when the daemon crashed after starting a process but before
        journaling its ref. Returns None when no such process was started.
        """
        ...

    def watch(self, ref: ProcessRef, on_exit: Callable[[ProcessRef, ExitInfo], None]) -> None:
        """Call ``on_exit`` once, from a watcher thread, when the shim of ``ref`` exits."""
        ...

    def unwatch(self, ref: ProcessRef) -> None: ...

    def close(self) -> None:
        """Stop watching; shims keep running."""
        ...
