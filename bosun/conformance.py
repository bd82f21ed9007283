"""Conformance check: random lifecycle histories with crashes, checked against the rules.

``lifecycle_machine(backend)`` returns a hypothesis ``RuleBasedStateMachine`` that drives an
in-process ``Daemon`` through any sequence of:

- commands on a small pool of container ids (create, start, start from a checkpoint, exec,
  pause, resume, kill, update, checkpoint, checkpoint delete, delete, delete --force), including
  the ones the command table forbids in the current state;
- events behind bosun's back: a process exits with any status, the OOM killer ends it, a signal
  from outside kills init, a shim dies, the container is paused or resumed with the runtime
  directly;
- faults: a crash at a command's crash point (``<command>:after-intent``,
  ``<command>:after-runtime``), a crash inside a runtime or shim call, a failing runtime call,
  a crash during recovery (``recovery:...``), and a clean stop. After each crash a new
  ``Daemon`` starts on the same journal and the same live system and runs ``recover()``.

After every step it checks:

- the state folded from the journal alone equals the supervisor's live state, and folding
  the newest snapshot plus the later events gives the same state;
- no container's folded state lists an anomaly (nothing outside the rules was journaled);
- a rejected command (``NotAllowed``, ``NoSuchContainer``, ``AlreadyExists``, ``NotFound``)
  is one the rules forbid, and appended nothing; an allowed command is never rejected;
- every process exit that reality produced is journaled exactly once, with the status the
  shim recorded, or 255 with a reason when no shim recorded it;
- after each recovery, no intent is open and belief equals reality: each container's status
  matches the runtime's, and each process believed alive is alive and each believed exited
  is gone;
- the journal's hash chain verifies.

A backend supplies the runtime and shim and makes the external events happen. Two are here:
``SimulatedBackend`` (``adapters.simulated``, with fault injection inside adapter calls) and
``RealBackend`` (an OCI runtime binary under conmon, with busybox bundles). Command line, to
check that a runc-compatible runtime behaves as bosun's rules expect (needs root, conmon and
busybox-static)::

    python -m bosun.conformance --runtime /usr/sbin/runc [--examples 5] [--steps 15]

It prints a summary and exits 0 when every history conformed, 1 when one did not, and 2 when
the runtime or its tools are missing or refuse to run a container.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal as signals
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from adapters import simulated
from adapters.base import (
    AdapterError,
    ExitInfo,
    ProcessRef,
    Runtime,
    RuntimeCommandError,
    Shim,
    ShimError,
)
from bosun.config import DaemonSettings
from bosun.crash import CrashPoints, SimulatedCrash
from bosun.daemon import Daemon
from bosun.errors import (
    AlreadyExists,
    CommandFailed,
    NoSuchContainer,
    NotAllowed,
    NotFound,
)
from bosun.supervisor import SNAPSHOT_SCHEMA
from fsm.fold import ContainerState, fold
from fsm.rules import Command, ContainerStatus, ProcessStatus, is_allowed
from fsm.streams import container_stream
from journal import EventStore, StoredEvent

CONTAINER_IDS = ("c1", "c2", "c3")
EXEC_IDS = ("e1", "e2")
CHECKPOINT_NAMES = ("k1", "k2")

# Snapshots every few versions, so that most histories fold from a snapshot at least once.
SNAPSHOT_INTERVAL = 4

# Backend features beyond commands and crash points.
FEATURE_CALL_FAULTS = "call-faults"  # crash or fail inside a named runtime or shim call
FEATURE_OOM = "oom"  # make the OOM killer end a process
FEATURE_CHECKPOINT = "checkpoint"  # checkpoint and restore can succeed

# Errors a command raises when it is refused before anything is journaled.
REJECTIONS = (NotAllowed, NoSuchContainer, AlreadyExists, NotFound)
# In-process crashes: a crash point, or a simulated call that never returned.
CRASHES = (SimulatedCrash, simulated.SimulatedCrash)

# The runtime and shim calls each command makes, where a call fault can hit it.
_COMMAND_CALLS: dict[Command, tuple[str, ...]] = {
    Command.CREATE: ("create", "watch"),
    Command.START: ("start",),
    Command.START_CHECKPOINT: ("delete", "restore", "watch"),
    Command.PAUSE: ("pause",),
    Command.RESUME: ("resume",),
    Command.KILL: ("kill", "signal_process"),
    Command.EXEC: ("exec", "watch"),
    Command.UPDATE: ("update",),
    Command.CHECKPOINT: ("checkpoint",),
    Command.CHECKPOINT_DELETE: (),
    Command.DELETE: ("delete", "read_exit", "unwatch"),
    Command.DELETE_FORCE: ("delete", "read_exit", "unwatch"),
}
# The calls recovery makes.
_RECOVERY_CALLS = ("state", "read_exit", "shim_alive", "process_alive", "signal_process",
                   "locate", "delete", "update", "watch", "list")
# NOTE: watch and unwatch declare no failure in the Shim port, so no fault makes them fail. A
# watch that fails after a successful shim create would journal CreateFailed while the runtime
# container and its shim keep running, and recovery reports that container as unknown.
_UNFAILING_CALLS = frozenset({"watch", "unwatch"})
_RECOVERY_POINTS = ("recovery:after-replay", "recovery:mid-reconcile", "recovery:before-finish")

_OCI_STATUS = {
    ContainerStatus.CREATED: "created",
    ContainerStatus.RUNNING: "running",
    ContainerStatus.PAUSED: "paused",
    ContainerStatus.STOPPED: "stopped",
}


class ConformanceError(AssertionError):
    """Raised when a history breaks one of the checked properties."""


class _ExitNotJournaled(ConformanceError):
    """Raised when reality produced an exit that the journal does not have."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """One injected fault.

    ``kind`` is "crash-point" (``target`` names a ``bosun.crash`` point), "crash-in-call" (the
    daemon dies at ``phase`` of the next ``target`` call, as ``SimulatedWorld.die_at`` does)
    or "fail-call" (the next ``target`` call fails without effect, as ``fail_next`` does).
    """

    kind: str
    target: str
    phase: str = "before"

    def __str__(self) -> str:
        if self.kind == "crash-in-call":
            return f"crash {self.phase} {self.target} call"
        if self.kind == "fail-call":
            return f"{self.target} call fails"
        return f"crash at {self.target}"


class Backend(Protocol):
    """The live system under test: a runtime and shim, and ways to change reality behind bosun.

    One backend serves one history. ``features`` names what it supports beyond commands and
    crash points (``FEATURE_*``). Process arguments are ``(container_id, process_id, ref)``:
    ``ref`` is the ``ProcessRef`` the journal holds for that process.
    """

    features: frozenset[str]
    root: Path
    journal_url: str
    synchronous: str

    def adapters(self) -> tuple[Runtime, Shim]:
        """Return a fresh runtime and shim on the same live system, as a restarted daemon has."""
        ...

    def bundle(self, container_id: str) -> str:
        """Return the bundle path for a new incarnation of ``container_id``."""
        ...

    def exec_args(self, container_id: str, exec_id: str) -> list[str]:
        """Return the arguments of a new exec process that runs until ``exit_process`` ends it."""
        ...

    def exit_process(self, ref: ProcessRef, status: int) -> bool:
        """Make the process exit on its own with ``status``; return False if it is not running."""
        ...

    def oom_kill(self, ref: ProcessRef) -> bool:
        """Make the OOM killer end the process; return False if it is not running."""
        ...

    def signal_init(self, container_id: str, signal: int) -> bool:
        """Send ``signal`` to init with the runtime directly; return False if it could not."""
        ...

    def kill_shim(self, ref: ProcessRef) -> bool:
        """Kill the process's shim with SIGKILL; return False if the shim is already gone."""
        ...

    def pause_behind_back(self, container_id: str) -> bool:
        """Pause a running container with the runtime directly; return False if it is not running."""
        ...

    def resume_behind_back(self, container_id: str) -> bool:
        """Resume a paused container with the runtime directly; return False if it is not paused."""
        ...

    def runtime_status(self, container_id: str) -> str | None:
        """Return the runtime's status of the container, None when it has no such container."""
        ...

    def process_alive(self, ref: ProcessRef) -> bool:
        """Tell whether the process of ``ref`` still runs."""
        ...

    def produced_exit(self, ref: ProcessRef) -> ExitInfo | None:
        """Return the exit reality produced for ``ref``, None while the process and its shim run.

        ``status_lost`` is true when the shim ended without recording a status.
        """
        ...

    def remembered_exit(self, ref: ProcessRef) -> ExitInfo | None:
        """Return the exit of ``ref`` as read before its files could be reused, else None."""
        ...

    def arm(self, fault: Fault, container_id: str | None) -> Callable[[], None]:
        """Arm a call fault for the next matching call; return a function that disarms it."""
        ...

    def settle(self, supervisor: Any) -> None:
        """Wait until every exit reality produced has reached the supervisor's exit callbacks."""
        ...

    def daemon_call(self) -> contextlib.AbstractContextManager[None]:
        """Bracket one command or recovery; exit callbacks wait for it as for the container lock.

        A crash (``CRASHES``) out of the bracket drops the callbacks that waited, because the
        watcher thread dies with the daemon.
        """
        ...

    def close(self) -> None:
        """End every container, process and shim this backend started, and remove its files."""
        ...


# -- strategies ---------------------------------------------------------------------------------


def _faults_for(calls: Sequence[str], points: Sequence[str], features: frozenset[str], *,
                failures: bool = True) -> Any:
    options: list[Any] = [st.sampled_from([Fault("crash-point", point) for point in points])]
    if FEATURE_CALL_FAULTS in features and calls:
        options.append(st.builds(Fault, st.just("crash-in-call"), st.sampled_from(calls),
                                 st.sampled_from(["before", "after"])))
        failing = [call for call in calls if call not in _UNFAILING_CALLS]
        if failing and failures:
            options.append(st.builds(Fault, st.just("fail-call"), st.sampled_from(failing)))
    return st.one_of(options)


def _maybe(fault: Any) -> Any:
    # One step in four carries a fault. Shrinking moves the first number towards 0, so a
    # smaller counterexample drops faults it does not need.
    return st.tuples(st.integers(0, 3), fault).map(lambda pair: pair[1] if pair[0] == 3 else None)


def command_faults(command: Command, features: frozenset[str]) -> Any:
    """Return a strategy of an optional fault for one command."""
    points = [f"{command.value}:after-intent", f"{command.value}:after-runtime"]
    return _maybe(_faults_for(_COMMAND_CALLS[command], points, features))


def recovery_faults(features: frozenset[str]) -> Any:
    """Return a strategy of an optional fault for one recovery.

    Only crashes: a call that fails during recovery leaves that container unreconciled until
    the next start, by design, so belief need not equal reality after such a recovery.
    """
    return _maybe(_faults_for(_RECOVERY_CALLS, _RECOVERY_POINTS, features, failures=False))


# -- the machine --------------------------------------------------------------------------------


def _raise_crash(point: str) -> None:
    raise SimulatedCrash(point)


@dataclasses.dataclass
class Counters:
    """Counts of what the histories exercised, for the command-line summary."""

    histories: int = 0
    steps: int = 0
    commands: int = 0
    rejected: int = 0
    failed: int = 0
    crashes: int = 0
    recoveries: int = 0
    external_events: int = 0

    def summary(self) -> str:
        return (f"{self.histories} histories, {self.steps} steps: {self.commands} commands "
                f"({self.rejected} refused by the rules, {self.failed} failed in the runtime), "
                f"{self.external_events} external events, {self.crashes} crashes, "
                f"{self.recoveries} recoveries")


def lifecycle_machine(backend: Callable[[], Backend], *, features: frozenset[str] | None = None,
                      counters: Counters | None = None) -> type[RuleBasedStateMachine]:
    """Return a state machine class that checks bosun against ``backend``.

    ``backend`` is called once per history and must return a fresh ``Backend``; ``features``
    defaults to the ``features`` attribute of ``backend`` (a class). ``counters``, if given,
    is updated as histories run.
    """
    chosen = frozenset(features if features is not None else getattr(backend, "features"))
    tally = counters if counters is not None else Counters()
    ids = st.sampled_from(CONTAINER_IDS)
    process_ids = st.sampled_from(("init", *EXEC_IDS))
    # Which container a command goes to: 0-3 pick one whose state allows the command (when
    # there is one), 4-5 any of the pool, so both allowed and refused commands are frequent.
    targets = st.integers(0, 5)
    external_events = st.tuples(
        st.sampled_from(["exits", "oom", "init-killed", "shim-dies", "paused", "resumed"]),
        ids, process_ids, st.integers(0, 255))

    class LifecycleMachine(RuleBasedStateMachine):
        """Commands, external events and crashes on a few containers; see ``bosun.conformance``."""

        def __init__(self) -> None:
            super().__init__()
            tally.histories += 1
            self.backend = backend()
            self.settings = DaemonSettings(
                root=self.backend.root,
                journal_url=self.backend.journal_url,
                socket=self.backend.root / "bosun.sock",
                synchronous=self.backend.synchronous,
                snapshot_interval=SNAPSHOT_INTERVAL,
                keep_env_values=True,
                start_timeout=10.0,
            )
            self.daemon: Daemon | None = None
            self.store: EventStore | None = None
            self._restart(None)

        # -- daemon lifecycle ------------------------------------------------------------

        def _boot(self, fault: Fault | None) -> bool:
            """Start a daemon and recover; return False if ``fault`` crashed the recovery."""
            store = EventStore.open(self.settings.journal_url, synchronous=self.settings.synchronous)
            runtime, shim = self.backend.adapters()
            daemon = Daemon(self.settings, store, runtime, shim)
            daemon.supervisor.crash = CrashPoints(
                fault.target if fault is not None and fault.kind == "crash-point" else None,
                on_crash=_raise_crash,
            )
            disarm = self._arm(fault, None)
            try:
                with self.backend.daemon_call():
                    daemon.recover()
            except CRASHES:
                tally.crashes += 1
                self._abandon(daemon)
                return False
            finally:
                disarm()
            daemon.supervisor.crash = CrashPoints(None, on_crash=_raise_crash)
            self.daemon, self.store = daemon, store
            tally.recoveries += 1
            self.backend.settle(daemon.supervisor)
            self._check_recovered()
            return True

        def _restart(self, fault: Fault | None) -> None:
            # A recovery that crashed is followed by another, as a supervisor restarts a daemon.
            if not self._boot(fault):
                self._boot(None)

        def _abandon(self, daemon: Daemon) -> None:
            # What a SIGKILL leaves: no stop event, no more callbacks, the journal as committed.
            daemon.shim.close()
            daemon.store.close()
            if daemon is self.daemon:
                self.daemon, self.store = None, None

        def _arm(self, fault: Fault | None, container_id: str | None) -> Callable[[], None]:
            if fault is None or fault.kind == "crash-point":
                return lambda: None
            return self.backend.arm(fault, container_id)

        def teardown(self) -> None:
            try:
                if self.daemon is not None:
                    self.daemon.stop("conformance history finished")
                    self.daemon = None
            finally:
                self.backend.close()

        # -- reading belief --------------------------------------------------------------

        def _belief(self, container_id: str) -> ContainerState:
            assert self.daemon is not None
            try:
                return self.daemon.supervisor.get_any(container_id)
            except NoSuchContainer:
                return ContainerState(id=container_id)

        def _journal_state(self, container_id: str) -> ContainerState:
            """Fold the container's stream from the journal file, daemon up or down."""
            with self._reader() as store:
                return fold(container_id, store.read_stream(container_stream(container_id)))

        @contextlib.contextmanager
        def _reader(self) -> Iterator[EventStore]:
            if self.store is not None:
                yield self.store
                return
            store = EventStore.open(self.settings.journal_url, synchronous=self.settings.synchronous)
            try:
                yield store
            finally:
                store.close()

        def _live_ref(self, container_id: str, process_id: str) -> ProcessRef | None:
            state = self._journal_state(container_id)
            process = state.processes.get(process_id)
            if process is None or not process.ref:
                return None
            return ProcessRef.from_data(process.ref)

        @initialize(initial=st.lists(st.sampled_from(["absent", "created", "running"]),
                                     min_size=len(CONTAINER_IDS), max_size=len(CONTAINER_IDS)))
        def populate(self, initial: list[str]) -> None:
            """Start the history with some containers, so commands rarely meet an empty pool."""
            assert self.daemon is not None
            for container_id, status in zip(CONTAINER_IDS, initial):
                if status == "absent":
                    continue
                with self.backend.daemon_call():
                    self.daemon.supervisor.create(container_id, self.backend.bundle(container_id),
                                                  start=status == "running")

        # -- commands --------------------------------------------------------------------

        def _target(self, command: Command, choice: int) -> str:
            allowed = [container_id for container_id in CONTAINER_IDS
                       if is_allowed(self._belief(container_id).status, command)]
            if choice < 4 and allowed:
                return allowed[choice % len(allowed)]
            return CONTAINER_IDS[choice % len(CONTAINER_IDS)]

        def _command(self, container_id: str, command: Command, fault: Fault | None,
                     call: Callable[[], Any], *, refused_early: bool = False) -> None:
            """Run one command and check how it ended against the rules and the journal.

            ``refused_early`` is true when a check before the command table (an existing id,
            a missing checkpoint or exec process) must refuse the command.
            """
            assert self.daemon is not None and self.store is not None
            tally.commands += 1
            before = self._belief(container_id)
            last_seq = self.store.last_seq()
            supervisor = self.daemon.supervisor
            if fault is not None and fault.kind == "crash-point":
                supervisor.crash = CrashPoints(fault.target, on_crash=_raise_crash)
            disarm = self._arm(fault, container_id)
            try:
                with self.backend.daemon_call():
                    call()
            except CRASHES:
                tally.crashes += 1
                disarm()
                self._abandon(self.daemon)
                self._restart(None)
                return
            except REJECTIONS as exc:
                tally.rejected += 1
                self._check_refused(before, command, exc, last_seq, refused_early)
                return
            except CommandFailed:
                tally.failed += 1
                self._check_answered(before, command, last_seq, failed=True)
                return
            finally:
                disarm()
                supervisor.crash = CrashPoints(None, on_crash=_raise_crash)
            self._check_answered(before, command, last_seq, failed=False)

        def _check_refused(self, before: ContainerState, command: Command, exc: Exception,
                           last_seq: int, refused_early: bool) -> None:
            assert self.store is not None
            appended = self.store.last_seq() - last_seq
            if appended:
                raise ConformanceError(
                    f"{command.label} of container {before.id} was refused ({exc}) "
                    f"but {appended} events were appended")
            absent = before.status in (ContainerStatus.NEW, ContainerStatus.DELETED)
            if isinstance(exc, NoSuchContainer) and absent:
                return
            if isinstance(exc, NotAllowed) and not is_allowed(before.status, command):
                return
            if isinstance(exc, (AlreadyExists, NotFound)) and refused_early:
                return
            raise ConformanceError(
                f"{command.label} of container {before.id} in state {before.status.value} "
                f"was refused with {type(exc).__name__}: {exc}")

        def _check_answered(self, before: ContainerState, command: Command, last_seq: int,
                            *, failed: bool) -> None:
            assert self.store is not None
            if not is_allowed(before.status, command):
                raise ConformanceError(
                    f"{command.label} of container {before.id} ran in state "
                    f"{before.status.value}, which the command table forbids")
            appended = [record for record in self.store.read_stream(container_stream(before.id))
                        if record.seq > last_seq]
            intents = [record for record in appended if record.type.endswith("Requested")]
            if len(intents) != 1:
                raise ConformanceError(
                    f"{command.label} of container {before.id} journaled {len(intents)} intents")
            answers = [record for record in appended
                       if record.command_id == intents[0].command_id and record is not intents[0]]
            kinds = [record.type for record in answers]
            if not answers or kinds[-1].endswith("Failed") != failed:
                raise ConformanceError(
                    f"{command.label} of container {before.id} "
                    f"{'failed' if failed else 'succeeded'} but journaled {kinds}")

        @rule(choice=targets, start=st.booleans(), fault=command_faults(Command.CREATE, chosen))
        def create(self, choice: int, start: bool, fault: Fault | None) -> None:
            container_id = self._target(Command.CREATE, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            belief = self._belief(container_id)
            exists = belief.status not in (ContainerStatus.NEW, ContainerStatus.DELETED)
            # An existing id keeps its bundle: create must refuse it whatever the bundle.
            bundle = belief.bundle if exists and belief.bundle else self.backend.bundle(container_id)
            self._command(container_id, Command.CREATE, fault,
                          lambda: supervisor.create(container_id, bundle), refused_early=True)
            if start and self.daemon is not None and not exists:
                self._start(container_id, None, None)

        @rule(choice=targets, checkpoint=st.none() | st.sampled_from(CHECKPOINT_NAMES),
              fault=command_faults(Command.START, chosen))
        def start(self, choice: int, checkpoint: str | None, fault: Fault | None) -> None:
            command = Command.START if checkpoint is None else Command.START_CHECKPOINT
            self._start(self._target(command, choice), checkpoint, fault)

        def _start(self, container_id: str, checkpoint: str | None, fault: Fault | None) -> None:
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            command = Command.START if checkpoint is None else Command.START_CHECKPOINT
            if fault is not None and fault.kind == "crash-point":
                fault = Fault(fault.kind, fault.target.replace("start:", f"{command.value}:", 1))
            missing = checkpoint is not None and checkpoint not in self._belief(container_id).checkpoints
            self._command(container_id, command, fault,
                          lambda: supervisor.start(container_id, checkpoint=checkpoint),
                          refused_early=missing)

        @rule(choice=targets, fault=command_faults(Command.PAUSE, chosen))
        def pause(self, choice: int, fault: Fault | None) -> None:
            container_id = self._target(Command.PAUSE, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            self._command(container_id, Command.PAUSE, fault, lambda: supervisor.pause(container_id))

        @rule(choice=targets, fault=command_faults(Command.RESUME, chosen))
        def resume(self, choice: int, fault: Fault | None) -> None:
            container_id = self._target(Command.RESUME, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            self._command(container_id, Command.RESUME, fault, lambda: supervisor.resume(container_id))

        @rule(choice=targets, process=st.just("init") | process_ids,
              signal=st.sampled_from([signals.SIGTERM, signals.SIGKILL, signals.SIGUSR1,
                                      signals.SIGCHLD]),
              all_processes=st.booleans(), fault=command_faults(Command.KILL, chosen))
        def kill(self, choice: int, process: str, signal: int, all_processes: bool,
                 fault: Fault | None) -> None:
            container_id = self._target(Command.KILL, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            target = self._belief(container_id).processes.get(process)
            missing = process != "init" and (target is None or target.status == ProcessStatus.EXITED)
            all_processes = all_processes and process == "init"
            self._command(container_id, Command.KILL, fault,
                          lambda: supervisor.kill(container_id, int(signal), process=process,
                                                  all_processes=all_processes),
                          refused_early=missing)

        @rule(choice=targets, exec_id=st.sampled_from(EXEC_IDS),
              fault=command_faults(Command.EXEC, chosen))
        def exec(self, choice: int, exec_id: str, fault: Fault | None) -> None:
            container_id = self._target(Command.EXEC, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            existing = self._belief(container_id).processes.get(exec_id)
            running = existing is not None and existing.status != ProcessStatus.EXITED
            args = self.backend.exec_args(container_id, exec_id)
            self._command(container_id, Command.EXEC, fault,
                          lambda: supervisor.exec(container_id, exec_id, args),
                          refused_early=running)

        @rule(choice=targets, limit_mib=st.integers(4, 64),
              fault=command_faults(Command.UPDATE, chosen))
        def update(self, choice: int, limit_mib: int, fault: Fault | None) -> None:
            container_id = self._target(Command.UPDATE, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            resources = {"memory": {"limit": limit_mib << 20}}
            self._command(container_id, Command.UPDATE, fault,
                          lambda: supervisor.update(container_id, resources))

        @rule(choice=targets, name=st.sampled_from(CHECKPOINT_NAMES),
              leave_running=st.booleans(), fault=command_faults(Command.CHECKPOINT, chosen))
        @precondition(lambda self: FEATURE_CHECKPOINT in chosen)
        def checkpoint(self, choice: int, name: str, leave_running: bool,
                       fault: Fault | None) -> None:
            container_id = self._target(Command.CHECKPOINT, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            exists = name in self._belief(container_id).checkpoints
            self._command(container_id, Command.CHECKPOINT, fault,
                          lambda: supervisor.checkpoint(container_id, name, leave_running=leave_running),
                          refused_early=exists)

        @rule(choice=targets, name=st.sampled_from(CHECKPOINT_NAMES),
              fault=command_faults(Command.CHECKPOINT_DELETE, chosen))
        @precondition(lambda self: FEATURE_CHECKPOINT in chosen)
        def checkpoint_delete(self, choice: int, name: str, fault: Fault | None) -> None:
            container_id = self._target(Command.CHECKPOINT_DELETE, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            missing = name not in self._belief(container_id).checkpoints
            self._command(container_id, Command.CHECKPOINT_DELETE, fault,
                          lambda: supervisor.checkpoint_delete(container_id, name),
                          refused_early=missing)

        @rule(choice=targets, force=st.booleans(), fault=command_faults(Command.DELETE, chosen))
        def delete(self, choice: int, force: bool, fault: Fault | None) -> None:
            container_id = self._target(Command.DELETE_FORCE if force else Command.DELETE, choice)
            assert self.daemon is not None
            supervisor = self.daemon.supervisor
            command = Command.DELETE_FORCE if force else Command.DELETE
            if fault is not None and fault.kind == "crash-point":
                fault = Fault(fault.kind, fault.target.replace("delete:", f"{command.value}:", 1))
            self._command(container_id, command, fault,
                          lambda: supervisor.delete(container_id, force=force))

        # -- events behind bosun's back --------------------------------------------------

        def _happen(self, event: str, container_id: str, process: str, status: int) -> bool:
            """Make ``event`` happen in reality; return False when it cannot happen now."""
            backend = self.backend
            if event in ("paused", "resumed", "init-killed"):
                if event == "paused":
                    return backend.pause_behind_back(container_id)
                if event == "resumed":
                    return backend.resume_behind_back(container_id)
                signal = signals.SIGKILL if status % 2 else signals.SIGTERM
                return backend.signal_init(container_id, int(signal))
            ref = self._live_ref(container_id, process)
            if ref is None:
                return False
            if event == "exits":
                return backend.exit_process(ref, status)
            if event == "oom":
                return FEATURE_OOM in chosen and backend.oom_kill(ref)
            return backend.kill_shim(ref)

        def _external(self, event: str, container_id: str, process: str, status: int) -> None:
            if self._happen(event, container_id, process, status):
                tally.external_events += 1
                if self.daemon is not None:
                    self.backend.settle(self.daemon.supervisor)

        @rule(container_id=ids, process=process_ids, status=st.integers(0, 255))
        def process_exits(self, container_id: str, process: str, status: int) -> None:
            self._external("exits", container_id, process, status)

        @rule(container_id=ids, process=process_ids)
        @precondition(lambda self: FEATURE_OOM in chosen)
        def oom_kills(self, container_id: str, process: str) -> None:
            self._external("oom", container_id, process, 137)

        @rule(container_id=ids, sigkill=st.booleans())
        def init_signalled_outside(self, container_id: str, sigkill: bool) -> None:
            self._external("init-killed", container_id, "init", int(sigkill))

        @rule(container_id=ids, process=process_ids)
        def shim_dies(self, container_id: str, process: str) -> None:
            self._external("shim-dies", container_id, process, 0)

        @rule(container_id=ids, pause=st.booleans())
        def frozen_behind_back(self, container_id: str, pause: bool) -> None:
            self._external("paused" if pause else "resumed", container_id, "init", 0)

        # -- the daemon's own life -------------------------------------------------------

        @rule(clean=st.booleans(), while_down=st.lists(external_events, max_size=3),
              fault=recovery_faults(chosen))
        def daemon_restarts(self, clean: bool, while_down: list[tuple[str, str, str, int]],
                            fault: Fault | None) -> None:
            """Stop (cleanly or by a crash), let reality move on, start again and recover."""
            assert self.daemon is not None
            if clean:
                self.daemon.stop("conformance clean stop")
                self.daemon, self.store = None, None
            else:
                tally.crashes += 1
                self._abandon(self.daemon)
            for event in while_down:
                if self._happen(*event):
                    tally.external_events += 1
            self._restart(fault)

        # -- properties ------------------------------------------------------------------

        @invariant()
        def journal_is_the_truth(self) -> None:
            tally.steps += 1
            if self.daemon is not None:
                # A real process may still be exiting from the last step; let its exit arrive.
                self.backend.settle(self.daemon.supervisor)
            with self._reader() as store:
                verdict = store.verify()
                if not verdict.ok:
                    raise ConformanceError(
                        f"journal hash chain broken at seq {verdict.first_bad_seq}: {verdict.reason}")
                for container_id in CONTAINER_IDS:
                    self._check_stream(store, container_id)

        def _check_stream(self, store: EventStore, container_id: str) -> None:
            stream = container_stream(container_id)
            supervisor = self.daemon.supervisor if self.daemon is not None else None
            lock = supervisor.locked(container_id) if supervisor is not None else contextlib.nullcontext()
            with lock:
                records = store.read_stream(stream)
                folded = fold(container_id, records)
                live = supervisor._states.get(container_id) if supervisor is not None else None
                differs = supervisor is not None and bool(records) and live != folded
                live_text = str(live)
            if folded.anomalies:
                raise ConformanceError(
                    f"container {container_id}: journaled events break the rules: "
                    + "; ".join(f"seq {a.seq} {a.type}: {a.reason}" for a in folded.anomalies))
            if differs:
                raise ConformanceError(
                    f"container {container_id}: live state differs from the journal's fold\n"
                    f"live:    {live_text}\njournal: {folded}")
            snapshot = store.load_snapshot(stream, schema=SNAPSHOT_SCHEMA)
            if snapshot is not None:
                tail = [record for record in records if record.version > snapshot.version]
                from_snapshot = fold(container_id, tail, snapshot=snapshot.state)
                if from_snapshot != folded:
                    raise ConformanceError(
                        f"container {container_id}: snapshot at version {snapshot.version} plus "
                        f"later events differs from the full fold\nsnapshot: {from_snapshot}\n"
                        f"full:     {folded}")
            try:
                self._check_exits(container_id, records)
            except _ExitNotJournaled:
                if supervisor is None:
                    raise
                # A real process can end between the last wait and this check, with its exit
                # still on the way through conmon's watcher thread: wait once more, then judge.
                self.backend.settle(supervisor)
                self._check_exits(container_id, store.read_stream(stream))

        def _check_exits(self, container_id: str, records: list[StoredEvent]) -> None:
            """Check that every exit reality produced is journaled once, with reality's status."""
            refs: dict[str, ProcessRef] = {}
            journaled: dict[int, list[dict[str, Any]]] = {}
            known: list[ProcessRef] = []
            # Shim pids of earlier incarnations: a new create reuses their file paths, so only
            # an exit read before that can still be compared.
            earlier: set[int] = set()
            for record in records:
                data = record.data
                if record.type == "Created":
                    earlier.update(ref.shim_pid for ref in known)
                ref_data = (data.get("init") if record.type in ("Created", "Started")
                            else data.get("ref") if record.type == "ExecStarted" else None)
                if ref_data:
                    ref = ProcessRef.from_data(ref_data)
                    refs[ref.process_id] = ref
                    known.append(ref)
                if record.type == "ProcessExited" and data["process"] in refs:
                    shim_pid = refs[data["process"]].shim_pid
                    journaled.setdefault(shim_pid, []).append(dict(data))
            for ref in known:
                exits = journaled.get(ref.shim_pid, [])
                if len(exits) > 1:
                    raise ConformanceError(
                        f"container {container_id} process {ref.process_id} (shim {ref.shim_pid}) "
                        f"has {len(exits)} exits journaled: {exits}")
                if self.daemon is None:
                    continue
                if ref.shim_pid in earlier:
                    produced = self.backend.remembered_exit(ref)
                else:
                    produced = self.backend.produced_exit(ref)
                if produced is None:
                    continue
                if not exits:
                    raise _ExitNotJournaled(
                        f"container {container_id} process {ref.process_id} (shim {ref.shim_pid}) "
                        f"exited ({produced}) but no exit is journaled")
                _check_status(container_id, ref, exits[0], produced)

        def _check_recovered(self) -> None:
            """After recovery: no open intent, and belief equals reality."""
            for container_id in CONTAINER_IDS:
                belief = self._belief(container_id)
                if belief.pending:
                    raise ConformanceError(
                        f"container {container_id}: intents left open after recovery: "
                        f"{sorted(p.type for p in belief.pending.values())}")
                reality = self.backend.runtime_status(container_id)
                expected = _OCI_STATUS.get(belief.status)
                if reality != expected:
                    raise ConformanceError(
                        f"container {container_id}: after recovery the journal says "
                        f"{belief.status.value} but the runtime says {reality or 'no container'}")
                for process in belief.processes.values():
                    if not process.ref:
                        continue
                    alive = self.backend.process_alive(ProcessRef.from_data(process.ref))
                    if alive != (process.status != ProcessStatus.EXITED):
                        raise ConformanceError(
                            f"container {container_id}: after recovery process {process.id} is "
                            f"{process.status.value} in the journal but "
                            f"{'alive' if alive else 'gone'} in reality")

    LifecycleMachine.__name__ = f"LifecycleMachine[{getattr(backend, '__name__', 'backend')}]"
    return LifecycleMachine


def _check_status(container_id: str, ref: ProcessRef, journaled: dict[str, Any],
                  produced: ExitInfo) -> None:
    what = f"container {container_id} process {ref.process_id} (shim {ref.shim_pid})"
    status = journaled["status"]
    if not produced.status_lost:
        if status != produced.status or journaled.get("oom") != produced.oom:
            raise ConformanceError(
                f"{what}: journaled status {status} (oom {journaled.get('oom')}) but the shim "
                f"recorded {produced.status} (oom {produced.oom})")
        return
    # No shim recorded a status: 255 with the reason, or 137 when bosun itself killed the
    # process whose shim was gone (orphan policy kill, named in the reason).
    killed_as_orphan = status == 128 + signals.SIGKILL and "orphan" in (journaled.get("reason") or "")
    if status != 255 and not killed_as_orphan:
        raise ConformanceError(
            f"{what}: the exit status was lost but {status} was journaled: {journaled}")
    if not journaled.get("reason"):
        raise ConformanceError(f"{what}: status {status} journaled without a reason: {journaled}")


# -- simulated backend ----------------------------------------------------------------------------


class SimulatedBackend:
    """Simulated ``Backend`` on ``adapters.simulated``: every fault can be injected, nothing is slow.

    Exit callbacks run inline (``sync_callbacks``), so a history is deterministic. Inside a
    command or recovery they are held back until it returns, as the real watcher thread waits
    for the container lock the command holds, and dropped when the daemon crashed.
    """

    features = frozenset({FEATURE_CALL_FAULTS, FEATURE_OOM, FEATURE_CHECKPOINT})
    synchronous = "OFF"  # an in-process crash loses no committed write, so skip the fsyncs

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bosun-conformance-"))
        self.root = self.base / "root"
        self.journal_url = f"sqlite:///{self.base}/journal.db"
        self.world = simulated.SimulatedWorld(sync_callbacks=True)
        self._bundle = self.base / "bundle"
        (self._bundle / "rootfs").mkdir(parents=True)
        config = {"ociVersion": "1.0.2", "process": {"args": ["sleep", "inf"], "cwd": "/"},
                  "root": {"path": "rootfs"}}
        (self._bundle / "config.json").write_text(json.dumps(config))
        self._in_call = False
        self._held: list[Callable[[], None]] = []

    def adapters(self) -> tuple[Runtime, Shim]:
        return (simulated.SimulatedRuntime(self.world, self.root / "runtime"),
                _HeldCallbackShim(self.world, self))

    def deliver(self, callback: Callable[[], None]) -> None:
        """Run an exit callback now, or after the daemon call in progress returns."""
        if self._in_call:
            self._held.append(callback)
        else:
            callback()

    @contextlib.contextmanager
    def daemon_call(self) -> Iterator[None]:
        self._in_call = True
        crashed = False
        try:
            yield
        except CRASHES:
            crashed = True
            raise
        finally:
            # A refused or failed command releases the lock too, so its held callbacks run.
            self._in_call = False
            held, self._held = self._held, []
            for callback in held if not crashed else ():
                callback()

    def bundle(self, container_id: str) -> str:
        return str(self._bundle)

    def exec_args(self, container_id: str, exec_id: str) -> list[str]:
        return ["sleep", "inf"]

    def _process(self, ref: ProcessRef) -> simulated.SimulatedProcess | None:
        return self.world.processes.get((ref.container_id, ref.process_id, ref.shim_pid))

    def _current(self, ref: ProcessRef) -> bool:
        # The world addresses processes by container and process id, so act only when that
        # is still the process whose ref the journal holds.
        process = self._process(ref)
        if process is None or not process.alive:
            return False
        try:
            latest = self.world.process(ref.container_id, ref.process_id)
        except KeyError:
            return False
        return latest is process

    def exit_process(self, ref: ProcessRef, status: int) -> bool:
        if not self._current(ref):
            return False
        signal = status - 128 if status > 128 and status - 128 < signals.NSIG else None
        self.world.exit_process(ref.container_id, ref.process_id, status, signal=signal)
        return True

    def oom_kill(self, ref: ProcessRef) -> bool:
        if not self._current(ref):
            return False
        self.world.exit_process(ref.container_id, ref.process_id, 128 + signals.SIGKILL,
                                signal=signals.SIGKILL, oom=True)
        return True

    def signal_init(self, container_id: str, signal: int) -> bool:
        if self.world.status(container_id) not in ("created", "running", "paused"):
            return False
        try:
            self.world.signal_process(container_id, simulated.INIT, signal)
        except ValueError:
            return False
        return True

    def kill_shim(self, ref: ProcessRef) -> bool:
        process = self._process(ref)
        if process is None or not process.shim_alive or not self._current(ref):
            return False
        self.world.kill_shim(ref.container_id, ref.process_id)
        return True

    def pause_behind_back(self, container_id: str) -> bool:
        # Only a running container: bosun's rules have no paused-while-created state.
        if self.world.status(container_id) != "running":
            return False
        self.world.pause_behind_back(container_id)
        return True

    def resume_behind_back(self, container_id: str) -> bool:
        container = self.world.containers.get(container_id)
        if container is None or container.status != "paused" or container.status_before_pause != "running":
            return False
        self.world.resume_behind_back(container_id)
        return True

    def runtime_status(self, container_id: str) -> str | None:
        return self.world.status(container_id)

    def process_alive(self, ref: ProcessRef) -> bool:
        process = self._process(ref)
        return process is not None and process.alive

    def produced_exit(self, ref: ProcessRef) -> ExitInfo | None:
        process = self._process(ref)
        if process is None or process.shim_alive:
            return None
        return process.exit or process.lost

    def remembered_exit(self, ref: ProcessRef) -> ExitInfo | None:
        # The simulated world keeps every process's record, so nothing is ever overwritten.
        return self.produced_exit(ref)

    def arm(self, fault: Fault, container_id: str | None) -> Callable[[], None]:
        fired = False

        def hook(call: simulated.SimulatedCall) -> None:
            nonlocal fired
            if fired or call.operation != fault.target or call.phase != fault.phase:
                return
            if container_id is not None and call.container_id != container_id:
                return
            fired = True
            if fault.kind == "crash-in-call":
                raise simulated.SimulatedCrash(call.operation, call.phase, call.container_id)
            raise _call_failure(call)

        self.world.add_hook(hook)

        def disarm() -> None:
            with contextlib.suppress(ValueError):  # already removed
                self.world.remove_hook(hook)

        return disarm

    def settle(self, supervisor: Any) -> None:
        self.world.drain()

    def close(self) -> None:
        self.world.close()
        shutil.rmtree(self.base, ignore_errors=True)


class _HeldCallbackShim(simulated.SimulatedShim):
    """A simulated shim whose exit callbacks go through ``SimulatedBackend.deliver``."""

    def __init__(self, world: simulated.SimulatedWorld, backend: SimulatedBackend) -> None:
        super().__init__(world)
        self._backend = backend
        self._closed = False

    def watch(self, ref: ProcessRef, on_exit: Callable[[ProcessRef, ExitInfo], None]) -> None:
        def held(ref: ProcessRef, info: ExitInfo) -> None:
            # A crashed daemon's watcher is gone, even for a callback held back before the crash.
            self._backend.deliver(lambda: None if self._closed else on_exit(ref, info))

        super().watch(ref, held)

    def close(self) -> None:
        self._closed = True
        super().close()


def _call_failure(call: simulated.SimulatedCall) -> Exception:
    """Build the error an adapter raises when ``call`` fails, as ``fail_next`` does."""
    message = "injected failure"
    container_id = call.container_id or ""
    if call.operation in simulated.RUNTIME_OPERATIONS:
        return RuntimeCommandError(call.operation, container_id, message,
                                   argv=[call.operation, container_id], exit_status=1)
    if call.operation in ("create", "exec", "restore"):
        return ShimError(container_id, message, process_id=call.process_id or "init")
    return AdapterError(f"{call.operation} failed for container {container_id}: {message}")


# -- real runtime backend -------------------------------------------------------------------------

# Safety net for waiting on a real process or shim, not a measurement.
REAL_WAIT_LIMIT = 30.0
# Directory in the rootfs where the host writes the status a waiting process exits with.
_EXIT_DIR = "exits"


def _waiter_script(name: str) -> list[str]:
    # Runs until the host writes /exits/<name>, then exits with the status written there.
    path = f"/{_EXIT_DIR}/{name}"
    return ["sh", "-c", f"while [ ! -e {path} ]; do sleep 0.1; done; exit $(cat {path})"]


class RealBackend:
    """A ``Backend`` on a real OCI runtime binary under conmon, with busybox bundles.

    Needs root, conmon and busybox-static. Everything lives under a short private directory,
    because conmon's attach socket paths must fit in 107 bytes. ``close`` deletes every
    runtime container under its runtime root and kills every conmon whose pid file lies there.
    """

    features = frozenset()
    synchronous = "FULL"

    def __init__(self, runtime: str = "runc", conmon: str = "conmon") -> None:
        self.runtime_binary = runtime
        self.conmon = conmon
        self.base = Path(tempfile.mkdtemp(prefix="bc", dir="/tmp"))
        self.root = self.base / "r"
        self.journal_url = f"sqlite:///{self.base}/journal.db"
        self._bundles: dict[str, Path] = {}
        self._shims: list[Any] = []
        self._reader: Shim | None = None
        self._exits: dict[tuple[str, str, int], ExitInfo] = {}

    @property
    def runtime_root(self) -> Path:
        return self.root / "runtime"

    def adapters(self) -> tuple[Runtime, Shim]:
        from adapters.conmon import ConmonShim
        from adapters.runc import OciRuntime

        runtime = OciRuntime(self.runtime_binary, self.runtime_root, log_dir=self.root / "logs")
        shim = ConmonShim(runtime, conmon=self.conmon, state_root=self.root / "containers")
        self._shims.append(shim)
        return runtime, shim

    def bundle(self, container_id: str) -> str:
        from adapters.bundle import make_busybox_bundle

        bundle = self._bundles.get(container_id)
        if bundle is None:
            bundle = make_busybox_bundle(self.base / f"b-{container_id}", _waiter_script("init"),
                                         runtime=self.runtime_binary)
            # A cgroup of this history's own: the runtime would otherwise name it after the
            # id, which another history or test may be using at the same time.
            config_path = bundle / "config.json"
            config = json.loads(config_path.read_text())
            config.setdefault("linux", {})["cgroupsPath"] = f"/{self.base.name}-{container_id}"
            config_path.write_text(json.dumps(config, indent=2) + "\n")
            self._bundles[container_id] = bundle
        exits = bundle / "rootfs" / _EXIT_DIR
        shutil.rmtree(exits, ignore_errors=True)
        exits.mkdir()
        return str(bundle)

    def exec_args(self, container_id: str, exec_id: str) -> list[str]:
        bundle = self._bundles.get(container_id)
        if bundle is not None:
            (bundle / "rootfs" / _EXIT_DIR / exec_id).unlink(missing_ok=True)
        return _waiter_script(exec_id)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.runtime_binary, "--root", str(self.runtime_root), *args],
                              capture_output=True, text=True, timeout=REAL_WAIT_LIMIT)

    def _wait_exit(self, ref: ProcessRef) -> None:
        deadline = time.monotonic() + REAL_WAIT_LIMIT
        while time.monotonic() < deadline and self.produced_exit(ref) is None:
            time.sleep(0.05)

    def exit_process(self, ref: ProcessRef, status: int) -> bool:
        bundle = self._bundles.get(ref.container_id)
        if bundle is None or not self.process_alive(ref):
            return False
        if self.runtime_status(ref.container_id) == "paused":
            return False  # a frozen process cannot read its exit file
        exit_file = bundle / "rootfs" / _EXIT_DIR / ref.process_id
        exit_file.write_text(f"{status}\n")
        self._wait_exit(ref)
        return True

    def oom_kill(self, ref: ProcessRef) -> bool:
        return False

    def signal_init(self, container_id: str, signal: int) -> bool:
        if self.runtime_status(container_id) not in ("created", "running", "paused"):
            return False
        return self._run("kill", container_id, str(signal)).returncode == 0

    def kill_shim(self, ref: ProcessRef) -> bool:
        from adapters.identity import is_same_process

        if not is_same_process(ref.shim_pid, ref.shim_start_time):
            return False
        os.kill(ref.shim_pid, signals.SIGKILL)
        deadline = time.monotonic() + REAL_WAIT_LIMIT
        while time.monotonic() < deadline and is_same_process(ref.shim_pid, ref.shim_start_time):
            time.sleep(0.02)
        return True

    def pause_behind_back(self, container_id: str) -> bool:
        if self.runtime_status(container_id) != "running":
            return False
        return self._run("pause", container_id).returncode == 0

    def resume_behind_back(self, container_id: str) -> bool:
        if self.runtime_status(container_id) != "paused":
            return False
        return self._run("resume", container_id).returncode == 0

    def runtime_status(self, container_id: str) -> str | None:
        result = self._run("state", container_id)
        if result.returncode != 0:
            return None
        return str(json.loads(result.stdout)["status"])

    def process_alive(self, ref: ProcessRef) -> bool:
        from adapters.identity import is_same_process

        return is_same_process(ref.pid, ref.pid_start_time)

    def produced_exit(self, ref: ProcessRef) -> ExitInfo | None:
        key = (ref.container_id, ref.process_id, ref.shim_pid)
        if key in self._exits:
            return self._exits[key]
        if not Path(ref.exit_file).parent.is_dir():
            # A delete removed the shim's directory with its exit file, so what conmon wrote
            # is no longer known, unless an earlier check read it.
            return None
        # A shim of its own that never watches anything: it only reads conmon's exit files.
        if self._reader is None:
            self._reader = self.adapters()[1]
        info = self._reader.read_exit(ref)
        if info is not None:
            self._exits[key] = info
        return info

    def remembered_exit(self, ref: ProcessRef) -> ExitInfo | None:
        return self._exits.get((ref.container_id, ref.process_id, ref.shim_pid))

    def daemon_call(self) -> contextlib.AbstractContextManager[None]:
        # conmon's watcher thread already waits for the container lock a command holds.
        return contextlib.nullcontext()

    def arm(self, fault: Fault, container_id: str | None) -> Callable[[], None]:
        msg = f"the real backend cannot inject {fault}"
        raise NotImplementedError(msg)

    def settle(self, supervisor: Any) -> None:
        """Wait until every exit conmon recorded is journaled, or the safety limit passes."""
        deadline = time.monotonic() + REAL_WAIT_LIMIT
        while time.monotonic() < deadline:
            waiting = False
            for state in supervisor.all_states():
                for process in state.processes.values():
                    if process.status == ProcessStatus.EXITED or not process.ref:
                        continue
                    if self.produced_exit(ProcessRef.from_data(process.ref)) is not None:
                        waiting = True
            if not waiting:
                return
            time.sleep(0.05)

    def close(self) -> None:
        for shim in self._shims:
            shim.close()
        if self.runtime_root.exists():
            listed = self._run("list", "-q")
            for container_id in listed.stdout.split():
                self._run("delete", "--force", container_id)
        _kill_conmons_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_conmons_under(root: Path) -> None:
    """SIGKILL every live conmon whose pid file lies under ``root``."""
    import psutil

    for pid_file in root.rglob("conmon.pid"):
        text = pid_file.read_text().strip()
        if not text.isdigit():
            continue
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(text))
            # The pid may belong to another process by now; kill only a conmon.
            if process.name() == "conmon":
                process.kill()


def real_runtime_problem(runtime: str, conmon: str = "conmon") -> str | None:
    """Return why ``runtime`` cannot run a busybox container under conmon here, or None.

    Creates, starts and deletes one container; a refusal is reported in the runtime's words.
    """
    if os.geteuid() != 0:
        return "needs root to run containers"
    for executable, package in ((runtime, None), (conmon, "conmon"), ("busybox", "busybox-static")):
        if shutil.which(executable) is None:
            hint = f" (Debian package {package!r})" if package else ""
            return f"{executable!r} not found{hint}"
    backend = RealBackend(runtime, conmon)
    try:
        runtime_adapter, shim = backend.adapters()
        bundle = Path(backend.bundle("probe"))
        state_dir = backend.root / "containers" / "probe"
        state_dir.mkdir(parents=True)
        try:
            shim.create("probe", bundle, state_dir, timeout=REAL_WAIT_LIMIT)
            runtime_adapter.start("probe")
        except AdapterError as exc:
            return f"{runtime} refused to run a busybox container: {exc}"
        return None
    finally:
        backend.close()


# -- command line -------------------------------------------------------------------------------


def run_conformance(machine: type[RuleBasedStateMachine], *, examples: int, steps: int,
                    shrink: bool = True, derandomize: bool = False) -> None:
    """Run ``machine`` for ``examples`` histories of up to ``steps`` steps; raise on failure.

    Without ``shrink`` the first failing history is reported as found, which on a real
    runtime saves the minutes hypothesis may spend shortening it. With ``derandomize`` the
    histories are the same on every run, for a CI job that must be repeatable.
    """
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ))


def main(argv: Sequence[str] | None = None) -> int:
    """Check a runc-compatible runtime against bosun's lifecycle rules; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bosun.conformance",
        description="Run random lifecycle histories with crashes against a real OCI runtime "
                    "under conmon and check that it behaves as bosun's rules expect.",
    )
    parser.add_argument("--runtime", required=True, help="runtime binary, a path or a name on PATH")
    parser.add_argument("--conmon", default="conmon", help="conmon binary (default: conmon)")
    parser.add_argument("--examples", type=int, default=5, help="histories to run (default: 5)")
    parser.add_argument("--steps", type=int, default=15, help="maximum steps per history (default: 15)")
    parser.add_argument("--shrink", action="store_true",
                        help="shorten a failing history before reporting it (slow on a real runtime)")
    options = parser.parse_args(argv)
    if options.examples < 1 or options.steps < 1:
        parser.error("--examples and --steps must be at least 1")

    # bosun's own warnings (a crashed run, an orphan killed) are expected here, not news.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    problem = real_runtime_problem(options.runtime, options.conmon)
    if problem is not None:
        print(f"conformance: cannot check {options.runtime}: {problem}", file=sys.stderr)
        return 2

    def make_backend() -> RealBackend:
        return RealBackend(options.runtime, options.conmon)

    counters = Counters()
    machine = lifecycle_machine(make_backend, features=RealBackend.features, counters=counters)
    print(f"conformance: checking {options.runtime} under {options.conmon}: "
          f"{options.examples} histories of up to {options.steps} steps")
    started = time.monotonic()
    try:
        run_conformance(machine, examples=options.examples, steps=options.steps,
                        shrink=options.shrink)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the summary's verdict
        elapsed = time.monotonic() - started
        print(f"conformance: FAILED after {elapsed:.1f} s ({counters.summary()})")
        failures = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        for number, failure in enumerate(failures, 1):
            # hypothesis attaches the failing history's steps to the exception as notes.
            print(f"\nconformance: failure {number} of {len(failures)}: "
                  f"{type(failure).__name__}: {failure}")
            for note in getattr(failure, "__notes__", []):
                print(note)
        return 1
    elapsed = time.monotonic() - started
    print(f"conformance: PASSED in {elapsed:.1f} s ({counters.summary()})")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "conformance"
    sys.exit(main())
