"""Shared pieces of the benchmarks: sizes, statistics, timing, the bare runc baseline and daemons."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adapters.bundle import make_busybox_bundle
from tests.daemon_support import REPOSITORY, BosunDaemon, kill_conmons_under

OUT_DIR = REPOSITORY / "bench" / "out"

# Seconds any single runtime or CLI call may take before the benchmark gives up; a safety net.
CALL_LIMIT = 60.0


@dataclasses.dataclass
class Sizes:
    """How much work each group does; ``smoke`` shrinks every number so the run takes seconds."""

    lifecycle_runs: int = 30
    transition_rounds: int = 15
    concurrent_containers: int = 100
    concurrent_clients: int = 10
    listed_containers: int = 1000
    cli_repeats: int = 30
    durable_events: int = 600
    durable_threads: tuple[int, ...] = (1, 4, 8)
    batch_size: int = 100
    batches: int = 30
    replay_containers: int = 1000
    replay_events: int = 1_000_000
    restart_events: int = 100_000
    restart_repeats: int = 3
    idle_containers: int = 100
    idle_seconds: float = 10.0
    recovery_containers: int = 100
    recovery_exited: int = 20

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            lifecycle_runs=3,
            transition_rounds=2,
            concurrent_containers=6,
            concurrent_clients=3,
            listed_containers=20,
            cli_repeats=3,
            durable_events=40,
            durable_threads=(1, 2),
            batch_size=10,
            batches=3,
            replay_containers=10,
            replay_events=2_000,
            restart_events=1_000,
            restart_repeats=1,
            idle_containers=3,
            idle_seconds=1.0,
            recovery_containers=4,
            recovery_exited=1,
        )


@dataclasses.dataclass
class Table:
    """One Markdown table of the report."""

    headers: list[str]
    rows: list[list[str]]
    title: str = ""


@dataclasses.dataclass
class Section:
    """One benchmark group's part of the report: what was run, tables, notes and raw samples."""

    name: str
    title: str
    method: str
    tables: list[Table] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)


# -- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (``fraction`` 0.95 for p95) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    """Format seconds as milliseconds for a table cell."""
    return f"{seconds * 1000:.1f}"


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "n/a"


def goal_gap(
    value: float, goal: float, *, lower_is_better: bool, show: Callable[[float], str] | None = None
) -> str:
    """Say whether ``value`` meets ``goal`` and, if not, by how much; ``show`` formats amounts."""
    show = show or (lambda amount: f"{amount:,.2f}")
    met = value <= goal if lower_is_better else value >= goal
    if met:
        return "met"
    if lower_is_better:
        return f"missed: {show(value - goal)} over, {value / goal:.1f}x the limit"
    return f"missed: {show(goal - value)} short, {value / goal:.2f}x the goal"


def show_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


# -- timing ---------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> float:
    """Run ``action`` and return its wall time in seconds."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run_quiet(
    argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Run a command with no stdin, discarding stdout unless ``capture``; raise with its stderr if it fails.

    stderr goes to a temporary file, not a pipe: ``runc create`` hands its stdio to the
    container process, which would hold a pipe open until it exits. Capture stdout only from
    commands that leave no process behind.
    """
    with tempfile.TemporaryFile() as errors:
        result = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=errors,
            env=env, cwd=REPOSITORY, timeout=CALL_LIMIT, check=False,
        )
        if check and result.returncode != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            msg = f"{' '.join(map(str, argv))} exited {result.returncode}: {text}"
            raise RuntimeError(msg)
    return result


def bosun_argv(*args: str) -> list[str]:
    """Return the argv of one ``bosun`` command through the venv's interpreter."""
    return [sys.executable, "-m", "bosun", *args]


# -- bundles, runc and daemons --------------------------------------------------------------


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """Yield a short directory under /tmp (conmon's socket paths must stay under 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def busybox_bundle(path: Path, args: Sequence[str]) -> Path:
    return make_busybox_bundle(path, list(args))


class BareRunc:
    """runc with a root directory of its own: the baseline that bosun's calls are compared with."""

    def __init__(self, base: Path) -> None:
        self.root = base / "runc-root"
        self.root.mkdir(parents=True, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.root), *args]

    def call(self, *args: str) -> None:
        run_quiet(self.argv(*args))

    def cleanup(self) -> None:
        """Delete every container under this root, by id, killing live ones first."""
        listed = subprocess.run(self.argv("list", "-q"), capture_output=True, text=True, timeout=CALL_LIMIT)
        for container_id in listed.stdout.split():
            subprocess.run(self.argv("delete", "--force", container_id), capture_output=True, timeout=CALL_LIMIT)


@contextlib.contextmanager
def bosun_daemon(base: Path | None = None, *, start: bool = True) -> Iterator[BosunDaemon]:
    """Yield a ``BosunDaemon``; on exit stop it and remove every container and conmon it left."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    daemon = BosunDaemon(base)
    try:
        if start:
            daemon.start()
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        daemon.cleanup()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def interpreter_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BOSUN_CRASH_AT", None)
    return env


__all__ = [
    "BareRunc", "BosunDaemon", "OUT_DIR", "REPOSITORY", "Section", "Sizes", "Table",
    "bosun_argv", "bosun_daemon", "busybox_bundle", "goal_gap", "kill_conmons_under", "median", "ms",
    "percentile", "rate", "run_quiet", "scratch_dir", "show_ms", "timed", "wait_until",
]


def time_to_first_command(daemon: BosunDaemon, timeout: float = 300.0) -> tuple[float, dict[str, Any]]:
    """Start ``daemon`` and return the seconds until its first reply, and that version reply.

    The clock starts just before the daemon process is spawned and stops when an in-process
    client's ``GET /v1/version`` returns; the socket is polled every 2 ms.
    """
    from bosun.client import Client, ClientError

    client = Client(daemon.socket, timeout=5.0)
    started = time.perf_counter()
    daemon.start(wait=False)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        try:
            reply = client.version()
        except ClientError:
            assert daemon.process is not None
            if daemon.process.poll() is not None:
                msg = f"daemon exited with {daemon.process.returncode} during start-up:\n{daemon.log()}"
                raise RuntimeError(msg) from None
            time.sleep(0.002)
            continue
        return time.perf_counter() - started, reply
    msg = f"daemon did not serve within {timeout:g} s:\n{daemon.log()}"
    raise RuntimeError(msg)


def import_time(module: str, repeats: int = 5) -> float:
    """Return the median seconds a fresh interpreter takes to import ``module`` and exit."""
    argv = [sys.executable, "-c", f"import {module}"]
    return median([timed(lambda: run_quiet(argv)) for _ in range(repeats)])
