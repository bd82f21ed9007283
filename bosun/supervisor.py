"""The supervisor: runs lifecycle commands through the adapters and journals every step.

Each command follows one path: take the container's lock, check the rules against the state
folded from the journal, append the intent, call the runtime or shim, append the outcome, and
only then return. The in-memory state is updated by folding the appended events with the same
code that replays the journal, so the cache never holds a state the journal does not.

Exits reported by shims arrive on the shim's watcher thread and are journaled under the same
per-container lock, so a command and an exit of one container never interleave.
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.base import (
    AdapterError,
    ContainerNotFound,
    ExitInfo,
    ProcessRef,
    ProcessSpec,
    Runtime,
    Shim,
)
from bosun import redact
from bosun.config import DaemonSettings
from bosun.crash import CrashPoints
from bosun.errors import (
    AlreadyExists,
    CommandFailed,
    InvalidArgument,
    JournalFailed,
    NoSuchContainer,
    NotAllowed,
    NotFound,
    VersionMismatch,
)
from bosun.ids import InvalidIdentifier, validate_id
from bosun.views import container_json
from bosun.validation import (
    InvalidRequest,
    load_bundle_config,
    validate_exec_args,
    validate_labels,
    validate_resources,
)
from fsm import events as ev
from fsm.errors import CommandNotAllowed, LifecycleError
from fsm.fold import ContainerState, apply, fold
from fsm.machines import INIT_PROCESS
from fsm.rules import Command, ContainerStatus, ProcessStatus, check_command
from fsm.streams import container_stream, parse_stream
from journal import EventStore, JournalError, NewEvent, StoredEvent

logger = logging.getLogger(__name__)

# Format of the folded state stored in snapshots; a snapshot of another format is ignored.
SNAPSHOT_SCHEMA = 1

# Seconds delete --force waits for the killed processes' shims to report their exits.
EXIT_WAIT_TIMEOUT = 10.0

# Seconds to wait for an orphaned process to disappear after SIGKILL before giving up.
ORPHAN_KILL_WAIT = 5.0

LIVE_STATES = frozenset({ContainerStatus.CREATED, ContainerStatus.RUNNING, ContainerStatus.PAUSED})


def new_command_id() -> str:
    return uuid.uuid4().hex


class Supervisor:
    """Owns the folded state of every container and the only path that changes it."""

    def __init__(
        self,
        store: EventStore,
        runtime: Runtime,
        shim: Shim,
        settings: DaemonSettings,
        *,
        exit_command: Callable[[str, str], Sequence[str] | None] | None = None,
        env_key: bytes | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.shim = shim
        self.settings = settings
        self.crash = CrashPoints(settings.crash_at)
        self._exit_command = exit_command or (lambda container_id, process_id: None)
        self._env_key = env_key
        self._states: dict[str, ContainerState] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # Notified after every append, so ``wait`` and followers wake without polling.
        self.changed = threading.Condition()
        self._snapshot_versions: dict[str, int] = {}
        # The API view of each container, rebuilt after every append under the container's
        # lock, so listing 1000 containers copies nothing and waits for no running command.
        self._views: dict[str, dict[str, Any]] = {}

    # -- state ------------------------------------------------------------------------------

    @contextmanager
    def locked(self, container_id: str) -> Iterator[None]:
        """Serialise every change of one container; different containers proceed in parallel."""
        with self._locks_guard:
            lock = self._locks.setdefault(container_id, threading.RLock())
        with lock:
            yield

    def load(self) -> int:
        """Rebuild every container's state from snapshots plus later events; return the count."""
        snapshots = self.store.load_snapshots(schema=SNAPSHOT_SCHEMA)
        states: dict[str, ContainerState] = {}
        after_versions: dict[str, int] = {}
        for stream, snapshot in snapshots.items():
            _, container_id = parse_stream(stream)
            try:
                states[stream] = ContainerState.from_snapshot(snapshot.state, copy_data=False)
            except LifecycleError as exc:
                # Snapshots only speed replay up: an unreadable one means folding from the start.
                logger.warning("container %s: snapshot at version %s ignored: %s", container_id, snapshot.version, exc)
                states[stream] = fold(container_id, self.store.read_stream(stream, until_seq=snapshot.last_seq))
            after_versions[stream] = snapshot.version
            self._snapshot_versions[container_id] = snapshot.version

        # The events after each stream's snapshot, in global order, in a few queries.
        tails = self.store.iter_after_snapshots(schema=SNAPSHOT_SCHEMA, stream_prefix="container/")
        for record in tails:
            if record.version <= after_versions.get(record.stream, 0):
                continue  # its snapshot could not be read, so the stream was refolded above
            state = states.get(record.stream)
            if state is None:
                _, container_id = parse_stream(record.stream)
                state = states[record.stream] = ContainerState(id=container_id)
            apply(state, record)

        for state in states.values():
            for anomaly in state.anomalies:
                logger.warning(
                    "journal anomaly in container %s at seq %s: %s", state.id, anomaly.seq, anomaly.reason
                )
            self._states[state.id] = state
            self._views[state.id] = container_json(state)
        return len(self._states)

    def states(self) -> list[ContainerState]:
        """Return copies of the states of all containers that are not deleted."""
        return [
            copy.deepcopy(state)
            for state in self._states.values()
            if state.status not in (ContainerStatus.DELETED, ContainerStatus.NEW)
        ]

    def views(self) -> list[dict[str, Any]]:
        """Return the API view of every container that is not deleted, without replaying."""
        hidden = (ContainerStatus.DELETED.value, ContainerStatus.NEW.value)
        return [view for view in list(self._views.values()) if view["state"] not in hidden]

    def all_states(self) -> list[ContainerState]:
        """Return copies of every container's state, deleted ones included."""
        return [copy.deepcopy(state) for state in self._states.values()]

    def get(self, container_id: str) -> ContainerState:
        """Return a copy of a live (not deleted) container's state."""
        state = self._states.get(container_id)
        if state is None or state.status in (ContainerStatus.DELETED, ContainerStatus.NEW):
            raise NoSuchContainer(container_id)
        return copy.deepcopy(state)

    def get_any(self, container_id: str) -> ContainerState:
        """Return a copy of a container's state, deleted ones included."""
        state = self._states.get(container_id)
        if state is None:
            raise NoSuchContainer(container_id)
        return copy.deepcopy(state)

    def _live_state(self, container_id: str) -> ContainerState:
        state = self._states.get(container_id)
        if state is None or state.status in (ContainerStatus.DELETED, ContainerStatus.NEW):
            raise NoSuchContainer(container_id)
        return state

    # -- journaling -------------------------------------------------------------------------

    def append(
        self, state: ContainerState, new_events: Sequence[ev.Event], command_id: str | None
    ) -> list[StoredEvent]:
        """Append events to the container's stream at its current version and fold them in."""
        stream = container_stream(state.id)
        batch = [NewEvent(event.type, event.to_data(), command_id) for event in new_events]
        try:
            stored = self.store.append(stream, batch, expected_version=state.version)
        except JournalError as exc:
            raise JournalFailed(f"journaling {batch[0].type} for container {state.id}: {exc}") from exc

        for record in stored:
            apply(state, record)
        if state.anomalies and state.anomalies[-1].seq in {record.seq for record in stored}:
            # The live path checked the rules before appending; an anomaly here is a bug.
            logger.error(
                "container %s: journaled event broke the lifecycle rules: %s",
                state.id,
                state.anomalies[-1].reason,
            )
        self._states[state.id] = state
        self._views[state.id] = container_json(state)
        self._maybe_snapshot(state)
        with self.changed:
            self.changed.notify_all()
        return stored

    def _maybe_snapshot(self, state: ContainerState) -> None:
        taken = self._snapshot_versions.get(state.id, 0)
        if state.version - taken < self.settings.snapshot_interval:
            return
        try:
            self.store.save_snapshot(
                container_stream(state.id),
                state.version,
                state.last_seq,
                state.to_snapshot(),
                schema=SNAPSHOT_SCHEMA,
            )
            self._snapshot_versions[state.id] = state.version
        except JournalError as exc:
            # Snapshots only speed replay up; the events are committed, so go on without one.
            logger.warning("container %s: snapshot at version %s not saved: %s", state.id, state.version, exc)

    def _run_command(
        self,
        container_id: str,
        command: Command,
        intent: ev.Event,
        action: Callable[[ContainerState, str], list[ev.Event]],
        failure: Callable[[str], ev.Event],
        *,
        if_version: int | None,
        allow_new: bool = False,
    ) -> ContainerState:
        """Check, journal the intent, act, journal the outcome: the one path of every command."""
        with self.locked(container_id):
            state = self._states.get(container_id)
            if state is None and allow_new:
                state = ContainerState(id=container_id)
            elif state is None or (state.status == ContainerStatus.DELETED and not allow_new):
                raise NoSuchContainer(container_id)
            if state.status == ContainerStatus.NEW and not allow_new:
                raise NoSuchContainer(container_id)

            if if_version is not None and state.version != if_version:
                raise VersionMismatch(container_id, if_version, state.version)
            try:
                check_command(container_id, state.status, command)
            except CommandNotAllowed as exc:
                raise NotAllowed(str(exc)) from exc

            command_id = new_command_id()
            self.append(state, [intent], command_id)
            self.crash.reach(f"{command.value}:after-intent")

            try:
                outcomes = action(state, command_id)
            except (AdapterError, OSError, InvalidRequest) as exc:
                logger.info("container %s: %s failed: %s", container_id, command.label, exc)
                self.append(state, [failure(str(exc))], command_id)
                raise CommandFailed(str(exc)) from exc

            self.crash.reach(f"{command.value}:after-runtime")
            try:
                self.append(state, outcomes, command_id)
            except JournalFailed as exc:
                raise JournalFailed(
                    f"{exc}; the runtime already carried out {command.label}, so the intent "
                    "stays open and recovery will journal what happened"
                ) from exc
            return copy.deepcopy(state)

    # -- commands ---------------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: str,
        *,
        labels: Mapping[str, str] | None = None,
        start: bool = False,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Create a container from an OCI bundle under a new shim, and start it if asked."""
        try:
            validate_id(container_id)
            labels = validate_labels(labels)
            bundle_path, config = load_bundle_config(bundle)
        except (InvalidIdentifier, InvalidRequest) as exc:
            raise InvalidArgument(str(exc)) from exc

        existing = self._states.get(container_id)
        if existing is not None and existing.status not in (ContainerStatus.NEW, ContainerStatus.DELETED):
            raise AlreadyExists(
                f"container {container_id} already exists (state {existing.status.value}); "
                "delete it first or choose another id"
            )

        process = dict(config.get("process") or {})
        process_record = {
            "args": list(process.get("args", [])),
            "env": redact.redact_env(process.get("env") or [], self._env_key),
            "cwd": process.get("cwd", "/"),
        }
        intent = ev.CreateRequested(
            bundle=str(bundle_path),
            runtime=self.runtime.name,
            labels=dict(labels),
            process=process_record,
            requested_by=dict(requested_by) if requested_by else None,
        )
        state_dir = self.settings.containers_dir / container_id

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            if state_dir.exists():
                # Left by an earlier incarnation whose delete could not clean up.
                shutil.rmtree(state_dir)
            state_dir.mkdir(parents=True, mode=0o700)
            try:
                ref = self.shim.create(
                    container_id,
                    bundle_path,
                    state_dir,
                    exit_command=self._exit_command(container_id, "init"),
                    timeout=self.settings.start_timeout,
                )
            except BaseException:
                shutil.rmtree(state_dir, ignore_errors=True)
                raise
            self.shim.watch(ref, self._on_process_exit)
            return [ev.Created(init=ref.to_data(), state_dir=str(state_dir))]

        state = self._run_command(
            container_id,
            Command.CREATE,
            intent,
            action,
            lambda reason: ev.CreateFailed(reason=reason),
            if_version=None,
            allow_new=True,
        )
        logger.info("container %s created from bundle %s", container_id, bundle_path)
        if start:
            state = self.start(container_id, requested_by=requested_by)
        return state

    def start(
        self,
        container_id: str,
        *,
        checkpoint: str | None = None,
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Start a created container, or restore one from a checkpoint."""
        if checkpoint is not None:
            return self._restore(container_id, checkpoint, if_version, requested_by)

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            self.runtime.start(container_id)
            return [ev.Started()]

        state = self._run_command(
            container_id,
            Command.START,
            ev.StartRequested(requested_by=_who(requested_by)),
            action,
            lambda reason: ev.StartFailed(reason=reason),
            if_version=if_version,
        )
        logger.info("container %s started", container_id)
        return state

    def _restore(
        self,
        container_id: str,
        checkpoint: str,
        if_version: int | None,
        requested_by: Mapping[str, Any] | None,
    ) -> ContainerState:
        try:
            validate_id(checkpoint, "checkpoint name")
        except InvalidIdentifier as exc:
            raise InvalidArgument(str(exc)) from exc
        state = self._live_state(container_id)
        if checkpoint not in state.checkpoints:
            names = ", ".join(sorted(state.checkpoints)) or "none"
            raise NotFound(f"checkpoint {checkpoint} of container {container_id} not found; checkpoints: {names}")

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            facts: list[ev.Event] = []
            # The runtime container (created, or stopped by the checkpoint) gives way to the
            # restored one, which keeps the same id.
            try:
                self.runtime.delete(container_id, force=True)
            except ContainerNotFound:
                pass
            facts.extend(self.collect_exits(state, EXIT_WAIT_TIMEOUT))
            image = Path(state.checkpoints[checkpoint]["path"])
            ref = self.shim.restore(
                container_id,
                Path(state.bundle),
                Path(state.state_dir),
                image,
                exit_command=self._exit_command(container_id, "init"),
                timeout=max(self.settings.start_timeout, 60.0),
            )
            self.shim.watch(ref, self._on_process_exit)
            return [*facts, ev.Started(restored_from=checkpoint, init=ref.to_data())]

        return self._run_command(
            container_id,
            Command.START_CHECKPOINT,
            ev.StartRequested(checkpoint=checkpoint, requested_by=_who(requested_by)),
            action,
            lambda reason: ev.StartFailed(reason=reason),
            if_version=if_version,
        )

    def pause(self, container_id: str, *, if_version: int | None = None, requested_by: Mapping[str, Any] | None = None) -> ContainerState:
        """Freeze every process of a running container."""

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            self.runtime.pause(container_id)
            return [ev.Paused()]

        return self._run_command(
            container_id,
            Command.PAUSE,
            ev.PauseRequested(requested_by=_who(requested_by)),
            action,
            lambda reason: ev.PauseFailed(reason=reason),
            if_version=if_version,
        )

    def resume(self, container_id: str, *, if_version: int | None = None, requested_by: Mapping[str, Any] | None = None) -> ContainerState:
        """Thaw a paused container."""

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            self.runtime.resume(container_id)
            return [ev.Resumed()]

        return self._run_command(
            container_id,
            Command.RESUME,
            ev.ResumeRequested(requested_by=_who(requested_by)),
            action,
            lambda reason: ev.ResumeFailed(reason=reason),
            if_version=if_version,
        )

    def kill(
        self,
        container_id: str,
        signal: int,
        *,
        process: str = "init",
        all_processes: bool = False,
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Send ``signal`` to the init process (or all processes, or one exec process)."""
        state = self._live_state(container_id)
        if process != "init":
            try:
                validate_id(process, "exec id")
            except InvalidIdentifier as exc:
                raise InvalidArgument(str(exc)) from exc
            target = state.processes.get(process)
            if target is None or target.status == ProcessStatus.EXITED:
                live = ", ".join(sorted(p for p in state.processes if p != "init")) or "none"
                raise NotFound(f"exec process {process} of container {container_id} not found; running exec processes: {live}")

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            if process == "init":
                self.runtime.kill(container_id, signal, all_processes=all_processes)
            else:
                self._signal_exec(state, process, signal)
            return [ev.Killed(signal=signal, process=process)]

        return self._run_command(
            container_id,
            Command.KILL,
            ev.KillRequested(signal=signal, process=process, all_processes=all_processes, requested_by=_who(requested_by)),
            action,
            lambda reason: ev.KillFailed(reason=reason),
            if_version=if_version,
        )

    def _signal_exec(self, state: ContainerState, process: str, signal: int) -> None:
        target = state.processes[process]
        if not target.ref or not self.shim.signal_process(ProcessRef.from_data(target.ref), signal):
            msg = f"exec process {process} of container {state.id} (pid {target.pid}) is no longer running"
            raise OSError(msg)

    def exec(
        self,
        container_id: str,
        exec_id: str,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str = "/",
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Start an extra process in a running container under its own shim."""
        try:
            validate_id(exec_id, "exec id")
            arguments = validate_exec_args(list(args))
            if not isinstance(cwd, str) or not cwd.startswith("/"):
                raise InvalidRequest(f"invalid exec cwd {cwd!r}: it must be an absolute path")
            environment = [str(item) for item in env]
            for item in environment:
                if "=" not in item or item.startswith("="):
                    raise InvalidRequest(f"invalid exec env entry {item!r}: use KEY=VALUE")
        except (InvalidIdentifier, InvalidRequest) as exc:
            raise InvalidArgument(str(exc)) from exc
        if exec_id == "init":
            raise InvalidArgument("invalid exec id 'init': it names the container's init process")
        state = self._live_state(container_id)
        existing = state.processes.get(exec_id)
        if existing is not None and existing.status != ProcessStatus.EXITED:
            raise AlreadyExists(f"exec process {exec_id} already runs in container {container_id}; choose another exec id")

        spec = ProcessSpec(args=arguments, env=environment, cwd=cwd)

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            # Each process gets its own shim directory: conmon's pid, exit and log files
            # live there, and the init's must not be overwritten.
            exec_dir = Path(state.state_dir) / "exec" / exec_id
            if exec_dir.exists():
                shutil.rmtree(exec_dir)
            # Created here with mode 0700, because the shim would create them with the umask's mode.
            exec_dir.parent.mkdir(mode=0o700, exist_ok=True)
            exec_dir.mkdir(mode=0o700)
            ref = self.shim.exec(
                container_id,
                exec_id,
                spec,
                exec_dir,
                exit_command=self._exit_command(container_id, exec_id),
                timeout=self.settings.start_timeout,
            )
            self.shim.watch(ref, self._on_process_exit)
            return [ev.ExecStarted(process=exec_id, ref=ref.to_data())]

        return self._run_command(
            container_id,
            Command.EXEC,
            ev.ExecRequested(
                process=exec_id,
                args=arguments,
                env=redact.redact_env(environment, self._env_key),
                cwd=cwd,
                requested_by=_redacted_who(requested_by, environment, self._env_key),
            ),
            action,
            lambda reason: ev.ExecFailed(reason=reason),
            if_version=if_version,
        )

    def update(
        self,
        container_id: str,
        resources: Mapping[str, Any],
        *,
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Change a container's cgroup limits (OCI ``linux.resources``)."""
        try:
            checked = validate_resources(resources)
        except InvalidRequest as exc:
            raise InvalidArgument(str(exc)) from exc

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            self.runtime.update(container_id, checked)
            return [ev.Updated(resources=checked)]

        return self._run_command(
            container_id,
            Command.UPDATE,
            ev.UpdateRequested(resources=checked, requested_by=_who(requested_by)),
            action,
            lambda reason: ev.UpdateFailed(reason=reason),
            if_version=if_version,
        )

    def checkpoint(
        self,
        container_id: str,
        name: str,
        *,
        leave_running: bool = False,
        options: Sequence[str] = (),
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Dump a running container with CRIU into a named checkpoint."""
        try:
            validate_id(name, "checkpoint name")
        except InvalidIdentifier as exc:
            raise InvalidArgument(str(exc)) from exc
        allowed_options = {"--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks", "--empty-ns=network"}
        for option in options:
            if option not in allowed_options:
                raise InvalidArgument(
                    f"invalid checkpoint option {option!r}: allowed: {', '.join(sorted(allowed_options))}"
                )
        state = self._live_state(container_id)
        if name in state.checkpoints:
            raise AlreadyExists(f"checkpoint {name} of container {container_id} already exists; delete it or choose another name")

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            checkpoints_dir = Path(state.state_dir) / "checkpoints"
            image = checkpoints_dir / name
            work = checkpoints_dir / f"{name}.work"
            image.mkdir(parents=True, mode=0o700)
            work.mkdir(parents=True, mode=0o700, exist_ok=True)
            try:
                self.runtime.checkpoint(
                    container_id, image, work_path=work, leave_running=leave_running, options=options
                )
            except BaseException:
                shutil.rmtree(image, ignore_errors=True)
                raise
            return [ev.CheckpointCreated(name=name, path=str(image), leave_running=leave_running)]

        return self._run_command(
            container_id,
            Command.CHECKPOINT,
            ev.CheckpointRequested(name=name, leave_running=leave_running, options=list(options), requested_by=_who(requested_by)),
            action,
            lambda reason: ev.CheckpointFailed(reason=reason),
            if_version=if_version,
        )

    def checkpoint_delete(
        self, container_id: str, name: str, *, if_version: int | None = None, requested_by: Mapping[str, Any] | None = None
    ) -> ContainerState:
        """Remove a checkpoint's image files."""
        state = self._live_state(container_id)
        if name not in state.checkpoints:
            names = ", ".join(sorted(state.checkpoints)) or "none"
            raise NotFound(f"checkpoint {name} of container {container_id} not found; checkpoints: {names}")

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            shutil.rmtree(state.checkpoints[name]["path"], ignore_errors=True)
            shutil.rmtree(f"{state.checkpoints[name]['path']}.work", ignore_errors=True)
            return [ev.CheckpointDeleted(name=name)]

        return self._run_command(
            container_id,
            Command.CHECKPOINT_DELETE,
            ev.CheckpointDeleteRequested(name=name, requested_by=_who(requested_by)),
            action,
            lambda reason: ev.CheckpointDeleteFailed(reason=reason),
            if_version=if_version,
        )

    def delete(
        self,
        container_id: str,
        *,
        force: bool = False,
        if_version: int | None = None,
        requested_by: Mapping[str, Any] | None = None,
    ) -> ContainerState:
        """Delete a container from the runtime; with ``force``, kill a live one first."""

        def action(state: ContainerState, command_id: str) -> list[ev.Event]:
            live = state.status in LIVE_STATES
            try:
                self.runtime.delete(container_id, force=force and live)
            except ContainerNotFound:
                logger.info("container %s: the runtime had already removed it", container_id)
            facts = self.collect_exits(state, EXIT_WAIT_TIMEOUT)
            return [*facts, ev.Deleted()]

        command = Command.DELETE_FORCE if force else Command.DELETE
        state = self._run_command(
            container_id,
            command,
            ev.DeleteRequested(force=force, requested_by=_who(requested_by)),
            action,
            lambda reason: ev.DeleteFailed(reason=reason),
            if_version=if_version,
        )
        # Removed only after the outcome is journaled: a crash before that leaves the exit
        # files for recovery, which then journals the real statuses instead of "lost".
        if state.state_dir:
            shutil.rmtree(state.state_dir, ignore_errors=True)
        logger.info("container %s deleted", container_id)
        return state

    def collect_exits(self, state: ContainerState, timeout: float, *, source: str = "shim") -> list[ev.Event]:
        """Wait for the shims of every process still believed alive and return their exits.

        Called after the runtime removed or killed the container, when every process must end.
        A shim that does not report in time gives status 255 with the reason.
        """
        facts: list[ev.Event] = []
        deadline = time.monotonic() + timeout
        for process_id, process in state.processes.items():
            if process.status == ProcessStatus.EXITED or not process.ref:
                continue
            ref = ProcessRef.from_data(process.ref)
            info = self.shim.read_exit(ref)
            while info is None and time.monotonic() < deadline:
                time.sleep(0.02)
                info = self.shim.read_exit(ref)
            if info is None:
                info = ExitInfo(status=255, status_lost=True, reason=f"exit status lost: process did not exit within {timeout:.0f} s of the runtime removing the container")
            self.shim.unwatch(ref)
            facts.append(exit_event(process_id, info, source=source))
        return facts

    # -- exits ------------------------------------------------------------------------------

    def _on_process_exit(self, ref: ProcessRef, info: ExitInfo) -> None:
        """Journal an exit reported by a shim watcher, once."""
        try:
            if info.status_lost and self.shim.process_alive(ref):
                self.handle_orphan(ref)
                return
            self.record_exit(ref, info, source="shim")
        except Exception:
            # A watcher thread has no caller to raise to. Recovery reads the exit file later.
            logger.exception("container %s: recording the exit of process %s failed", ref.container_id, ref.process_id)

    def handle_orphan(self, ref: ProcessRef, *, source: str = "recovery") -> bool:
        """Apply the orphan policy to a process whose shim died while it still runs.

        No shim would record its exit, so it is killed (policy ``kill``) and its exit journaled
        as 137 once it is confirmed gone. A process of a paused container keeps SIGKILL pending
        while its cgroup is frozen, so the container is resumed for the signal to land, and paused
        again if the orphan was an exec process. Returns whether the exit was journaled. A
        process that still survives keeps its state, with ``ShimLost`` journaled, until the next
        check.
        """
        with self.locked(ref.container_id):
            state = self._states.get(ref.container_id)
            if state is None:
                return False
            process = state.processes.get(ref.process_id)
            if process is None or process.status == ProcessStatus.EXITED or process.pid != ref.pid:
                return False
            reason = f"shim pid {ref.shim_pid} exited without writing a status while process {ref.pid} still ran"
            self.append(state, [ev.ShimLost(process=ref.process_id, reason=reason)], None)
            logger.warning("container %s process %s: %s; killing it", ref.container_id, ref.process_id, reason)

            self.shim.signal_process(ref, 9)
            if not self._wait_gone(ref):
                # The runtime is asked, since the container may have been paused behind bosun's back.
                self._thaw_for_kill(ref)
            if self.shim.process_alive(ref):
                logger.error("container %s process %s survived SIGKILL; its exit stays unrecorded", ref.container_id, ref.process_id)
                return False
            info = ExitInfo(status=137, signal=9, reason="shim lost; process killed by bosun (orphan policy kill)")
            self.append(state, [exit_event(ref.process_id, info, source=source)], None)
            return True

    def _wait_gone(self, ref: ProcessRef) -> bool:
        """Wait up to ``ORPHAN_KILL_WAIT`` seconds for ``ref``'s process to end; return whether it did."""
        deadline = time.monotonic() + ORPHAN_KILL_WAIT
        while self.shim.process_alive(ref) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.shim.process_alive(ref)

    def _thaw_for_kill(self, ref: ProcessRef) -> None:
        """Resume a paused container so that a pending SIGKILL ends the orphan ``ref``.

        An exec orphan's container is paused again once the process is gone. An init orphan's
        container stops with it.
        """
        container_id = ref.container_id
        try:
            if self.runtime.state(container_id).status != "paused":
                return
            self.runtime.resume(container_id)
        except AdapterError as exc:
            logger.error("container %s: resuming to end orphan process %s failed: %s", container_id, ref.process_id, exc)
            return
        logger.warning("container %s: resumed so that SIGKILL reaches orphan process %s", container_id, ref.process_id)
        if self._wait_gone(ref) and ref.process_id != INIT_PROCESS:
            try:
                self.runtime.pause(container_id)
            except AdapterError as exc:
                logger.error("container %s: pausing again after ending orphan process %s failed: %s",
                             container_id, ref.process_id, exc)

    def record_exit(self, ref: ProcessRef, info: ExitInfo, *, source: str) -> bool:
        """Journal ``info`` as the exit of ``ref``'s process unless it is already recorded."""
        with self.locked(ref.container_id):
            state = self._states.get(ref.container_id)
            if state is None:
                return False
            process = state.processes.get(ref.process_id)
            if process is None or process.status == ProcessStatus.EXITED or process.pid != ref.pid:
                return False
            self.append(state, [exit_event(ref.process_id, info, source=source)], None)
        level = logging.WARNING if info.status_lost else logging.INFO
        logger.log(
            level,
            "container %s process %s exited with status %s%s",
            ref.container_id,
            ref.process_id,
            info.status,
            f" ({info.reason})" if info.reason else "",
        )
        return True

    def check_exit(self, container_id: str, process_id: str) -> bool:
        """Read the exit file of one process now; the path of conmon's exit command."""
        state = self._states.get(container_id)
        if state is None:
            raise NoSuchContainer(container_id)
        process = state.processes.get(process_id)
        if process is None or not process.ref:
            return False
        ref = ProcessRef.from_data(process.ref)
        info = self.shim.read_exit(ref)
        if info is None:
            return False
        return self.record_exit(ref, info, source="shim")

    def watch_all(self) -> int:
        """Watch the shim of every process believed alive; return how many are watched."""
        watched = 0
        for state in list(self._states.values()):
            for process in state.processes.values():
                if process.status != ProcessStatus.EXITED and process.ref:
                    self.shim.watch(ProcessRef.from_data(process.ref), self._on_process_exit)
                    watched += 1
        return watched

    def wait(self, container_id: str, timeout: float | None = None) -> ContainerState | None:
        """Block until the init process's exit is journaled; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while True:
                state = self._states.get(container_id)
                if state is None or state.status == ContainerStatus.NEW:
                    raise NoSuchContainer(container_id)
                init = state.processes.get("init")
                if state.exit_status is not None or (init is not None and init.status == ProcessStatus.EXITED):
                    return copy.deepcopy(state)
                if state.status == ContainerStatus.DELETED:
                    return copy.deepcopy(state)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)

    # -- reads ------------------------------------------------------------------------------

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one stats sample of a live container from the runtime."""
        state = self._live_state(container_id)
        if state.status not in LIVE_STATES:
            raise NotAllowed(f"cannot read stats of container {container_id}: state is {state.status.value}; stats need created, running or paused")
        try:
            return self.runtime.stats(container_id)
        except AdapterError as exc:
            raise CommandFailed(str(exc)) from exc

    def top(self, container_id: str) -> list[dict[str, Any]]:
        """Return the processes in a live container with their resource use."""
        state = self._live_state(container_id)
        if state.status not in LIVE_STATES:
            raise NotAllowed(f"cannot list processes of container {container_id}: state is {state.status.value}; top needs created, running or paused")
        try:
            pids = self.runtime.pids(container_id)
        except AdapterError as exc:
            raise CommandFailed(str(exc)) from exc
        from adapters.identity import describe_process

        return [describe_process(pid) for pid in pids]


def _who(requested_by: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(requested_by) if requested_by else None


def _redacted_who(
    requested_by: Mapping[str, Any] | None, env: Sequence[str], key: bytes | None
) -> dict[str, Any] | None:
    """Return ``_who(requested_by)`` with ``env``'s values redacted from the client's command line."""
    who = _who(requested_by)
    if who and isinstance(who.get("cmdline"), str):
        who["cmdline"] = redact.redact_command_line(who["cmdline"], env, key)
    return who


def exit_event(process_id: str, info: ExitInfo, *, source: str) -> ev.ProcessExited:
    """Build the journal event of an exit reported by ``source`` ("shim" or "recovery")."""
    return ev.ProcessExited(
        process=process_id,
        status=info.status,
        signal=info.signal,
        oom=info.oom,
        exited_at=info.exited_at,
        source=source,
        reason=info.reason,
    )
