"""Environment variable values of process specs stay out of a real daemon's journal file.

The raw bytes of the journal, its WAL and the daemon's log are searched for the secret, so a
copy in any table, index or log line is found, not only one in the events' data column.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bosun.redact import REDACTED_PREFIX
from tests.daemon_support import BosunDaemon
from tests.hardening.conftest import unique_id

pytestmark = pytest.mark.runc


def journal_bytes(daemon: BosunDaemon) -> bytes:
    journal = daemon.base / "journal.db"
    return b"".join(
        path.read_bytes() for path in (journal, Path(f"{journal}-wal")) if path.exists()
    )


def history_env(daemon: BosunDaemon, container_id: str) -> dict[str, list[str]]:
    """Return the env lists of the container's CreateRequested and ExecRequested events."""
    events = daemon.json("history", container_id)["events"]
    found = {}
    for event in events:
        if event["type"] == "CreateRequested":
            found["create"] = event["data"]["process"]["env"]
        elif event["type"] == "ExecRequested":
            found["exec"] = event["data"]["env"]
    return found


def start_with_secrets(daemon: BosunDaemon) -> tuple[str, str, str]:
    """Run a container whose bundle env and exec env each carry a fresh secret value."""
    bundle_secret = f"bundle-{uuid.uuid4().hex}"
    exec_secret = f"exec-{uuid.uuid4().hex}"
    container_id = unique_id("secret")
    bundle = daemon.bundle(["sleep", "600"], env=["PATH=/bin", f"DB_PASSWORD={bundle_secret}"])
    daemon.cli("run", "--detach", container_id, str(bundle))
    daemon.cli("exec", "--env", f"API_TOKEN={exec_secret}", container_id, "probe", "--", "sleep", "600")
    return container_id, bundle_secret, exec_secret


@pytest.fixture
def keeping_daemon(real_runtime: None) -> Iterator[BosunDaemon]:
    started = BosunDaemon()
    try:
        started.start("--keep-env-values")
        yield started
    finally:
        started.cleanup()


def test_env_values_redacted_by_default(daemon: BosunDaemon) -> None:
    container_id, bundle_secret, exec_secret = start_with_secrets(daemon)
    raw = journal_bytes(daemon)
    export = daemon.cli("journal", "export").stdout
    envs = history_env(daemon, container_id)

    assert bundle_secret.encode() not in raw
    assert exec_secret.encode() not in raw
    assert bundle_secret not in export
    assert exec_secret not in export
    assert bundle_secret not in daemon.log()
    assert exec_secret not in daemon.log()
    assert "DB_PASSWORD" in [entry.split("=", 1)[0] for entry in envs["create"]]
    assert all(entry.split("=", 1)[1].startswith(REDACTED_PREFIX) for entry in envs["create"])
    assert envs["exec"][0].startswith(f"API_TOKEN={REDACTED_PREFIX}")
    exec_intent = [e for e in daemon.json("history", container_id)["events"] if e["type"] == "ExecRequested"][0]
    assert f"--env API_TOKEN={REDACTED_PREFIX}" in exec_intent["data"]["requested_by"]["cmdline"]
    assert f"DB_PASSWORD={REDACTED_PREFIX}" in export


def test_same_value_same_digest(daemon: BosunDaemon) -> None:
    first = unique_id("secret")
    daemon.cli("run", "--detach", first, str(daemon.bundle(["sleep", "600"], env=["DB_PASSWORD=same"])))
    second = unique_id("secret")
    bundle = daemon.bundle(["sleep", "600"], env=["DB_PASSWORD=same"])
    daemon.cli("run", "--detach", second, str(bundle))

    first_env = history_env(daemon, first)["create"]
    assert first_env == history_env(daemon, second)["create"]
    assert "DB_PASSWORD=same" not in first_env


def test_keep_env_values_stores_clear(keeping_daemon: BosunDaemon) -> None:
    container_id, bundle_secret, exec_secret = start_with_secrets(keeping_daemon)
    envs = history_env(keeping_daemon, container_id)
    export = [json.loads(line) for line in keeping_daemon.cli("journal", "export").stdout.splitlines()]

    assert f"DB_PASSWORD={bundle_secret}" in envs["create"]
    assert envs["exec"] == [f"API_TOKEN={exec_secret}"]
    assert any(f"DB_PASSWORD={bundle_secret}" in json.dumps(line) for line in export)
    assert bundle_secret.encode() in journal_bytes(keeping_daemon)
