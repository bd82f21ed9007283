"""End to end on real runc and conmon: only the ``bosun`` command, against a daemon it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.daemon_support import REPOSITORY, BosunDaemon, missing_real_runtime

pytestmark = pytest.mark.runc


@pytest.fixture
def daemon() -> Iterator[BosunDaemon]:
    reason = missing_real_runtime()
    if reason is not None:
        pytest.skip(reason)
    daemon = BosunDaemon()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


def test_run_rm_echo_prints_hello_and_exits_zero(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["echo", "hello"])

    result = daemon.cli("run", "--rm", "hello", str(bundle), check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    assert daemon.json("ps")["containers"] == []


def test_wait_gives_exit_status_three(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sh", "-c", "exit 3"])
    daemon.cli("run", "--detach", "three", str(bundle))

    result = daemon.cli("wait", "three", check=False)

    assert result.returncode == 3
    assert result.stdout.strip() == "3"


def test_detached_container_full_lifecycle(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "--label", "team=infra", "sleeper", str(bundle))

    daemon.cli("pause", "sleeper")
    assert daemon.json("info", "sleeper")["state"] == "paused"
    assert daemon.runtime_state("sleeper")["status"] == "paused"

    daemon.cli("resume", "sleeper")
    assert daemon.json("info", "sleeper")["state"] == "running"

    daemon.cli("exec", "sleeper", "probe", "--", "sleep", "300")
    info = daemon.json("info", "sleeper")
    processes = {process["id"]: process for process in info["processes"]}
    assert processes["probe"]["state"] == "running"
    top = daemon.json("top", "sleeper")
    pids = {process["pid"] for process in top["processes"]}
    assert processes["probe"]["pid"] in pids
    assert processes["init"]["pid"] in pids

    ps = daemon.json("ps")["containers"]
    assert [(c["id"], c["state"], c["labels"]) for c in ps] == [("sleeper", "running", {"team": "infra"})]
    assert ps[0]["pid"] == processes["init"]["pid"]
    assert ps[0]["bundle"] == str(bundle)

    daemon.cli("kill", "sleeper", "--signal", "SIGKILL")
    waited = daemon.cli("wait", "sleeper", check=False)
    assert waited.returncode == 137
    info = daemon.json("info", "sleeper")
    assert info["state"] == "stopped"
    assert info["exit_status"] == 137

    daemon.cli("delete", "sleeper")
    assert daemon.json("ps")["containers"] == []
    assert daemon.runtime_state("sleeper") is None


def test_history_lists_intents_and_outcomes_in_order(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "hist", str(bundle))
    daemon.cli("pause", "hist")
    daemon.cli("resume", "hist")

    events = daemon.json("history", "hist")["events"]

    types = [event["type"] for event in events]
    assert types == [
        "CreateRequested", "Created", "StartRequested", "Started",
        "PauseRequested", "Paused", "ResumeRequested", "Resumed",
    ]
    assert [event["version"] for event in events] == list(range(1, 9))
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(seqs)
    assert all(event["recorded_at"].endswith("Z") for event in events)
    pause_intent, pause_outcome = events[4], events[5]
    assert pause_intent["command_id"] == pause_outcome["command_id"]
    assert pause_intent["data"]["requested_by"]["uid"] == os.geteuid()
    human = daemon.cli("history", "hist").stdout
    assert "PauseRequested" in human
    assert "Paused" in human


def test_events_follow_sees_container_started_after_it(daemon: BosunDaemon) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "bosun", "events", "--follow", "--json"],
        env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPOSITORY,
    )
    seen: list[dict] = []
    done = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            event = json.loads(line)
            seen.append(event)
            if event["stream"] == "container/late" and event["type"] == "Started":
                done.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        bundle = daemon.bundle(["sleep", "600"])
        daemon.cli("run", "--detach", "late", str(bundle))
        assert done.wait(timeout=60), f"follower saw only {[e['type'] for e in seen]}"
    finally:
        follower.terminate()
        follower.wait(timeout=30)

    late = [event["type"] for event in seen if event["stream"] == "container/late"]
    assert late == ["CreateRequested", "Created", "StartRequested", "Started"]
    assert all({"seq", "stream", "version", "type", "data", "recorded_at", "command_id"} <= set(e) for e in seen)


def test_wait_on_long_exited_container_reads_the_journal(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sh", "-c", "exit 7"])
    daemon.cli("run", "--detach", "old", str(bundle))
    assert daemon.cli("wait", "old", check=False).returncode == 7

    # A restarted daemon has no shim for it any more: the status comes from the journal.
    daemon.stop()
    daemon.start()

    result = daemon.cli("wait", "old", check=False)
    assert result.returncode == 7
    assert daemon.json("info", "old")["processes"][0]["exit_status"] == 7


def test_logs_show_stdout_and_stderr(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sh", "-c", "echo out; echo err >&2"])
    daemon.cli("run", "--detach", "talker", str(bundle))
    daemon.cli("wait", "talker")

    result = daemon.cli("logs", "talker")

    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_logs_of_exec_follow_until_it_exits(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "host", str(bundle))
    daemon.cli("exec", "host", "e1", "--", "sh", "-c", "echo first; echo oops >&2; sleep 1; echo last")

    followed = daemon.cli("logs", "--follow", "host", "--exec", "e1")
    again = daemon.cli("logs", "host", "--exec", "e1")
    init = daemon.cli("logs", "host")

    assert followed.stdout == "first\nlast\n"
    assert followed.stderr == "oops\n"
    assert again.stdout == "first\nlast\n"
    assert init.stdout == ""


def test_logs_of_unknown_exec_is_not_found(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "host", str(bundle))

    result = daemon.cli("logs", "host", "--exec", "nope", check=False)

    assert result.returncode == 1
    assert "no log of exec process nope" in result.stderr


def test_if_version_conflict_changes_nothing(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "versioned", str(bundle))
    version = daemon.json("info", "versioned")["version"]

    stale = daemon.cli("pause", "versioned", "--if-version", str(version - 1), check=False)

    assert stale.returncode == 1
    assert "version" in stale.stderr
    assert daemon.json("info", "versioned")["version"] == version
    daemon.cli("pause", "versioned", "--if-version", str(version))
    assert daemon.json("info", "versioned")["state"] == "paused"


def test_command_in_wrong_state_names_state_and_allowed(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("create", "fresh", str(bundle))
    version = daemon.json("info", "fresh")["version"]

    result = daemon.cli("pause", "fresh", check=False)

    assert result.returncode == 1
    assert "state is created" in result.stderr
    assert "pause is allowed in running" in result.stderr
    assert daemon.json("info", "fresh")["version"] == version


def test_daemon_not_running_gives_one_line(tmp_path: os.PathLike) -> None:
    env = dict(os.environ, BOSUN_SOCKET=f"{tmp_path}/nothing.sock")
    result = subprocess.run([sys.executable, "-m", "bosun", "ps"], env=env, capture_output=True, text=True,
                            cwd=REPOSITORY, timeout=60)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{tmp_path}/nothing.sock" in result.stderr
    assert "bosun daemon" in result.stderr


def test_run_streams_output_and_status(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sh", "-c", "echo one; sleep 1; echo two; exit 5"])

    result = daemon.cli("run", "streamer", str(bundle), check=False)

    assert result.returncode == 5
    assert result.stdout == "one\ntwo\n"


def test_update_memory_limit_shows_in_stats(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "limited", str(bundle))

    daemon.cli("update", "limited", "--memory", "64m")

    stats = daemon.json("stats", "limited")["stats"]
    assert stats["memory"]["usage"]["limit"] == 64 * 1024 * 1024
    assert stats["pids"]["current"] >= 1
    info = daemon.json("info", "limited")
    assert info["resources"] == {"memory": {"limit": 64 * 1024 * 1024}}


def test_update_with_absurd_value_changes_nothing(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.cli("run", "--detach", "sane", str(bundle))
    version = daemon.json("info", "sane")["version"]

    result = daemon.cli("update", "sane", "--memory", "1", check=False)

    assert result.returncode == 1
    assert "memory.limit" in result.stderr
    assert daemon.json("info", "sane")["version"] == version
