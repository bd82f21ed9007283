"""The bosun daemon: opens the journal, recovers, and serves the API on a Unix socket.

Start-up order is what makes a restart trustworthy: take the root's lock (one daemon per root),
open and migrate the journal, journal ``DaemonStarted`` with whether the last run stopped
cleanly, replay every container, reconcile each with the live system, journal the counts, and
only then open the socket. No command is served while recovery runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.base import AdapterError, Runtime, RuntimeState, Shim
from bosun import __version__, redact
from bosun.config import ORPHAN_POLICIES, DaemonSettings
from bosun.recovery import Finding, Reconciler, count_kinds, unknown_runtime_containers
from bosun.supervisor import Supervisor
from bosun.views import recovery_windows
from fsm import events as ev
from fsm.fold import fold_daemon
from fsm.rules import ContainerStatus
from fsm.streams import daemon_stream
from journal import EventStore, JournalError, NewEvent

logger = logging.getLogger(__name__)


class StartupError(Exception):
    """Raised when the daemon cannot start; the message names what to fix."""


class Daemon:
    """One running daemon: journal, adapters, supervisor and the recovery that precedes serving."""

    def __init__(self, settings: DaemonSettings, store: EventStore, runtime: Runtime, shim: Shim) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self.shim = shim
        self.host = store.host
        self.stream = daemon_stream(self.host)
        self.stopping = False
        env_key = None if settings.keep_env_values else redact.load_or_create_key(_key_path(settings, store))
        self.supervisor = Supervisor(
            store, runtime, shim, settings, exit_command=self._exit_command, env_key=env_key
        )
        self.reconciler = Reconciler(self.supervisor, orphan_policy=settings.orphan_policy)
        self.last_recovery: dict[str, Any] = {}

    def _exit_command(self, container_id: str, process_id: str) -> list[str]:
        # conmon runs this after the process exits. It is a second path, besides the pidfd
        # watch, that asks a listening daemon to read the exit file now.
        return [sys.executable, "-m", "bosun.notify", str(self.settings.socket), container_id, process_id]

    def describe(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "runtime": self.runtime.name,
            "shim": self.settings.shim,
            "journal": self.store.url,
            "root": str(self.settings.root),
            "socket": str(self.settings.socket),
            "pid": os.getpid(),
            "host": self.host,
            "recovery": self.last_recovery,
        }

    # -- daemon stream ----------------------------------------------------------------------

    def _append_daemon(self, event: ev.Event) -> None:
        version = self.store.stream_version(self.stream)
        self.store.append(self.stream, [NewEvent(event.type, event.to_data())], expected_version=version)

    def recovery_windows(self) -> list[tuple[int, int]]:
        return recovery_windows(self.store.read_all(stream_prefix="daemon/"))

    # -- recovery ---------------------------------------------------------------------------

    def recover(self) -> dict[str, Any]:
        """Replay the journal and reconcile every container; journal the run's start and counts."""
        started = time.monotonic()
        # ``runtime list`` spends its time in the runtime's own process, so it runs beside the
        # replay instead of after it. Nothing changes the runtime's containers before the
        # reconcile pass, so a listing taken now is as good as one taken after the replay.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recovery-list") as pool:
            pending_listing = pool.submit(self.runtime.list)
            previous_clean, loaded = self._replay()
            try:
                listed: list[RuntimeState] | None = pending_listing.result()
            except AdapterError as exc:
                logger.warning("listing runtime containers failed, checking each container instead: %s", exc)
                listed = None

        # Nothing else runs during recovery, so the states are read in place, not copied.
        candidates = [
            state.id for state in self.supervisor._states.values()
            if state.pending or state.status not in (ContainerStatus.DELETED, ContainerStatus.NEW)
        ]
        self._append_daemon(ev.RecoveryStarted(containers=len(candidates)))
        self.supervisor.crash.reach("recovery:after-replay")

        findings: list[Finding] = []
        failed = 0
        self.reconciler.listing = None if listed is None else {item.id: item for item in listed}
        for index, container_id in enumerate(candidates):
            try:
                findings.extend(self.reconciler.reconcile(container_id))
            except (AdapterError, JournalError, OSError) as exc:
                # One broken container must not keep the others from recovering.
                failed += 1
                logger.error("container %s: recovery failed: %s", container_id, exc)
            if index == 0:
                self.supervisor.crash.reach("recovery:mid-reconcile")

        self.reconciler.listing = None
        watched = self.supervisor.watch_all()
        if listed is None:
            unknown = unknown_runtime_containers(self.supervisor)
        else:
            # Every container the journal believed in was a candidate, so a listed container that
            # was not one is unknown. The reconcile pass may have deleted some candidates since.
            believed = set(candidates)
            unknown = [item for item in listed if item.id not in believed]
        for item in unknown:
            logger.warning("runtime container %s (%s) is not in the journal; leaving it alone", item.id, item.status)
            self._append_daemon(ev.UnknownContainerFound(container_id=item.id, status=item.status))

        self.supervisor.crash.reach("recovery:before-finish")
        counts = {
            "containers_loaded": loaded,
            "containers_reconciled": len(candidates),
            "failed": failed,
            "watched": watched,
            "unknown_runtime_containers": len(unknown),
            **count_kinds(findings),
        }
        duration = time.monotonic() - started
        self._append_daemon(ev.RecoveryFinished(counts=counts, duration_seconds=round(duration, 6)))
        self.last_recovery = {"counts": counts, "duration_seconds": duration, "previous_run_clean": previous_clean}
        logger.info("recovery finished in %.3f s: %s", duration, counts)
        return self.last_recovery

    def _replay(self) -> tuple[bool, int]:
        """Journal this run's start; rebuild every container's state.

        Returns whether the previous run stopped cleanly and the number of containers loaded.
        """
        previous = fold_daemon(self.store.read_stream(self.stream), host=self.host)
        previous_clean = not previous.running
        if previous.runs and not previous_clean:
            logger.warning("the previous daemon run (pid %s) ended without a clean stop", previous.pid)
        self._append_daemon(ev.DaemonStarted(
            pid=os.getpid(), version=__version__, previous_run_clean=previous_clean,
            runtime=self.runtime.name, shim=self.settings.shim,
        ))
        return previous_clean, self.supervisor.load()

    def audit(self) -> dict[str, Any]:
        """Compare belief with reality for every container without changing anything."""
        containers = []
        ok = True
        open_intents = []
        for state in self.supervisor.all_states():
            if state.status in (ContainerStatus.DELETED, ContainerStatus.NEW) and not state.pending:
                continue
            findings = [f for f in self.reconciler.inspect(state) if f.kind != "shim_alive"]
            runtime_state = self.reconciler.runtime_state(state.id)
            reality = runtime_state.status if runtime_state is not None else "missing"
            if not findings and _status_disagrees(state.status, reality):
                findings.append(Finding("state_mismatch", f"journal says {state.status.value}, runtime says {reality}"))
            for intent in state.pending.values():
                open_intents.append({"container": state.id, "command_id": intent.command_id, "type": intent.type, "seq": intent.seq})
            if findings:
                ok = False
            containers.append({
                "id": state.id,
                "belief": state.status.value,
                "reality": reality,
                "version": state.version,
                "findings": [finding.to_json() for finding in findings],
            })
        if open_intents:
            ok = False

        daemon = fold_daemon(self.store.read_stream(self.stream), host=self.host)
        crashed_runs = _crashed_runs(self.store.read_stream(self.stream))
        unknown = [{"id": item.id, "status": item.status} for item in unknown_runtime_containers(self.supervisor)]
        verdict = self.store.verify()
        if not verdict.ok:
            ok = False
        return {
            "ok": ok,
            "containers": containers,
            "open_intents": open_intents,
            "crashed_runs": crashed_runs,
            "unknown_runtime_containers": unknown,
            "daemon": {"runs": daemon.runs, "crashed_runs": daemon.crashed_runs, "started_at": daemon.started_at},
            "journal": {
                "ok": verdict.ok,
                "events_checked": verdict.events_checked,
                "last_seq": verdict.last_seq,
                "first_bad_seq": verdict.first_bad_seq,
                "reason": verdict.reason,
            },
        }

    def stop(self, reason: str) -> None:
        self.stopping = True
        try:
            self._append_daemon(ev.DaemonStopped(reason=reason))
        except JournalError as exc:
            logger.error("journaling the daemon stop failed: %s", exc)
        self.shim.close()
        self.store.close()


def _status_disagrees(belief: ContainerStatus, reality: str) -> bool:
    expected = {
        ContainerStatus.CREATED: {"created"},
        ContainerStatus.RUNNING: {"running"},
        ContainerStatus.PAUSED: {"paused"},
        ContainerStatus.STOPPED: {"stopped"},
    }.get(belief)
    return expected is not None and reality not in expected


def _crashed_runs(records: list[Any]) -> list[dict[str, Any]]:
    """Return the daemon runs that started and never journaled a stop."""
    crashed = []
    current: dict[str, Any] | None = None
    for record in records:
        if record.type == "DaemonStarted":
            if current is not None:
                crashed.append(current)
            current = {"pid": record.data.get("pid"), "started_at": record.recorded_at, "seq": record.seq}
        elif record.type == "DaemonStopped":
            current = None
    return crashed


def _key_path(settings: DaemonSettings, store: EventStore) -> Path:
    """Keep the redaction key beside an SQLite journal file, else in the state root."""
    if store.sqlite_path is not None:
        return Path(f"{store.sqlite_path}.key")
    return settings.root / "journal.key"


def prepare_root(settings: DaemonSettings) -> None:
    """Create the state root (0700) or check that an existing one is ours and private."""
    settings.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The owner is checked before anything is created inside, so a foreign root is left as found.
    info = settings.root.stat()
    if info.st_uid != os.geteuid():
        raise StartupError(
            f"state root {settings.root} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}); "
            "use a root directory of your own (--root or BOSUN_ROOT)"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(settings.root, 0o700)
    for path in (settings.containers_dir, settings.runtime_root):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)


def lock_root(settings: DaemonSettings) -> int:
    """Take the root's exclusive lock so that two daemons never share one root."""
    fd = os.open(settings.root / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(f"another bosun daemon (pid {holder}) holds the state root {settings.root}; stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def check_socket_free(path: Path) -> None:
    """Reject a socket path on which a live daemon accepts connections; remove a stale one."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        raise StartupError(f"socket path {path} exists and cannot be checked: {exc}") from None
    finally:
        probe.close()
    raise StartupError(f"another bosun daemon is serving on socket {path}; stop it or use another --socket")


def build_adapters(settings: DaemonSettings) -> tuple[Runtime, Shim]:
    from adapters.conmon import ConmonShim
    from adapters.runc import OciRuntime

    runtime = OciRuntime(settings.runtime, settings.runtime_root, extra_args=settings.runtime_args,
                         log_dir=settings.root / "logs")
    shim = ConmonShim(runtime, conmon=settings.shim, state_root=settings.containers_dir)
    return runtime, shim


async def serve(daemon: Daemon, settings: DaemonSettings) -> None:
    from bosun.api import build_app

    app = build_app(daemon)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # The socket is created under a umask that leaves it owner-only from its first moment.
    old_umask = os.umask(0o177)
    try:
        site = web.UnixSite(runner, str(settings.socket))
        await site.start()
    finally:
        os.umask(old_umask)
    os.chmod(settings.socket, 0o600)
    logger.info("serving on %s", settings.socket)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, lambda name=signal.Signals(number).name: (received.append(name), stop.set()))
    await stop.wait()
    logger.info("stopping on %s", received[0] if received else "request")
    daemon.stopping = True
    await runner.cleanup()
    settings.socket.unlink(missing_ok=True)
    daemon.stop(f"signal {received[0]}" if received else "stopped")


def run(settings: DaemonSettings) -> int:
    """Run the daemon until SIGTERM or SIGINT; return the process exit status."""
    if settings.orphan_policy not in ORPHAN_POLICIES or settings.orphan_policy != "kill":
        print(f"bosun daemon: invalid orphan policy {settings.orphan_policy!r}: only 'kill' is implemented", file=sys.stderr)
        return 2
    lock_fd = None
    try:
        prepare_root(settings)
        lock_fd = lock_root(settings)
        check_socket_free(settings.socket)
        settings.socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = EventStore.open(settings.journal_url, synchronous=settings.synchronous)
    except (StartupError, JournalError, OSError) as exc:
        print(f"bosun daemon: {exc}", file=sys.stderr)
        return 1

    try:
        runtime, shim = build_adapters(settings)
        daemon = Daemon(settings, store, runtime, shim)
        daemon.recover()
    except (AdapterError, JournalError, OSError) as exc:
        print(f"bosun daemon: start-up failed: {exc}", file=sys.stderr)
        store.close()
        return 1

    try:
        asyncio.run(serve(daemon, settings))
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    return 0
