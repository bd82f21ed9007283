"""The shim adapter: one conmon (the container monitor Podman and CRI-O use) per process.

conmon runs ``runtime create`` (or ``exec``, or ``restore``) and keeps the process's stdio open.
It writes the output to a ``k8s-file`` log and the exit status to a file named after the container
in its exit directory, marks an OOM kill with a file named ``oom`` in its persist directory, and
runs an exit command. It double-forks, so it outlives bosun and is not bosun's child (unless bosun
made itself a child subreaper).

How bosun talks to conmon 2.1:

* the sync pipe: bosun passes the write end of a pipe as an inherited fd and names it in
  ``_OCI_SYNCPIPE``; conmon writes one JSON object, ``{"data": PID}`` on success or
  ``{"data": -1, "message": "..."}`` when the runtime failed, then closes it;
* ``--conmon-pidfile``: conmon's own pid after the double fork;
* each process gets a state directory from the caller, laid out as::

      state_dir/conmon.pid   conmon's pid
      state_dir/pid          the process's host pid (written by the runtime)
      state_dir/exit/ID      the exit status, a decimal number (ID is the container id)
      state_dir/persist/oom  present when the OOM killer ended the process
      state_dir/output.log   stdout and stderr in k8s-file format
      state_dir/runtime.log  the runtime's JSON log for this process
      state_dir/conmon.log   conmon's own stderr
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import psutil

from adapters.base import (
    AdapterError,
    ContainerNotFound,
    ExecutableNotFound,
    ExitInfo,
    ProcessRef,
    ProcessSpec,
    RuntimeCommandError,
    ShimError,
    ShimTimeout,
)
from adapters.identity import is_same_process, process_start_time
from adapters.polling import wait_readable
from adapters.runc import OciRuntime, last_error_line, process_spec_data, resolve_executable

logger = logging.getLogger(__name__)

# conmon's exit status for a signal death is 128 plus the signal number; Linux signals end at 64.
_SIGNAL_BASE = 128
_MAX_SIGNAL = 64
# Exit status reported when conmon died without writing one.
LOST_STATUS = 255
# How long conmon's first process may take to exit: it forks the monitor and exits without waiting
# for the runtime.
_FORK_TIMEOUT = 10.0
# How long to wait for a conmon or container killed after a timeout to be gone.
_KILL_WAIT = 5.0

ExitCallback = Callable[[ProcessRef, ExitInfo], None]


class ConmonShim:
    """Run and watch conmon processes; implements the ``Shim`` port.

    ``runtime`` supplies the runtime binary, its ``--root`` and any extra arguments, which are
    passed to conmon with ``--runtime-arg``. ``state_root`` contains what conmon shares between
    processes (its attach sockets). ``log_size_max`` in bytes caps each output log, when given.
    """

    def __init__(
        self,
        runtime: OciRuntime,
        *,
        conmon: str = "conmon",
        state_root: Path | str,
        log_size_max: int | None = None,
        log_level: str = "error",
    ) -> None:
        self.runtime = runtime
        self.conmon = conmon
        self.state_root = Path(state_root)
        self.log_size_max = log_size_max
        self.log_level = log_level
        self._executable: str | None = None
        self._watcher: _Watcher | None = None
        self._watcher_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConmonShim(conmon={self.conmon!r}, runtime={self.runtime!r})"

    @property
    def executable(self) -> str:
        """conmon's absolute path; raises ``ExecutableNotFound`` when it is missing."""
        if self._executable is None:
            try:
                self._executable = resolve_executable(self.conmon)
            except ExecutableNotFound:
                raise ExecutableNotFound(self.conmon, "conmon") from None
        return self._executable

    # -- starting processes ----------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: Path,
        state_dir: Path,
        *,
        exit_command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> ProcessRef:
        """Run ``runtime create`` under a new conmon; the container is left in ``created``."""
        state_dir = Path(state_dir)
        return self._spawn(
            container_id,
            "init",
            private_bundle(Path(bundle), state_dir / "bundle"),
            state_dir,
            mode_args=[],
            exit_command=exit_command,
            timeout=timeout,
        )

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
        """Run ``runtime exec --detach`` of ``process`` under a new conmon."""
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        spec_path = state_dir / "process.json"
        spec_path.write_text(json.dumps(process_spec_data(process)))
        # ``runtime exec`` takes no bundle; conmon only keeps its control FIFOs and attach socket
        # there, so the exec's own directory serves.
        return self._spawn(
            container_id,
            exec_id,
            state_dir,
            state_dir,
            mode_args=["--exec", "--exec-process-spec", str(spec_path)],
            exit_command=exit_command,
            timeout=timeout,
        )

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
        """Run ``runtime restore`` from the CRIU image at ``image_path`` under a new conmon.

        ``options`` are runtime flags such as ``--tcp-established``; conmon passes each with
        ``--runtime-opt``.
        """
        mode_args = ["--restore", str(image_path)]
        for option in options:
            mode_args += ["--runtime-opt", option]
        state_dir = Path(state_dir)
        return self._spawn(
            container_id,
            "init",
            private_bundle(Path(bundle), state_dir / "bundle"),
            state_dir,
            mode_args=mode_args,
            exit_command=exit_command,
            timeout=timeout,
        )

    def conmon_argv(
        self,
        container_id: str,
        process_id: str,
        bundle: Path,
        state_dir: Path,
        *,
        mode_args: Sequence[str] = (),
        exit_command: Sequence[str] | None = None,
    ) -> list[str]:
        """Return the conmon command line for one process (exposed for tests and debugging)."""
        # conmon names its attach socket's directory after --cuuid, so every process needs its own:
        # exec ids repeat across containers, and a uuid keeps the socket path short.
        cuuid = container_id if process_id == "init" else uuid.uuid4().hex
        argv = [
            self.executable,
            "--api-version",
            "1",
            "--cid",
            container_id,
            "--cuuid",
            cuuid,
            "--name",
            container_id,
            "--runtime",
            self.runtime.executable,
            "--bundle",
            str(bundle),
            "--container-pidfile",
            str(state_dir / "pid"),
            "--conmon-pidfile",
            str(state_dir / "conmon.pid"),
            "--exit-dir",
            str(state_dir / "exit"),
            "--persist-dir",
            str(state_dir / "persist"),
            "--log-path",
            f"k8s-file:{state_dir / 'output.log'}",
            "--socket-dir-path",
            str(self.state_root / "sockets"),
            "--log-level",
            self.log_level,
        ]
        if self.log_size_max is not None:
            argv += ["--log-size-max", str(self.log_size_max)]
        runtime_args = [
            f"--root={self.runtime.root}",
            f"--log={state_dir / 'runtime.log'}",
            "--log-format=json",
            *self.runtime.extra_args,
        ]
        for runtime_arg in runtime_args:
            argv += ["--runtime-arg", runtime_arg]
        if exit_command:
            argv += ["--exit-command", exit_command[0]]
            for argument in exit_command[1:]:
                argv += ["--exit-command-arg", argument]
        argv += list(mode_args)
        return argv

    def _spawn(
        self,
        container_id: str,
        process_id: str,
        bundle: Path,
        state_dir: Path,
        *,
        mode_args: Sequence[str],
        exit_command: Sequence[str] | None,
        timeout: float,
    ) -> ProcessRef:
        """Start conmon, read the process's pid from the sync pipe and return its ``ProcessRef``."""
        deadline = time.monotonic() + timeout

        # Fresh state: a stale exit file or OOM mark would be read as this process's exit.
        for directory in (state_dir, state_dir / "exit", state_dir / "persist", self.state_root):
            directory.mkdir(parents=True, exist_ok=True)
        exit_file = state_dir / "exit" / container_id
        oom_file = state_dir / "persist" / "oom"
        for stale in (exit_file, oom_file, state_dir / "pid", state_dir / "conmon.pid"):
            stale.unlink(missing_ok=True)
        (self.state_root / "sockets").mkdir(exist_ok=True)

        argv = self.conmon_argv(
            container_id,
            process_id,
            bundle,
            state_dir,
            mode_args=mode_args,
            exit_command=exit_command,
        )
        logger.info("starting conmon for container %s process %s", container_id, process_id)
        logger.debug("conmon argv for container %s: %s", container_id, argv)

        with contextlib.ExitStack() as stack:
            read_fd, write_fd = os.pipe()
            stack.callback(_close_quietly, read_fd)
            write_guard = stack.enter_context(_FdGuard(write_fd))
            conmon_log = stack.enter_context(open(state_dir / "conmon.log", "ab"))
            try:
                first = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=conmon_log,
                    stderr=conmon_log,
                    pass_fds=(write_fd,),
                    env={**os.environ, "_OCI_SYNCPIPE": str(write_fd)},
                    cwd=state_dir,
                )
            except FileNotFoundError as exc:
                raise ExecutableNotFound(self.conmon, "conmon") from exc
            # Only conmon may hold the write end, so that its exit shows as end of file here.
            write_guard.close()

            # conmon's first process forks the monitor and exits at once; reap it here.
            try:
                first.wait(timeout=min(_FORK_TIMEOUT, max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
                self._abort_start(container_id, process_id, state_dir, timeout)

            try:
                message = _read_sync_message(read_fd, deadline)
            except TimeoutError:
                self._abort_start(container_id, process_id, state_dir, timeout)

        return self._finish_start(
            container_id, process_id, state_dir, message, exit_file, oom_file, first.returncode
        )

    def _finish_start(
        self,
        container_id: str,
        process_id: str,
        state_dir: Path,
        message: dict[str, Any] | None,
        exit_file: Path,
        oom_file: Path,
        first_status: int | None,
    ) -> ProcessRef:
        """Turn conmon's sync message into a ``ProcessRef`` or a ``ShimError`` with the cause."""
        if message is None:
            conmon_output = _read_text(state_dir / "conmon.log").strip()
            detail = conmon_output.splitlines()[-1] if conmon_output else "no output"
            msg = (
                f"conmon exited with status {first_status} before reporting a pid: {detail} "
                f"(conmon log: {state_dir / 'conmon.log'})"
            )
            raise ShimError(container_id, msg, process_id=process_id)

        data = message.get("data")
        pid = data if isinstance(data, int) else -1
        if pid <= 0:
            # The runtime's JSON log contains its own message; conmon's message only wraps it.
            runtime_message = last_error_line(_read_text(state_dir / "runtime.log"))
            msg = runtime_message or str(message.get("message") or "runtime failed")
            raise ShimError(container_id, msg, process_id=process_id)

        shim_pid = _read_pid(state_dir / "conmon.pid")
        if shim_pid is None:
            msg = f"conmon reported pid {pid} but wrote no pid file {state_dir / 'conmon.pid'}"
            raise ShimError(container_id, msg, process_id=process_id)
        shim_start_time = process_start_time(shim_pid) or 0.0
        pid_start_time = process_start_time(pid) or 0.0
        logger.info(
            "conmon %d started container %s process %s with pid %d",
            shim_pid,
            container_id,
            process_id,
            pid,
        )
        return ProcessRef(
            container_id=container_id,
            process_id=process_id,
            pid=pid,
            pid_start_time=pid_start_time,
            shim_pid=shim_pid,
            shim_start_time=shim_start_time,
            exit_file=str(exit_file),
            oom_file=str(oom_file),
            log_path=str(state_dir / "output.log"),
        )

    def _abort_start(
        self, container_id: str, process_id: str, state_dir: Path, timeout: float
    ) -> NoReturn:
        """Kill conmon and the runtime container after a start timed out; raise ``ShimTimeout``."""
        killed = []
        shim_pid = _read_pid(state_dir / "conmon.pid")
        if shim_pid is not None and _kill_process_group(shim_pid):
            killed.append(f"conmon pid {shim_pid}")

        if process_id == "init":
            try:
                self.runtime.delete(container_id, force=True)
                killed.append("the container")
            except ContainerNotFound:
                pass
            except RuntimeCommandError as exc:
                logger.warning(
                    "deleting container %s after a start timeout failed: %s", container_id, exc
                )
        else:
            exec_pid = _read_pid(state_dir / "pid")
            if exec_pid is not None and _kill_pid(exec_pid):
                killed.append(f"exec pid {exec_pid}")

        done = ", ".join(killed) if killed else "nothing was left to kill"
        msg = f"conmon did not report a pid within {timeout:g} s; killed {done}"
        raise ShimTimeout(container_id, msg, process_id=process_id)

    # -- reading exits ---------------------------------------------------------------------------

    def read_exit(self, ref: ProcessRef) -> ExitInfo | None:
        """Return the exit conmon recorded for ``ref``, or None while the process runs.

        When conmon is gone and wrote no exit file, return status 255 with ``status_lost``.
        """
        info = _parse_exit_file(Path(ref.exit_file), Path(ref.oom_file))
        if info is not None:
            return info
        if self.shim_alive(ref):
            return None
        # conmon writes the exit file just before it exits; read again in case that happened
        # between the first read and the liveness check.
        info = _parse_exit_file(Path(ref.exit_file), Path(ref.oom_file))
        if info is not None:
            return info
        reason = f"exit status lost: shim conmon pid {ref.shim_pid} exited without writing a status"
        return ExitInfo(
            status=LOST_STATUS,
            oom=Path(ref.oom_file).exists(),
            exited_at=_utc_now(),
            status_lost=True,
            reason=reason,
        )

    def shim_alive(self, ref: ProcessRef) -> bool:
        """Tell whether ``ref``'s conmon is the same live process (pid and start time)."""
        return is_same_process(ref.shim_pid, ref.shim_start_time)

    def process_alive(self, ref: ProcessRef) -> bool:
        """Tell whether ``ref``'s monitored process is the same live process."""
        return is_same_process(ref.pid, ref.pid_start_time)

    def pid_reused(self, ref: ProcessRef) -> bool:
        """Tell whether ``ref``'s pid now names another live process (its start time differs)."""
        start_time = process_start_time(ref.pid)
        return start_time is not None and not is_same_process(ref.pid, ref.pid_start_time)

    def signal_process(self, ref: ProcessRef, signal_number: int) -> bool:
        """Send a signal to ``ref``'s process itself if it is still the same process.

        The pidfd is opened before the identity check, so the pid cannot be recycled between
        the check and the signal.
        """
        try:
            pidfd = os.pidfd_open(ref.pid)
        except ProcessLookupError:
            return False
        try:
            if not is_same_process(ref.pid, ref.pid_start_time):
                return False
            signal.pidfd_send_signal(pidfd, signal_number)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)

    def locate(self, container_id: str, process_id: str, state_dir: Path) -> ProcessRef | None:
        """Rebuild the ``ProcessRef`` of a process started in ``state_dir`` from conmon's files.

        Used after a crash between starting a process and journaling its ref. Returns None
        unless conmon wrote both pid files and its pid still names a conmon of this container
        (or it already wrote the exit file).
        """
        state_dir = Path(state_dir)
        shim_pid = _read_pid(state_dir / "conmon.pid")
        pid = _read_pid(state_dir / "pid")
        if shim_pid is None or pid is None:
            return None
        exit_file = state_dir / "exit" / container_id
        shim_start_time = process_start_time(shim_pid)
        if shim_start_time is not None:
            try:
                shim = psutil.Process(shim_pid)
                if shim.name() != "conmon" or container_id not in shim.cmdline():
                    shim_start_time = None
            except psutil.Error:
                shim_start_time = None
        if shim_start_time is None and not exit_file.exists():
            return None
        return ProcessRef(
            container_id=container_id,
            process_id=process_id,
            pid=pid,
            pid_start_time=process_start_time(pid) or 0.0,
            shim_pid=shim_pid,
            shim_start_time=shim_start_time or 0.0,
            exit_file=str(exit_file),
            oom_file=str(state_dir / "persist" / "oom"),
            log_path=str(state_dir / "output.log"),
        )

    # -- watching --------------------------------------------------------------------------------

    def watch(self, ref: ProcessRef, on_exit: ExitCallback) -> None:
        """Call ``on_exit`` once, from the watcher thread, when ``ref``'s conmon exits.

        A conmon that is already gone is reported at once, from the same thread.
        """
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = _Watcher(self)
            watcher = self._watcher
        watcher.add(ref, on_exit)

    def unwatch(self, ref: ProcessRef) -> None:
        """Stop watching ``ref``; its callback will not be called."""
        with self._watcher_lock:
            watcher = self._watcher
        if watcher is not None:
            watcher.remove(ref)

    def close(self) -> None:
        """Stop the watcher thread; conmon processes keep running."""
        with self._watcher_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()


class _Watcher:
    """One thread that polls a pidfd per watched conmon plus a wake-up pipe."""

    def __init__(self, shim: ConmonShim) -> None:
        self._shim = shim
        self._lock = threading.Lock()
        self._by_fd: dict[int, tuple[ProcessRef, ExitCallback]] = {}
        self._by_key: dict[tuple[str, str, int], int] = {}
        self._already_exited: list[tuple[ProcessRef, ExitCallback]] = []
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._run, name="conmon-watcher", daemon=True)
        self._thread.start()

    def add(self, ref: ProcessRef, on_exit: ExitCallback) -> None:
        try:
            pidfd: int | None = os.pidfd_open(ref.shim_pid)
        except ProcessLookupError:
            pidfd = None
        # The pid may have been recycled before pidfd_open; once the pidfd exists it pins the
        # process, so one identity check after opening is enough.
        if pidfd is not None and not self._shim.shim_alive(ref):
            os.close(pidfd)
            pidfd = None

        with self._lock:
            self.remove_locked(ref)
            if pidfd is None:
                logger.debug(
                    "conmon %d of container %s is already gone", ref.shim_pid, ref.container_id
                )
                self._already_exited.append((ref, on_exit))
            else:
                self._by_fd[pidfd] = (ref, on_exit)
                self._by_key[_key(ref)] = pidfd
        self._wake()

    def remove(self, ref: ProcessRef) -> None:
        with self._lock:
            self.remove_locked(ref)
        self._wake()

    def remove_locked(self, ref: ProcessRef) -> None:
        pidfd = self._by_key.pop(_key(ref), None)
        if pidfd is not None:
            self._by_fd.pop(pidfd, None)
            os.close(pidfd)
        self._already_exited = [
            (gone, callback) for gone, callback in self._already_exited if _key(gone) != _key(ref)
        ]

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            for pidfd in self._by_fd:
                os.close(pidfd)
            self._by_fd.clear()
            self._by_key.clear()
            self._already_exited.clear()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                ready = self._already_exited
                self._already_exited = []
                poller = select.poll()
                poller.register(self._wake_read, select.POLLIN)
                for pidfd in self._by_fd:
                    poller.register(pidfd, select.POLLIN)

            for ref, on_exit in ready:
                self._report(ref, on_exit)
            if ready:
                continue

            for fd, _events in poller.poll():
                if fd == self._wake_read:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_read, 4096):
                            pass
                    continue
                with self._lock:
                    # An unwatch may have closed this fd during poll() and a new watch may have
                    # reused its number, so report only a pidfd that is readable now.
                    if fd not in self._by_fd or not _is_readable(fd):
                        continue
                    entry = self._by_fd.pop(fd)
                    self._by_key.pop(_key(entry[0]), None)
                _reap(fd)
                os.close(fd)
                self._report(*entry)

    def _report(self, ref: ProcessRef, on_exit: ExitCallback) -> None:
        try:
            info = self._shim.read_exit(ref)
            if info is None:
                # The pidfd reported conmon's exit, so no exit file now means it never wrote one.
                info = _lost(ref)
            logger.info(
                "container %s process %s exited with status %d%s",
                ref.container_id,
                ref.process_id,
                info.status,
                " (status lost)" if info.status_lost else "",
            )
            on_exit(ref, info)
        except Exception:
            # The watcher thread must survive a failing callback, or every later exit is missed.
            logger.exception(
                "exit callback for container %s process %s failed",
                ref.container_id,
                ref.process_id,
            )


def _is_readable(fd: int) -> bool:
    return wait_readable(fd, 0)


def _key(ref: ProcessRef) -> tuple[str, str, int]:
    return (ref.container_id, ref.process_id, ref.shim_pid)


def _lost(ref: ProcessRef) -> ExitInfo:
    reason = f"exit status lost: shim conmon pid {ref.shim_pid} exited without writing a status"
    return ExitInfo(status=LOST_STATUS, exited_at=_utc_now(), status_lost=True, reason=reason)


def _reap(pidfd: int) -> None:
    """Reap the exited conmon if bosun is its parent (as a child subreaper); else do nothing."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)


def _parse_exit_file(exit_file: Path, oom_file: Path) -> ExitInfo | None:
    """Read conmon's exit file: a decimal exit code, or 128+N after signal N."""
    try:
        text = exit_file.read_text().strip()
        modified = exit_file.stat().st_mtime
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        status = int(text)
    except ValueError:
        msg = f"invalid exit file {exit_file}: {text[:50]!r} is not an exit status"
        raise AdapterError(msg) from None

    # NOTE: a process that calls exit(130) reads the same as one killed by SIGINT, because
    # conmon writes both as 130; bosun reports such a status as a signal.
    signal_number = None
    if _SIGNAL_BASE < status <= _SIGNAL_BASE + _MAX_SIGNAL:
        signal_number = status - _SIGNAL_BASE
    exited_at = datetime.datetime.fromtimestamp(modified, datetime.UTC).isoformat()
    return ExitInfo(status=status, signal=signal_number, oom=oom_file.exists(), exited_at=exited_at)


def private_bundle(bundle: Path, directory: Path) -> Path:
    """Write a bundle of one process's own in ``directory`` that runs ``bundle``'s rootfs; return it.

    conmon creates its control FIFOs (``ctl``, ``winsz``) and its attach socket in the bundle
    directory, so containers created from one bundle would share them. A conmon that started
    while another replaced them exited without a word: 10 of 1000 starts from one bundle by 10
    parallel clients failed that way on the 2-core VM of docs/benchmarks.md. The copy holds only
    ``config.json``, with the root path and relative bind-mount sources made absolute, because
    the OCI runtime resolves relative paths against the bundle directory.
    """
    bundle = bundle.absolute()
    config = json.loads((bundle / "config.json").read_text())
    root = config.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str) and not os.path.isabs(root["path"]):
        root["path"] = str(bundle / root["path"])
    for mount in config.get("mounts") or []:
        source = mount.get("source")
        binds = mount.get("type") == "bind" or {"bind", "rbind"} & set(mount.get("options") or [])
        if binds and isinstance(source, str) and not os.path.isabs(source):
            mount["source"] = str(bundle / source)

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _read_sync_message(read_fd: int, deadline: float) -> dict[str, Any] | None:
    """Read conmon's first JSON message from the sync pipe; None when conmon closed it silently.

    Raises ``TimeoutError`` when nothing complete arrived before ``deadline``.
    """
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if not wait_readable(read_fd, remaining):
            raise TimeoutError
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0].strip()
    if not line:
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        # Report the unparsable text as a start failure, quoted, rather than as a JSON error.
        return {"data": -1, "message": f"invalid sync pipe message {line[:200]!r}"}
    if not isinstance(message, dict):
        return {"data": -1, "message": f"invalid sync pipe message {line[:200]!r}"}
    return message


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _kill_process_group(pid: int) -> bool:
    """SIGKILL ``pid`` and, when it leads one, its process group (conmon and its runtime child)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    _wait_gone(pid)
    return True


def _kill_pid(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    _wait_gone(pid)
    return True


def _wait_gone(pid: int) -> None:
    """Wait until ``pid`` has exited, at most ``_KILL_WAIT`` seconds, using a pidfd."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        wait_readable(pidfd, _KILL_WAIT)
        _reap(pidfd)
    finally:
        os.close(pidfd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class _FdGuard(contextlib.AbstractContextManager["_FdGuard"]):
    """Close an fd once, either early by hand or when the enclosing stack unwinds."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            _close_quietly(self.fd)
            self.fd = None

    def __exit__(self, *exc_info: object) -> None:
        self.close()
