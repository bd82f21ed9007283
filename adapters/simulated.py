"""A simulated OCI runtime and shim that share one in-memory world, for tests.

``SimulatedRuntime`` implements ``adapters.base.Runtime`` and ``SimulatedShim`` implements
``adapters.base.Shim``. Both act on a ``SimulatedWorld``, which contains containers and processes
with invented but consistent pids and start times. No process is started and no file is read.
The only files written are the checkpoint image and work directories, because callers expect
the image path a checkpoint names to exist.

The world has no clock. Start times and exit times come from a counter that advances on every
event, so two runs of the same test see the same values.

What the simulation mirrors from runc 1.1 and conmon:

- status rules and error messages of ``start``, ``pause``, ``resume``, ``kill``, ``delete`` and
  ``exec`` (for example "cannot delete container web that is not stopped: running");
- an init killed by signal N exits with status 128+N, and when init exits every exec process of
  the container dies with SIGKILL, as the kernel does when a pid namespace's init dies;
- ``delete`` of a created container kills its init; ``delete --force`` of a live one kills it
  with SIGKILL, records the exit, then removes the container;
- the shim records each exit exactly once and then exits; a watch fires when the shim exits.

Rules the simulation picks where real systems differ:

- Signals to a paused container: SIGKILL is delivered at once (the cgroup v2 freezer lets a fatal
  signal through), and any other signal is queued and delivered on resume.
- A signal terminates a process unless its default action is to ignore or stop (SIGCHLD,
  SIGURG, SIGWINCH, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) or the bundle was configured to
  ignore it with ``SimulatedWorld.configure_bundle``. Stopped (as in SIGSTOP) processes are not
  modelled.
- A checkpoint without ``leave_running`` ends the container's processes as SIGKILL would
  (status 137). A restore brings back the init process only, with a new pid and a new shim.

Exit callbacks run on one dispatcher thread per world, in the order the exits happened, as the
real shim's single watcher thread runs them. With ``SimulatedWorld(sync_callbacks=True)`` they
run inline, in the thread that caused the exit, before that call returns; that is simpler for
tests whose callbacks take no locks the caller holds. ``SimulatedWorld.drain`` waits until every
queued callback has run.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import json
import logging
import queue
import signal as signals
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.base import (
    AdapterError,
    ContainerNotFound,
    ExitInfo,
    ProcessRef,
    ProcessSpec,
    RuntimeCommandError,
    RuntimeState,
    ShimError,
    ShimTimeout,
)

logger = logging.getLogger(__name__)

INIT = "init"
LOST_STATUS = 255  # the status the shim port reports when no status was written
SIGNAL_BASE = 128  # a process killed by signal N exits with 128+N, as shells and conmon report it
DEFAULT_TIMEOUT = 30.0  # the runtime call timeout named in simulated "timed out" messages

# Signals whose default action is to ignore the signal or to stop the process (signal(7)).
_NON_TERMINATING = frozenset({
    signals.SIGCHLD, signals.SIGURG, signals.SIGWINCH, signals.SIGCONT,
    signals.SIGSTOP, signals.SIGTSTP, signals.SIGTTIN, signals.SIGTTOU,
})
# The logical clock's zero: exit times are this plus one second per tick.
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
# The first pid handed out; low pids belong to the host.
_FIRST_PID = 1000

# Operation names accepted by fail_next, stall_next, die_at and hooks.
RUNTIME_OPERATIONS = frozenset({
    "state", "list", "start", "kill", "pause", "resume", "delete", "pids", "stats", "update",
    "checkpoint",
})
SHIM_OPERATIONS = frozenset({
    "create", "exec", "restore", "read_exit", "shim_alive", "process_alive", "pid_reused",
    "signal_process", "locate", "watch", "unwatch",
})
OPERATIONS = RUNTIME_OPERATIONS | SHIM_OPERATIONS
_SHIM_STARTS = frozenset({"create", "exec", "restore"})

ExitCallback = Callable[[ProcessRef, ExitInfo], None]


class SimulatedCrash(BaseException):
    """Raised by ``SimulatedWorld.die_at`` to stand for the daemon dying inside a call.

    It derives from ``BaseException`` so that ``except Exception`` handlers in the code under
    test let it through, as nothing catches a real crash.
    """

    def __init__(self, operation: str, phase: str, container_id: str | None) -> None:
        self.operation = operation
        self.phase = phase
        self.container_id = container_id
        super().__init__(f"simulated crash {phase} {operation} of container {container_id}")


@dataclasses.dataclass(frozen=True)
class SimulatedCall:
    """One adapter call as hooks see it; ``phase`` is "before" or "after" the call's effect."""

    operation: str
    container_id: str | None
    process_id: str | None
    phase: str


Hook = Callable[[SimulatedCall], None]


@dataclasses.dataclass
class BundleConfig:
    """Behaviour of containers made from one bundle path."""

    ignore_signals: frozenset[int] = frozenset()
    create_error: str | None = None  # the runtime's message when create from this bundle fails


@dataclasses.dataclass
class SimulatedProcess:
    """One process and its shim."""

    container_id: str
    process_id: str
    pid: int
    pid_start_time: float
    shim_pid: int
    shim_start_time: float
    state_dir: str
    args: list[str]
    alive: bool = True
    shim_alive: bool = True
    exit: ExitInfo | None = None  # what the shim wrote; None while running or when lost
    lost: ExitInfo | None = None  # what read_exit reports after the shim died without a status
    lose_exit: bool = False  # the shim dies with the process and writes no status
    pid_recycled: bool = False

    def ref(self) -> ProcessRef:
        """The ``ProcessRef`` that a shim start returns for this process."""
        return ProcessRef(
            container_id=self.container_id,
            process_id=self.process_id,
            pid=self.pid,
            pid_start_time=self.pid_start_time,
            shim_pid=self.shim_pid,
            shim_start_time=self.shim_start_time,
            exit_file=f"{self.state_dir}/exit/{self.container_id}",
            oom_file=f"{self.state_dir}/persist/oom",
            log_path=f"{self.state_dir}/output.log",
        )


@dataclasses.dataclass
class SimulatedContainer:
    """One runtime container."""

    id: str
    bundle: str
    status: str  # OCI status: "created", "running", "paused" or "stopped"
    created: str
    config: BundleConfig
    processes: dict[str, SimulatedProcess] = dataclasses.field(default_factory=dict)
    status_before_pause: str | None = None
    queued_signals: list[tuple[int, bool]] = dataclasses.field(default_factory=list)
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def init(self) -> SimulatedProcess:
        """The container's init process."""
        return self.processes[INIT]


@dataclasses.dataclass
class _Fault:
    kind: str  # "fail" or "stall"
    operation: str
    container_id: str | None
    message: str = ""
    applied: bool = False


class SimulatedWorld:
    """In-memory containers and processes shared by a ``SimulatedRuntime`` and ``SimulatedShim``.

    Tests drive reality through it: faults for the next adapter call (``fail_next``,
    ``stall_next``, ``die_at``, ``add_hook``) and events that happen behind bosun's back
    (``exit_process``, ``kill_shim``, ``lose_exit``, ``pause_behind_back``,
    ``resume_behind_back``, ``recycle_pid``). All methods are thread-safe.
    """

    def __init__(self, *, sync_callbacks: bool = False) -> None:
        self.sync_callbacks = sync_callbacks
        self.containers: dict[str, SimulatedContainer] = {}
        # Every process ever started, by (container, process, shim pid), so a shim's record
        # outlives its container the way conmon's exit file does.
        self.processes: dict[tuple[str, str, int], SimulatedProcess] = {}
        self.checkpoints: dict[str, dict[str, Any]] = {}  # image path -> what was dumped
        self.calls: list[SimulatedCall] = []  # every call, "before" phase only
        self._bundles: dict[str, BundleConfig] = {}
        self._foreign_pids: dict[int, float] = {}  # recycled pids now used by other processes
        self._lock = threading.RLock()
        self._ticks = 0
        self._next_pid = _FIRST_PID
        self._faults: list[_Fault] = []
        self._hooks: list[Hook] = []
        self._watches: dict[tuple[str, str, int], list[tuple[object, ExitCallback]]] = (
            collections.defaultdict(list)
        )
        self._queue: queue.Queue[tuple[ProcessRef, ExitInfo, ExitCallback] | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None

    # -- configuration and fault injection -------------------------------------------------------

    def configure_bundle(self, bundle: Path | str, *, ignore_signals: Sequence[int] = (),
                         create_error: str | None = None) -> None:
        """Set how containers created from ``bundle`` behave.

        ``ignore_signals`` are signals that the container's processes handle and survive, as a
        process that traps SIGTERM does. ``create_error`` makes every create from the bundle
        fail with that runtime message.
        """
        with self._lock:
            self._bundles[str(bundle)] = BundleConfig(frozenset(ignore_signals), create_error)

    def fail_next(self, operation: str, message: str, *, container_id: str | None = None) -> None:
        """Make the next call of ``operation`` (on ``container_id`` if given) fail with ``message``.

        The call has no effect. Runtime operations raise ``RuntimeCommandError``, shim starts
        raise ``ShimError`` and the other shim operations raise ``AdapterError``.
        """
        self._add_fault(_Fault("fail", operation, container_id, message))

    def stall_next(self, operation: str, *, container_id: str | None = None,
                   applied: bool = False) -> None:
        """Make the next call of ``operation`` time out.

        A runtime operation raises ``RuntimeCommandError`` "timed out after 30 s"; with
        ``applied`` its effect happened first, because a timeout does not prove the runtime did
        nothing. A shim start raises ``ShimTimeout`` and leaves nothing behind, as the real shim
        kills conmon and the runtime container after a timeout.
        """
        # A shim start that timed out is cleaned up, so its effect never remains.
        applied = applied and operation not in _SHIM_STARTS
        self._add_fault(_Fault("stall", operation, container_id, applied=applied))

    def die_at(self, operation: str, *, phase: str = "after",
               container_id: str | None = None) -> None:
        """Raise ``SimulatedCrash`` once, at ``phase`` of the next call of ``operation``.

        With phase "after" the call's effect has happened but the caller never learns of it,
        which is what a daemon crash between a runtime call and its journal append leaves.
        """
        self._check_operation(operation)
        if phase not in ("before", "after"):
            msg = f"invalid phase {phase!r}: expected 'before' or 'after'"
            raise ValueError(msg)
        fired = False

        def crash(call: SimulatedCall) -> None:
            nonlocal fired
            if fired or call.operation != operation or call.phase != phase:
                return
            if container_id is not None and call.container_id != container_id:
                return
            fired = True
            raise SimulatedCrash(operation, phase, call.container_id)

        self.add_hook(crash)

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook`` before and after every adapter call; an exception it raises propagates."""
        with self._lock:
            self._hooks.append(hook)

    def remove_hook(self, hook: Hook) -> None:
        """Stop calling ``hook``."""
        with self._lock:
            self._hooks.remove(hook)

    # -- events behind bosun's back --------------------------------------------------------------

    def exit_process(self, container_id: str, process_id: str, status: int,
                     signal: int | None = None, oom: bool = False) -> None:
        """End a process as if it exited on its own (or was killed from outside bosun).

        The shim records the exit (unless ``lose_exit`` was called) and exits, and watches fire.
        When init exits, the container stops and its exec processes die with SIGKILL.
        """
        with self._lock:
            process = self._live_process(container_id, process_id)
            self._end_process(process, status, signal, oom)

    def signal_process(self, container_id: str, process_id: str, signal: int) -> None:
        """Deliver ``signal`` to one process, as ``os.kill`` on its pid would."""
        with self._lock:
            container = self._container(container_id, "kill")
            process = self._live_process(container_id, process_id)
            self._deliver(container, [process], signal)

    def kill_shim(self, container_id: str, process_id: str) -> None:
        """Kill the shim of a process; the process keeps running, and its exit will be lost.

        Watches fire now, reporting the exit status as lost, as the real watcher does when
        conmon dies.
        """
        with self._lock:
            process = self._live_process(container_id, process_id, shim=True)
            reason = f"shim pid {process.shim_pid} was killed before the process exited"
            self._lose(process, reason)
            self._fire_watches(process)

    def lose_exit(self, container_id: str, process_id: str) -> None:
        """Make the shim die without writing a status when the process next exits."""
        with self._lock:
            self._live_process(container_id, process_id).lose_exit = True

    def pause_behind_back(self, container_id: str) -> None:
        """Freeze a running container without any runtime call from bosun.

        Raises ``ValueError`` with the runtime's message when the container cannot be paused.
        """
        with self._lock, _as_value_error("pause", container_id):
            self._pause(self._container(container_id, "pause"))

    def resume_behind_back(self, container_id: str) -> None:
        """Thaw a paused container without any runtime call from bosun.

        Raises ``ValueError`` with the runtime's message when the container is not paused.
        """
        with self._lock, _as_value_error("resume", container_id):
            self._resume(self._container(container_id, "resume"))

    def recycle_pid(self, container_id: str, process_id: str) -> None:
        """Give the pid of a process to an unrelated process.

        A process still alive exits first (status 137, as after SIGKILL) and its shim records
        the exit. Then the pid is in use again with another start time. ``process_alive`` on
        the old ``ProcessRef`` is therefore false, while ``pid_in_use`` shows the pid taken.
        """
        with self._lock:
            process = self._known_process(container_id, process_id)
            if process.alive:
                self._end_process(process, SIGNAL_BASE + signals.SIGKILL, signals.SIGKILL, False)
            process.pid_recycled = True
            self._foreign_pids[process.pid] = self._tick()

    # -- inspection ------------------------------------------------------------------------------

    def status(self, container_id: str) -> str | None:
        """Return the OCI status of a container, or None when the runtime has no such container."""
        with self._lock:
            container = self.containers.get(container_id)
            return container.status if container is not None else None

    def process(self, container_id: str, process_id: str) -> SimulatedProcess:
        """Return the latest process named ``process_id`` of a container, alive or not."""
        with self._lock:
            return self._known_process(container_id, process_id)

    def pid_in_use(self, pid: int) -> float | None:
        """Return the start time of the live process with ``pid``, or None (like psutil)."""
        with self._lock:
            if pid in self._foreign_pids:
                return self._foreign_pids[pid]
            for process in self.processes.values():
                if process.pid == pid and process.alive:
                    return process.pid_start_time
                if process.shim_pid == pid and process.shim_alive:
                    return process.shim_start_time
            return None

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued exit callback has run; raise ``TimeoutError`` if they do not."""
        if self.sync_callbacks or self._dispatcher is None:
            return
        done = threading.Event()
        self._queue.put((_DRAIN_REF, _DRAIN_INFO, lambda ref, info: done.set()))
        if not done.wait(timeout):
            msg = f"exit callbacks did not finish within {timeout:g} s"
            raise TimeoutError(msg)

    def close(self) -> None:
        """Stop the dispatcher thread after the callbacks already queued."""
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            self._queue.put(None)
            dispatcher.join(timeout=5.0)

    # -- calls from the adapters -----------------------------------------------------------------

    @contextlib.contextmanager
    def call(self, operation: str, container_id: str | None, process_id: str | None,
             error: Callable[[str, bool], BaseException]) -> Iterator[None]:
        """Run one adapter call: hooks, then injected faults, the body, the "after" hooks.

        ``error(message, timed_out)`` builds the adapter's own exception for an injected fault.
        """
        self._run_hooks(SimulatedCall(operation, container_id, process_id, "before"))
        fault = self._take_fault(operation, container_id)
        if fault is not None and fault.kind == "fail":
            raise error(fault.message, False)
        if fault is not None and not fault.applied:
            raise error("", True)

        yield

        self._run_hooks(SimulatedCall(operation, container_id, process_id, "after"))
        if fault is not None:
            raise error("", True)

    def watch(self, owner: object, ref: ProcessRef, on_exit: ExitCallback) -> None:
        """Register ``on_exit`` for the shim of ``ref``; fire at once if that shim is gone."""
        with self._lock:
            key = _key(ref)
            process = self.processes.get(key)
            if process is None:
                msg = f"no shim pid {ref.shim_pid} for container {ref.container_id} process {ref.process_id}"
                raise AdapterError(msg)
            if process.shim_alive:
                self._watches[key].append((owner, on_exit))
                return
            self._dispatch(ref, self.exit_info(process), on_exit)

    def unwatch(self, owner: object, ref: ProcessRef | None = None) -> None:
        """Remove the watches ``owner`` placed, on ``ref`` only if given."""
        with self._lock:
            keys = [_key(ref)] if ref is not None else list(self._watches)
            for key in keys:
                self._watches[key] = [entry for entry in self._watches[key] if entry[0] is not owner]

    def exit_info(self, process: SimulatedProcess) -> ExitInfo:
        """Return what the shim reports for a process whose shim is gone."""
        if process.exit is not None:
            return process.exit
        if process.lost is not None:
            return process.lost
        return self._lose(process, f"shim pid {process.shim_pid} exited without writing a status")

    def _lose(self, process: SimulatedProcess, cause: str) -> ExitInfo:
        process.shim_alive = False
        process.lost = ExitInfo(status=LOST_STATUS, exited_at=self._now(), status_lost=True,
                                reason=f"exit status lost: {cause}")
        return process.lost

    # -- the runtime's rules ---------------------------------------------------------------------

    def _container(self, container_id: str, operation: str) -> SimulatedContainer:
        container = self.containers.get(container_id)
        if container is None:
            # runc 1.1 reports a missing container this way for every command.
            raise ContainerNotFound(operation, container_id, "container does not exist",
                                    argv=[operation, container_id], exit_status=1)
        return container

    def _create(self, container_id: str, bundle: str, state_dir: str,
                args: list[str]) -> SimulatedProcess:
        if container_id in self.containers:
            raise _RuntimeFailure("container with given ID already exists")
        config = self._bundles.get(bundle, BundleConfig())
        if config.create_error is not None:
            raise _RuntimeFailure(config.create_error)
        container = SimulatedContainer(
            id=container_id, bundle=bundle, status="created", created=self._now(), config=config,
        )
        self.containers[container_id] = container
        return self._spawn(container, INIT, state_dir, args)

    def _spawn(self, container: SimulatedContainer, process_id: str, state_dir: str,
               args: list[str]) -> SimulatedProcess:
        shim_pid, shim_start = self._allocate_pid()
        pid, start = self._allocate_pid()
        process = SimulatedProcess(
            container_id=container.id, process_id=process_id, pid=pid, pid_start_time=start,
            shim_pid=shim_pid, shim_start_time=shim_start, state_dir=state_dir, args=list(args),
        )
        container.processes[process_id] = process
        self.processes[_key(process.ref())] = process
        return process

    def _start(self, container: SimulatedContainer) -> None:
        # runc 1.1 start: only a created container can start.
        messages = {
            "running": "cannot start an already running container",
            "stopped": "cannot start a container that has stopped",
        }
        if container.status != "created":
            raise _RuntimeFailure(messages.get(
                container.status, f"cannot start a container in the {container.status} state"
            ))
        container.status = "running"

    def _pause(self, container: SimulatedContainer) -> None:
        # runc 1.1 freezes created and running containers alike.
        if container.status not in ("created", "running"):
            raise _RuntimeFailure("container not running")
        container.status_before_pause = container.status
        container.status = "paused"

    def _resume(self, container: SimulatedContainer) -> None:
        if container.status != "paused":
            raise _RuntimeFailure("container not paused")
        container.status = container.status_before_pause or "running"
        container.status_before_pause = None
        queued, container.queued_signals = container.queued_signals, []
        for signal, all_processes in queued:
            if container.status == "stopped":
                # An earlier queued signal ended init, and with it every process the rest
                # were meant for.
                break
            self._kill(container, signal, all_processes=all_processes)

    def _kill(self, container: SimulatedContainer, signal: int, *, all_processes: bool) -> None:
        # runc 1.1 rejects a kill of a stopped container unless --all is given.
        if container.status == "stopped" and not all_processes:
            raise _RuntimeFailure("container not running")
        if container.status == "paused" and signal != signals.SIGKILL:
            container.queued_signals.append((signal, all_processes))
            return
        targets = [p for p in container.processes.values() if p.alive]
        if not all_processes:
            targets = [p for p in targets if p.process_id == INIT]
        self._deliver(container, targets, signal)

    def _deliver(self, container: SimulatedContainer, targets: list[SimulatedProcess],
                 signal: int) -> None:
        # SIGKILL cannot be caught, so a bundle's ignore list does not apply to it.
        ignored = signal in container.config.ignore_signals and signal != signals.SIGKILL
        if signal in _NON_TERMINATING or ignored:
            return
        for process in targets:
            if process.alive:
                self._end_process(process, SIGNAL_BASE + signal, signal, False)

    def _delete(self, container: SimulatedContainer, *, force: bool) -> None:
        # runc 1.1 delete: a stopped container is removed, a created one is killed first, and
        # any other needs --force.
        if container.status in ("running", "paused") and not force:
            raise _RuntimeFailure(
                f"cannot delete container {container.id} that is not stopped: {container.status}"
            )
        if container.status != "stopped":
            container.queued_signals = []
            self._kill(container, signals.SIGKILL, all_processes=True)
        del self.containers[container.id]

    def _update(self, container: SimulatedContainer, resources: Mapping[str, Any]) -> None:
        # NOTE: the message is modelled on runc's other status errors, not copied from runc's
        # update command.
        if container.status == "stopped":
            raise _RuntimeFailure("container not running")
        container.resources = _merge(container.resources, resources)

    def _checkpoint(self, container: SimulatedContainer, image_path: Path, work_path: Path,
                    leave_running: bool) -> None:
        if container.status != "running":
            raise _RuntimeFailure("container not running")
        image_path.mkdir(parents=True, exist_ok=True)
        work_path.mkdir(parents=True, exist_ok=True)
        dump = {"container_id": container.id, "bundle": container.bundle,
                "args": container.init.args, "resources": container.resources}
        (image_path / "simulated-dump.json").write_text(json.dumps(dump))
        self.checkpoints[str(image_path)] = dump
        if not leave_running:
            # CRIU ends the dumped tasks, and the shim records them as killed by SIGKILL.
            self._deliver(container, list(container.processes.values()), signals.SIGKILL)

    def _restore(self, container_id: str, bundle: str, state_dir: str,
                 image_path: Path) -> SimulatedProcess:
        if container_id in self.containers:
            raise _RuntimeFailure("container with given ID already exists")
        dump = self.checkpoints.get(str(image_path))
        if dump is None:
            raise _RuntimeFailure(f"no checkpoint image in {image_path}")
        process = self._create(container_id, bundle, state_dir, list(dump["args"]))
        container = self.containers[container_id]
        container.resources = dict(dump["resources"])
        container.status = "running"
        return process

    def _exec(self, container: SimulatedContainer, exec_id: str, spec: ProcessSpec,
              state_dir: str) -> SimulatedProcess:
        if container.status == "stopped":
            raise _RuntimeFailure("cannot exec in a stopped container")
        if container.status == "paused":
            raise _RuntimeFailure("cannot exec in a paused container (use --ignore-paused to override)")
        existing = container.processes.get(exec_id)
        if existing is not None and existing.alive:
            raise _RuntimeFailure(f"exec id {exec_id} is already running")
        return self._spawn(container, exec_id, state_dir, spec.args)

    def _end_process(self, process: SimulatedProcess, status: int, signal: int | None,
                     oom: bool) -> None:
        process.alive = False
        if process.shim_alive:
            if process.lose_exit:
                self._lose(process, f"shim pid {process.shim_pid} exited without writing a status")
            else:
                process.shim_alive = False
                process.exit = ExitInfo(status=status, signal=signal, oom=oom,
                                        exited_at=self._now())
            self._fire_watches(process)

        container = self.containers.get(process.container_id)
        if process.process_id != INIT or container is None or container.init is not process:
            return
        container.status = "stopped"
        container.status_before_pause = None
        container.queued_signals = []
        # When a pid namespace's init dies, the kernel kills every other process in it.
        for other in container.processes.values():
            if other.alive:
                self._end_process(other, SIGNAL_BASE + signals.SIGKILL, signals.SIGKILL, False)

    # -- plumbing --------------------------------------------------------------------------------

    def _live_process(self, container_id: str, process_id: str,
                      shim: bool = False) -> SimulatedProcess:
        process = self._known_process(container_id, process_id)
        alive = process.shim_alive if shim else process.alive
        if not alive:
            subject = "shim of process" if shim else "process"
            msg = f"{subject} {process_id} of container {container_id} is not running"
            raise ValueError(msg)
        return process

    def _known_process(self, container_id: str, process_id: str) -> SimulatedProcess:
        container = self.containers.get(container_id)
        if container is not None and process_id in container.processes:
            return container.processes[process_id]
        matches = [p for key, p in self.processes.items() if key[:2] == (container_id, process_id)]
        if not matches:
            msg = f"container {container_id} has no process {process_id}"
            raise KeyError(msg)
        return matches[-1]

    def _fire_watches(self, process: SimulatedProcess) -> None:
        ref = process.ref()
        info = self.exit_info(process)
        for _, on_exit in self._watches.pop(_key(ref), []):
            self._dispatch(ref, info, on_exit)

    def _dispatch(self, ref: ProcessRef, info: ExitInfo, on_exit: ExitCallback) -> None:
        if self.sync_callbacks:
            _run_callback(ref, info, on_exit)
            return
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch_loop, name="simulated-shim-watcher", daemon=True
            )
            self._dispatcher.start()
        self._queue.put((ref, info, on_exit))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            _run_callback(*item)

    def _run_hooks(self, call: SimulatedCall) -> None:
        with self._lock:
            if call.phase == "before":
                self.calls.append(call)
            hooks = list(self._hooks)
        for hook in hooks:
            hook(call)

    def _add_fault(self, fault: _Fault) -> None:
        self._check_operation(fault.operation)
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, operation: str, container_id: str | None) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.operation != operation:
                    continue
                if fault.container_id is not None and fault.container_id != container_id:
                    continue
                return self._faults.pop(index)
            return None

    @staticmethod
    def _check_operation(operation: str) -> None:
        if operation not in OPERATIONS:
            msg = f"invalid operation {operation!r}: expected one of {', '.join(sorted(OPERATIONS))}"
            raise ValueError(msg)

    def _tick(self) -> float:
        self._ticks += 1
        return float(self._ticks)

    def _now(self) -> str:
        return (_EPOCH + datetime.timedelta(seconds=self._tick())).isoformat()

    def _allocate_pid(self) -> tuple[int, float]:
        pid = self._next_pid
        self._next_pid += 1
        return pid, self._tick()


class SimulatedRuntime:
    """An ``adapters.base.Runtime`` acting on a ``SimulatedWorld``."""

    name = "simulated"

    def __init__(self, world: SimulatedWorld, root: Path | str = "/run/bosun/simulated") -> None:
        self.world = world
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SimulatedRuntime(root={str(self.root)!r})"

    @contextlib.contextmanager
    def _call(self, operation: str, container_id: str) -> Iterator[None]:
        def error(message: str, timed_out: bool) -> BaseException:
            if timed_out:
                message = f"timed out after {DEFAULT_TIMEOUT:g} s"
            return RuntimeCommandError(operation, container_id, message,
                                       argv=[operation, container_id], exit_status=1)

        with self.world.call(operation, container_id, None, error):
            with self.world._lock:
                try:
                    yield
                except _RuntimeFailure as exc:
                    raise error(exc.message, False) from None

    def state(self, container_id: str) -> RuntimeState:
        """Return the container's OCI state as ``runtime state`` would."""
        with self._call("state", container_id):
            container = self.world._container(container_id, "state")
            return _runtime_state(container)

    def list(self) -> list[RuntimeState]:
        """Return the state of every container the runtime has."""
        with self._call("list", ""):
            return [_runtime_state(c) for c in self.world.containers.values()]

    def start(self, container_id: str) -> None:
        """Run the created container's user process."""
        with self._call("start", container_id):
            self.world._start(self.world._container(container_id, "start"))

    def kill(self, container_id: str, signal: int, *, all_processes: bool = False) -> None:
        """Send ``signal`` to init, or to every process with ``all_processes``."""
        with self._call("kill", container_id):
            container = self.world._container(container_id, "kill")
            self.world._kill(container, signal, all_processes=all_processes)

    def pause(self, container_id: str) -> None:
        """Freeze the container."""
        with self._call("pause", container_id):
            self.world._pause(self.world._container(container_id, "pause"))

    def resume(self, container_id: str) -> None:
        """Thaw the container and deliver the signals queued while it was paused."""
        with self._call("resume", container_id):
            self.world._resume(self.world._container(container_id, "resume"))

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove the container; ``force`` kills a running or paused one first."""
        with self._call("delete", container_id):
            self.world._delete(self.world._container(container_id, "delete"), force=force)

    def pids(self, container_id: str) -> list[int]:
        """Return the pids of the container's live processes."""
        with self._call("pids", container_id):
            container = self.world._container(container_id, "pids")
            return [p.pid for p in container.processes.values() if p.alive]

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one invented sample shaped like ``runc events --stats`` data."""
        with self._call("stats", container_id):
            container = self.world._container(container_id, "events")
            if container.status == "stopped":
                raise _RuntimeFailure("container not running")
            live = [p for p in container.processes.values() if p.alive]
            return {
                "cpu": {"usage": {"total": 1_000_000 * len(live)}},
                "memory": {"usage": {"usage": 4 << 20, "limit": _memory_limit(container)}},
                "pids": {"current": len(live)},
            }

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Merge OCI ``linux.resources`` values into the container's."""
        with self._call("update", container_id):
            self.world._update(self.world._container(container_id, "update"), resources)

    def checkpoint(self, container_id: str, image_path: Path, *, work_path: Path,
                   leave_running: bool = False, options: Sequence[str] = ()) -> None:
        """Record a dump of the container in ``image_path``; without ``leave_running`` it stops."""
        with self._call("checkpoint", container_id):
            container = self.world._container(container_id, "checkpoint")
            self.world._checkpoint(container, Path(image_path), Path(work_path), leave_running)


class SimulatedShim:
    """An ``adapters.base.Shim`` acting on a ``SimulatedWorld``.

    Several shims may share a world, as a restarted daemon meets the conmons of the last one.
    Each shim keeps its own watches, and ``close`` drops only those.
    """

    def __init__(self, world: SimulatedWorld) -> None:
        self.world = world

    def __repr__(self) -> str:
        return "SimulatedShim()"

    @contextlib.contextmanager
    def _start_call(self, operation: str, container_id: str, process_id: str,
                    timeout: float) -> Iterator[None]:
        def error(message: str, timed_out: bool) -> BaseException:
            if timed_out:
                # Nothing was created, which is what the real shim's cleanup leaves.
                message = f"conmon did not report a pid within {timeout:g} s; killed the container"
                return ShimTimeout(container_id, message, process_id=process_id)
            return ShimError(container_id, message, process_id=process_id)

        with self.world.call(operation, container_id, process_id, error):
            with self.world._lock:
                try:
                    yield
                except _RuntimeFailure as exc:
                    raise ShimError(container_id, exc.message, process_id=process_id) from None

    @contextlib.contextmanager
    def _query_call(self, operation: str, ref: ProcessRef) -> Iterator[None]:
        def error(message: str, timed_out: bool) -> BaseException:
            if timed_out:
                message = f"{operation} timed out"
            return AdapterError(
                f"{operation} failed for container {ref.container_id} process {ref.process_id}: {message}"
            )

        with self.world.call(operation, ref.container_id, ref.process_id, error):
            with self.world._lock:
                yield

    def create(self, container_id: str, bundle: Path, state_dir: Path, *,
               exit_command: Sequence[str] | None = None, timeout: float = 30.0) -> ProcessRef:
        """Create the container under a new simulated shim; it is left in ``created``."""
        with self._start_call("create", container_id, INIT, timeout):
            process = self.world._create(container_id, str(bundle), str(state_dir), [])
            return process.ref()

    def exec(self, container_id: str, exec_id: str, process: ProcessSpec, state_dir: Path, *,
             exit_command: Sequence[str] | None = None, timeout: float = 30.0) -> ProcessRef:
        """Start ``process`` in the container under a new simulated shim."""
        with self._start_call("exec", container_id, exec_id, timeout):
            container = self.world.containers.get(container_id)
            if container is None:
                raise _RuntimeFailure("container does not exist")
            return self.world._exec(container, exec_id, process, str(state_dir)).ref()

    def restore(self, container_id: str, bundle: Path, state_dir: Path, image_path: Path, *,
                options: Sequence[str] = (), exit_command: Sequence[str] | None = None,
                timeout: float = 60.0) -> ProcessRef:
        """Restore the container from a simulated checkpoint image; it runs afterwards."""
        with self._start_call("restore", container_id, INIT, timeout):
            process = self.world._restore(container_id, str(bundle), str(state_dir),
                                          Path(image_path))
            return process.ref()

    def read_exit(self, ref: ProcessRef) -> ExitInfo | None:
        """Return the exit the shim recorded, None while the shim runs, or a lost status."""
        with self._query_call("read_exit", ref):
            process = self.world.processes.get(_key(ref))
            if process is None:
                msg = f"no shim pid {ref.shim_pid} for container {ref.container_id} process {ref.process_id}"
                raise AdapterError(msg)
            if process.shim_alive:
                return None
            return self.world.exit_info(process)

    def shim_alive(self, ref: ProcessRef) -> bool:
        """Tell whether the shim of ``ref`` still runs."""
        with self._query_call("shim_alive", ref):
            process = self.world.processes.get(_key(ref))
            return process is not None and process.shim_alive

    def process_alive(self, ref: ProcessRef) -> bool:
        """Tell whether the process of ``ref`` still runs (a recycled pid does not count)."""
        with self._query_call("process_alive", ref):
            process = self.world.processes.get(_key(ref))
            return process is not None and process.alive and not process.pid_recycled

    def pid_reused(self, ref: ProcessRef) -> bool:
        """Tell whether the pid of ``ref`` now names another live process."""
        with self._query_call("pid_reused", ref):
            process = self.world.processes.get(_key(ref))
            return process is not None and process.pid_recycled and ref.pid in self.world._foreign_pids

    def signal_process(self, ref: ProcessRef, signal: int) -> bool:
        """Deliver ``signal`` to the process of ``ref`` if it still runs; tell whether it did."""
        with self._query_call("signal_process", ref):
            process = self.world.processes.get(_key(ref))
            if process is None or not process.alive or process.pid_recycled:
                return False
            container = self.world.containers.get(ref.container_id)
            if container is None:
                return False
            self.world._deliver(container, [process], signal)
            return True

    def locate(self, container_id: str, process_id: str, state_dir: Path) -> ProcessRef | None:
        """Return the ref of the newest process ``process_id`` started in ``state_dir``, if any."""
        with self.world.call("locate", container_id, process_id, lambda message, timed_out: ShimError(container_id, message, process_id=process_id)):
            with self.world._lock:
                found = [
                    process for (cid, pid_name, _), process in self.world.processes.items()
                    if cid == container_id and pid_name == process_id and process.state_dir == str(state_dir)
                ]
                return found[-1].ref() if found else None

    def watch(self, ref: ProcessRef, on_exit: ExitCallback) -> None:
        """Call ``on_exit`` once when the shim of ``ref`` exits; at once if it already has."""
        with self._query_call("watch", ref):
            self.world.watch(self, ref, on_exit)

    def unwatch(self, ref: ProcessRef) -> None:
        """Stop watching ``ref``."""
        with self._query_call("unwatch", ref):
            self.world.unwatch(self, ref)

    def close(self) -> None:
        """Drop every watch of this shim; simulated shims keep running."""
        self.world.unwatch(self)


class _RuntimeFailure(Exception):
    """A runtime rule failed; the adapter turns it into its own error with ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@contextlib.contextmanager
def _as_value_error(operation: str, container_id: str) -> Iterator[None]:
    """Turn a runtime rule failure inside a test-driven event into ``ValueError``."""
    try:
        yield
    except _RuntimeFailure as exc:
        msg = f"cannot {operation} container {container_id}: {exc.message}"
        raise ValueError(msg) from None


def _key(ref: ProcessRef) -> tuple[str, str, int]:
    return (ref.container_id, ref.process_id, ref.shim_pid)


def _runtime_state(container: SimulatedContainer) -> RuntimeState:
    init = container.processes.get(INIT)
    pid = init.pid if init is not None and init.alive else 0
    return RuntimeState(id=container.id, status=container.status, pid=pid,
                        bundle=container.bundle, created=container.created)


def _memory_limit(container: SimulatedContainer) -> int:
    limit = container.resources.get("memory", {}).get("limit")
    return int(limit) if limit is not None else 0


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _run_callback(ref: ProcessRef, info: ExitInfo, on_exit: ExitCallback) -> None:
    try:
        on_exit(ref, info)
    except Exception:
        # Like the real watcher, survive a failing callback so later exits are still reported.
        logger.exception("exit callback for container %s process %s failed",
                         ref.container_id, ref.process_id)


# A marker item that only wakes drain(); it never reaches a real callback.
_DRAIN_REF = ProcessRef("", "", 0, 0.0, 0, 0.0, "", "", "")
_DRAIN_INFO = ExitInfo(status=0)
