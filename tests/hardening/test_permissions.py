"""File modes of a real daemon's socket, state and journal, and refused starts on foreign paths."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from tests.daemon_support import BosunDaemon
from tests.hardening.conftest import unique_id

pytestmark = pytest.mark.runc

NOBODY = 65534


def mode_of(path: os.PathLike[str] | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def second(real_runtime: None) -> Iterator[BosunDaemon]:
    """A second daemon, not started, cleaned up after the test."""
    other = BosunDaemon()
    try:
        yield other
    finally:
        other.cleanup()


def test_socket_state_journal_private(daemon: BosunDaemon) -> None:
    container_id = unique_id("modes")
    daemon.cli("run", "--detach", container_id, str(daemon.bundle(["sleep", "600"])))
    journal = daemon.base / "journal.db"

    assert stat.S_ISSOCK(os.lstat(daemon.socket).st_mode)
    assert mode_of(daemon.socket) == 0o600
    assert mode_of(daemon.root) == 0o700
    assert mode_of(daemon.root / "containers") == 0o700
    assert mode_of(daemon.root / "containers" / container_id) == 0o700
    assert mode_of(daemon.root / "runtime") == 0o700
    assert mode_of(journal) == 0o600
    assert mode_of(f"{journal}-wal") == 0o600
    assert mode_of(f"{journal}-shm") == 0o600
    assert mode_of(f"{journal}.key") == 0o600


def test_exec_state_dir_private(daemon: BosunDaemon) -> None:
    container_id = unique_id("modes")
    daemon.cli("run", "--detach", container_id, str(daemon.bundle(["sleep", "600"])))

    daemon.cli("exec", container_id, "probe", "--", "sleep", "600")

    assert mode_of(daemon.root / "containers" / container_id / "exec") == 0o700
    assert mode_of(daemon.root / "containers" / container_id / "exec" / "probe") == 0o700


def test_socket_of_live_daemon_refused(daemon: BosunDaemon, second: BosunDaemon) -> None:
    container_id = unique_id("held")
    daemon.cli("run", "--detach", container_id, str(daemon.bundle(["sleep", "600"])))
    socket_inode = os.lstat(daemon.socket).st_ino
    second.socket = daemon.socket

    second.start(wait=False)
    status = second.wait_exit()

    assert status == 1
    assert f"another bosun daemon is serving on socket {daemon.socket}" in second.log()
    assert os.lstat(daemon.socket).st_ino == socket_inode
    assert daemon.json("info", container_id)["state"] == "running"
    assert daemon.runtime_state(container_id)["status"] == "running"


def test_root_of_live_daemon_refused(daemon: BosunDaemon, second: BosunDaemon) -> None:
    second.root = daemon.root
    second.socket = daemon.base / "other.sock"

    second.start(wait=False)
    status = second.wait_exit()

    assert status == 1
    assert f"holds the state root {daemon.root}" in second.log()
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.cli("ps").returncode == 0


def test_foreign_root_refused(second: BosunDaemon) -> None:
    second.root.mkdir(mode=0o700)
    os.chown(second.root, NOBODY, NOBODY)

    second.start(wait=False)
    status = second.wait_exit()

    assert status == 1
    log = second.log()
    assert f"state root {second.root} is owned by uid {NOBODY}" in log
    assert f"(uid {os.geteuid()})" in log
    assert os.listdir(second.root) == []
    assert os.stat(second.root).st_uid == NOBODY
    assert not (second.base / "journal.db").exists()
