"""Fixtures for the hardening tests: a real daemon per test and a record of what it left.

Container ids carry a random suffix because runc 1.1 without ``cgroupsPath`` names the cgroup
after the container id, so two test runs using the same id on one machine would share it.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest

from journal import EventStore
from tests.daemon_support import BosunDaemon, missing_real_runtime


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def event_count(daemon: BosunDaemon) -> int:
    """Return the number of events in the daemon's journal, read through ``EventStore``."""
    store = EventStore.open(daemon.journal, migrate_schema=False)
    try:
        return store.last_seq()
    finally:
        store.close()


def runtime_containers(daemon: BosunDaemon) -> set[str]:
    runtime_root = daemon.root / "runtime"
    if not runtime_root.exists():
        return set()
    listed = subprocess.run(["runc", "--root", str(runtime_root), "list", "-q"],
                            capture_output=True, text=True, timeout=30, check=True)
    return set(listed.stdout.split())


def conmon_pids(daemon: BosunDaemon) -> set[int]:
    """Return the pids of live conmons whose command line names the daemon's root."""
    pids = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "conmon" and str(daemon.root) in " ".join(process.info["cmdline"] or []):
                pids.add(process.pid)
    return pids


@dataclass(frozen=True)
class Leftovers:
    """Everything a rejected command must leave as it was."""

    events: int
    state_dirs: frozenset[str]
    runtime: frozenset[str]
    conmons: frozenset[int]

    @classmethod
    def of(cls, daemon: BosunDaemon) -> Leftovers:
        containers = daemon.root / "containers"
        state_dirs = frozenset(path.name for path in containers.iterdir()) if containers.exists() else frozenset()
        return cls(event_count(daemon), state_dirs, frozenset(runtime_containers(daemon)),
                   frozenset(conmon_pids(daemon)))


def assert_nothing_left(daemon: BosunDaemon, before: Leftovers) -> None:
    after = Leftovers.of(daemon)
    assert after.events == before.events
    assert after.state_dirs == before.state_dirs
    assert after.runtime == before.runtime
    assert after.conmons == before.conmons


@pytest.fixture
def real_runtime() -> None:
    reason = missing_real_runtime()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def daemon(real_runtime: None) -> Iterator[BosunDaemon]:
    started = BosunDaemon()
    try:
        started.start()
        yield started
    finally:
        started.cleanup()
