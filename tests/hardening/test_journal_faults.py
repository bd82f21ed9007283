"""A real daemon whose journal cannot be written, or whose journal file is damaged.

A command that cannot journal its intent must fail with journal_unavailable and leave the
runtime as the journal describes it. A damaged file must stop the daemon from starting, with the
path and SQLite's own message, and ``bosun journal verify`` must explain it. No fault may rewrite
or remove an event that was already committed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bosun.client import ApiError, Client
from tests.daemon_support import BosunDaemon
from tests.hardening.conftest import unique_id

pytestmark = pytest.mark.runc

# Big enough for a fresh journal with a few events, small enough to fill in one write.
TMPFS_SIZE = "512k"


def export_lines(daemon: BosunDaemon) -> list[dict]:
    result = daemon.cli("journal", "export")
    return [json.loads(line) for line in result.stdout.splitlines()]


def run_sleeper(daemon: BosunDaemon) -> str:
    container_id = unique_id("fault")
    daemon.cli("run", "--detach", container_id, str(daemon.bundle(["sleep", "600"])))
    return container_id


def assert_prefix_kept(before: list[dict], after: list[dict]) -> None:
    """Every event committed before the fault is still there, unchanged, in the same place."""
    assert after[: len(before)] == before


@pytest.fixture
def small_disk(real_runtime: None) -> Iterator[tuple[BosunDaemon, Path]]:
    """A daemon whose journal lives on a tmpfs of TMPFS_SIZE, unmounted at teardown."""
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) to create a small tmpfs")
    daemon = BosunDaemon()
    mount_point = daemon.base / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount_point)],
                   check=True, capture_output=True, timeout=30)
    daemon.journal = f"sqlite:///{mount_point}/journal.db"
    try:
        daemon.start()
        yield daemon, mount_point
    finally:
        daemon.kill()
        subprocess.run(["umount", str(mount_point)], check=False, capture_output=True, timeout=30)
        daemon.cleanup()


def fill(mount_point: Path) -> Path:
    filler = mount_point / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, timeout=60)
    return filler


def test_full_disk_fails_command_cleanly(small_disk: tuple[BosunDaemon, Path]) -> None:
    daemon, mount_point = small_disk
    container_id = run_sleeper(daemon)
    before = export_lines(daemon)
    version = daemon.json("info", container_id)["version"]
    filler = fill(mount_point)

    result = daemon.cli("pause", container_id, check=False)
    with pytest.raises(ApiError) as raised:
        Client(daemon.socket).pause(container_id)

    assert result.returncode == 1
    assert f"journaling PauseRequested for container {container_id}" in result.stderr
    assert "database or disk is full" in result.stderr
    assert raised.value.status == 503
    assert raised.value.code == "journal_unavailable"
    # Nothing was journaled, so the runtime must not have been touched either.
    assert daemon.runtime_state(container_id)["status"] == "running"
    assert daemon.json("info", container_id)["state"] == "running"
    assert daemon.json("info", container_id)["version"] == version

    filler.unlink()
    daemon.cli("pause", container_id)
    assert daemon.runtime_state(container_id)["status"] == "paused"
    after = export_lines(daemon)
    assert_prefix_kept(before, after)
    assert [event["type"] for event in after[len(before):]] == ["PauseRequested", "Paused"]
    assert daemon.cli("journal", "verify").returncode == 0


def test_full_disk_restart_recovers_consistently(small_disk: tuple[BosunDaemon, Path]) -> None:
    daemon, mount_point = small_disk
    container_id = run_sleeper(daemon)
    before = export_lines(daemon)
    filler = fill(mount_point)
    assert daemon.cli("kill", container_id, "--signal", "SIGKILL", check=False).returncode == 1

    # The stop cannot be journaled either; the next start must see an unclean stop and recover.
    daemon.stop()
    filler.unlink()
    daemon.start()

    audit = daemon.cli("audit", "--json", check=False)
    report = json.loads(audit.stdout)
    assert report["open_intents"] == []
    assert daemon.json("info", container_id)["state"] == "running"
    assert daemon.runtime_state(container_id)["status"] == "running"
    assert_prefix_kept(before, export_lines(daemon))
    assert daemon.cli("journal", "verify").returncode == 0


@pytest.fixture
def chattr(real_runtime: None) -> str:
    path = shutil.which("chattr")
    if path is None:
        pytest.skip("needs chattr(1) (Debian package e2fsprogs): root bypasses file modes, "
                    "so only the immutable flag makes the journal read-only")
    return path


def test_immutable_journal_fails_command_cleanly(daemon: BosunDaemon, chattr: str) -> None:
    container_id = run_sleeper(daemon)
    before = export_lines(daemon)
    journal = daemon.base / "journal.db"
    files = [str(journal), f"{journal}-wal"]
    flagged = subprocess.run([chattr, "+i", *files], capture_output=True, text=True, timeout=30)
    if flagged.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {flagged.stderr.strip()}")
    try:
        result = daemon.cli("pause", container_id, check=False)
        with pytest.raises(ApiError) as raised:
            Client(daemon.socket).update(container_id, {"pids": {"limit": 100}})
        runtime_status = daemon.runtime_state(container_id)["status"]
        believed = daemon.json("info", container_id)["state"]
    finally:
        subprocess.run([chattr, "-i", *files], check=True, capture_output=True, timeout=30)

    assert result.returncode == 1
    assert f"journaling PauseRequested for container {container_id}: appending to stream" in result.stderr
    assert str(journal) in result.stderr
    assert raised.value.code == "journal_unavailable"
    assert runtime_status == "running"
    assert believed == "running"
    assert_prefix_kept(before, export_lines(daemon))
    daemon.cli("pause", container_id)
    assert daemon.runtime_state(container_id)["status"] == "paused"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage(path: Path, damage_kind: str) -> None:
    data = path.read_bytes()
    if damage_kind == "garbage-header":
        path.write_bytes(b"\xde\xad\xbe\xef" * 25 + data[100:])
    elif damage_kind == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage_kind == "garbage-pages":
        path.write_bytes(data[:4096] + b"\x5a" * (len(data) - 4096))


@pytest.mark.parametrize(
    ("damage_kind", "sqlite_message"),
    [("garbage-header", "file is not a database"),
     ("truncated", "database disk image is malformed"),
     ("garbage-pages", "database disk image is malformed")],
)
def test_damaged_journal_refuses_start(real_runtime: None, damage_kind: str, sqlite_message: str) -> None:
    daemon = BosunDaemon()
    try:
        daemon.start()
        for _ in range(3):
            run_sleeper(daemon)
        daemon.stop()
        journal = daemon.base / "journal.db"
        assert not Path(f"{journal}-wal").exists() or Path(f"{journal}-wal").stat().st_size == 0
        damage(journal, damage_kind)
        digest = file_digest(journal)

        daemon.start(wait=False)
        status = daemon.wait_exit()
        verify = daemon.cli("journal", "verify", "--journal", daemon.journal, check=False)

        assert status == 1
        log = daemon.log()
        assert str(journal) in log
        assert sqlite_message in log
        assert not daemon.socket.exists()
        assert verify.returncode == 1
        assert str(journal) in verify.stderr + verify.stdout
        assert sqlite_message in verify.stderr + verify.stdout
        # Neither the refused start nor verify rewrote the damaged file.
        assert file_digest(journal) == digest
    finally:
        daemon.cleanup()
