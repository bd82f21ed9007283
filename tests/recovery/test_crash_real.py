"""Crash recovery on real runc and conmon: the daemon is SIGKILLed at each crash point of each
command, restarted, and must then agree with the runtime and report nothing out of line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_support import BosunDaemon, missing_real_runtime

pytestmark = pytest.mark.runc

# Bound on waiting for a condition the test caused; a safety net, not a measurement.
CONDITION_LIMIT = 60.0


@pytest.fixture
def daemon() -> Iterator[BosunDaemon]:
    reason = missing_real_runtime()
    if reason is not None:
        pytest.skip(reason)
    daemon = BosunDaemon()
    try:
        yield daemon
    finally:
        daemon.cleanup()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + CONDITION_LIMIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runc(daemon: BosunDaemon, *args: str) -> None:
    subprocess.run(["runc", "--root", str(daemon.root / "runtime"), *args], check=True,
                   capture_output=True, timeout=60)


def journal_state_matches_runtime(daemon: BosunDaemon, container_id: str) -> None:
    """Assert the journal's state for ``container_id`` is what ``runc state`` reports."""
    runtime = daemon.runtime_state(container_id)
    listed = {c["id"]: c for c in daemon.json("ps")["containers"]}
    if runtime is None:
        assert container_id not in listed, f"journal has {listed.get(container_id)} but runc has no container"
        return
    assert container_id in listed, f"runc reports {runtime['status']} but the journal has no live container"
    assert listed[container_id]["state"] == runtime["status"]


def audit_is_clean(daemon: BosunDaemon) -> dict:
    result = daemon.cli("audit", "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=1)
    assert report["ok"] is True
    assert report["open_intents"] == []
    assert report["journal"]["ok"] is True
    return report


# (command, how to prepare, the CLI command that crashes)
SCENARIOS = {
    "create": ("none", ["create", "c", "{bundle}"]),
    "start": ("created", ["start", "c"]),
    "pause": ("running", ["pause", "c"]),
    "resume": ("paused", ["resume", "c"]),
    "exec": ("running", ["exec", "c", "e1", "--", "sleep", "300"]),
    "kill": ("running", ["kill", "c", "--signal", "SIGKILL"]),
    "delete": ("stopped", ["delete", "c"]),
}


def prepare(daemon: BosunDaemon, stage: str, bundle: Path) -> None:
    if stage == "none":
        return
    daemon.cli("create", "c", str(bundle))
    if stage == "created":
        return
    daemon.cli("start", "c")
    if stage == "paused":
        daemon.cli("pause", "c")
    if stage == "stopped":
        daemon.cli("kill", "c", "--signal", "SIGKILL")
        daemon.cli("wait", "c", check=False)


@pytest.mark.parametrize("point", ["after-intent", "after-runtime"])
@pytest.mark.parametrize("command", list(SCENARIOS))
def test_crash_point_recovers_to_runtime_truth(daemon: BosunDaemon, command: str, point: str) -> None:
    stage, argv = SCENARIOS[command]
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    prepare(daemon, stage, bundle)
    daemon.stop()

    daemon.start(crash_at=f"{command}:{point}")
    crashed = daemon.cli(*[arg.format(bundle=bundle) for arg in argv], check=False)
    assert crashed.returncode != 0
    assert daemon.wait_exit() == -signal.SIGKILL

    daemon.start()
    audit_is_clean(daemon)
    journal_state_matches_runtime(daemon, "c")
    events = daemon.json("history", "c")["events"]
    intents = [e for e in events if e["type"].endswith("Requested")]
    closed = {e["command_id"] for e in events if not e["type"].endswith("Requested")}
    assert all(intent["command_id"] in closed for intent in intents)


def test_reused_exec_id_interrupted_after_intent_fails(daemon: BosunDaemon) -> None:
    # The first e1's conmon files stay in the exec directory until the next e1 starts, so
    # recovery must not mistake them for the interrupted exec's.
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "c", str(bundle))
    daemon.cli("exec", "c", "e1", "--", "true")
    wait_until(lambda: [p["id"] for p in daemon.json("info", "c")["processes"]] == ["init"], "exec e1 journaled as exited")
    daemon.stop()

    daemon.start(crash_at="exec:after-intent")
    assert daemon.cli("exec", "c", "e1", "--", "sleep", "300", check=False).returncode != 0
    assert daemon.wait_exit() == -signal.SIGKILL
    daemon.start()

    audit_is_clean(daemon)
    events = daemon.json("history", "c")["events"]
    exits = [e for e in events if e["type"] == "ProcessExited" and e["data"]["process"] == "e1"]
    second = [e for e in events if e["type"] == "ExecRequested"][-1]
    outcomes = [e for e in events if e["command_id"] == second["command_id"] and e is not second]
    assert [e["data"]["status"] for e in exits] == [0]
    assert [e["type"] for e in outcomes] == ["ExecFailed"]
    assert outcomes[0]["recovery"] is True


def test_exit_while_down_is_recorded_by_recovery(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "2"])
    daemon.start()
    daemon.cli("run", "--detach", "short", str(bundle))
    daemon.kill()

    wait_until(lambda: (daemon.runtime_state("short") or {}).get("status") == "stopped", "sleep 2 to end")
    daemon.start()

    info = daemon.json("info", "short")
    init = info["processes"][0]
    assert info["state"] == "stopped"
    assert init["exit_status"] == 0
    assert init["source"] == "recovery"
    audit_is_clean(daemon)


def test_sigkill_while_down_gives_137(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "victim", str(bundle))
    daemon.kill()

    runc(daemon, "kill", "victim", "KILL")
    wait_until(lambda: (daemon.runtime_state("victim") or {}).get("status") == "stopped", "the kill")
    daemon.start()

    init = daemon.json("info", "victim")["processes"][0]
    assert init["exit_status"] == 137
    assert init["signal"] == 9
    assert init["source"] == "recovery"
    audit_is_clean(daemon)


@pytest.mark.parametrize("pauser", ["bosun", "runc"])
def test_lost_shim_of_paused_container_ends_init(daemon: BosunDaemon, pauser: str) -> None:
    # A frozen process keeps SIGKILL pending, so the orphan policy must thaw it to end it. That
    # applies too when runc paused the container behind bosun's back and the journal records running.
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "frozen", str(bundle))
    if pauser == "bosun":
        daemon.cli("pause", "frozen")
    else:
        runc(daemon, "pause", "frozen")

    conmon_pid = int((daemon.root / "containers" / "frozen" / "conmon.pid").read_text())
    os.kill(conmon_pid, signal.SIGKILL)
    wait_until(lambda: daemon.json("info", "frozen")["state"] == "stopped", "the orphan's exit journaled")

    init = daemon.json("info", "frozen")["processes"][0]
    events = [e["type"] for e in daemon.json("history", "frozen")["events"]]
    assert init["exit_status"] == 137
    assert "orphan policy kill" in init["reason"]
    assert events[-2:] == ["ShimLost", "ProcessExited"]
    assert daemon.runtime_state("frozen")["status"] == "stopped"
    audit_is_clean(daemon)


def test_lost_exec_shim_keeps_container_paused(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "frozen", str(bundle))
    daemon.cli("exec", "frozen", "e1", "--", "sleep", "600")
    daemon.cli("pause", "frozen")

    conmon_pid = int((daemon.root / "containers" / "frozen" / "exec" / "e1" / "conmon.pid").read_text())
    os.kill(conmon_pid, signal.SIGKILL)
    wait_until(lambda: [p["id"] for p in daemon.json("info", "frozen")["processes"]] == ["init"],
               "the exec orphan's exit journaled")

    exits = [e for e in daemon.json("history", "frozen")["events"] if e["type"] == "ProcessExited"]
    assert [(e["data"]["process"], e["data"]["status"]) for e in exits] == [("e1", 137)]
    assert daemon.json("info", "frozen")["state"] == "paused"
    assert daemon.runtime_state("frozen")["status"] == "paused"
    audit_is_clean(daemon)


def test_lost_shim_and_container_give_255(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "orphan", str(bundle))
    daemon.kill()

    conmon_pid = int((daemon.root / "containers" / "orphan" / "conmon.pid").read_text())
    os.kill(conmon_pid, signal.SIGKILL)
    runc(daemon, "kill", "orphan", "KILL")
    wait_until(lambda: (daemon.runtime_state("orphan") or {}).get("status") == "stopped", "the kill")
    daemon.start()

    init = daemon.json("info", "orphan")["processes"][0]
    assert init["exit_status"] == 255
    assert "exit status lost" in init["reason"]
    assert init["source"] == "recovery"
    audit_is_clean(daemon)


def test_missing_bundle_leads_to_journaled_delete(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "homeless", str(bundle))
    daemon.kill()

    shutil.rmtree(bundle)
    daemon.start()

    events = daemon.json("history", "homeless")["events"]
    deleted = [e for e in events if e["type"] == "Deleted"]
    assert len(deleted) == 1
    assert "bundle directory" in deleted[0]["data"]["reason"]
    assert deleted[0]["recovery"] is True
    assert daemon.runtime_state("homeless") is None
    assert daemon.json("ps")["containers"] == []
    audit_is_clean(daemon)


# (whether bosun pauses first, what runc does while the daemon is down, the state after)
BEHIND_BACK = {
    "pause": (False, "pause", "paused"),
    "resume": (True, "resume", "running"),
}


@pytest.mark.parametrize("case", list(BEHIND_BACK))
def test_change_behind_back_is_reconciled(daemon: BosunDaemon, case: str) -> None:
    paused_first, runc_command, expected = BEHIND_BACK[case]
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "c", str(bundle))
    if paused_first:
        daemon.cli("pause", "c")
    daemon.kill()

    runc(daemon, runc_command, "c")
    daemon.start()

    assert daemon.json("info", "c")["state"] == expected
    events = daemon.json("history", "c")["events"]
    assert events[-1]["type"] == "StateReconciled"
    assert events[-1]["recovery"] is True
    audit_is_clean(daemon)


def test_audit_reports_pause_behind_back_without_changing_it(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "sneaky", str(bundle))
    version = daemon.json("info", "sneaky")["version"]

    runc(daemon, "pause", "sneaky")
    result = daemon.cli("audit", "--json", check=False)

    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert report["ok"] is False
    findings = report["containers"][0]["findings"]
    assert [f["kind"] for f in findings] == ["paused_behind_back"]
    assert daemon.json("info", "sneaky")["version"] == version


def test_replay_until_before_pause_shows_running(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "past", str(bundle))
    daemon.cli("pause", "past")
    pause_seq = next(e["seq"] for e in daemon.json("history", "past")["events"] if e["type"] == "PauseRequested")

    replayed = daemon.json("journal", "replay", "--until", str(pause_seq - 1))

    states = {c["id"]: c["state"] for c in replayed["containers"]}
    assert states == {"past": "running"}
    assert daemon.json("info", "past")["state"] == "paused"


def test_backup_of_live_journal_verifies(daemon: BosunDaemon) -> None:
    bundle = daemon.bundle(["sleep", "600"])
    daemon.start()
    daemon.cli("run", "--detach", "saved", str(bundle))
    target = daemon.base / "backup.db"

    daemon.cli("journal", "backup", str(target))

    copy = subprocess.run(
        [sys.executable, "-m", "bosun", "journal", "verify", "--journal", f"sqlite:///{target}"],
        capture_output=True, text=True, timeout=60, env=daemon.env,
    )
    assert copy.returncode == 0, copy.stderr
    assert "journal ok" in copy.stdout
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_daemon_stream_records_crash_and_counts(daemon: BosunDaemon) -> None:
    daemon.start()
    daemon.kill()
    daemon.start()
    daemon.stop()
    daemon.start()

    report = audit_is_clean(daemon)
    assert len(report["crashed_runs"]) == 1
    lines = daemon.cli("events", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    starts = [e["data"]["previous_run_clean"] for e in events if e["type"] == "DaemonStarted"]
    assert starts == [True, False, True]
    finished = [e for e in events if e["type"] == "RecoveryFinished"]
    assert len(finished) == 3
    assert "containers_reconciled" in finished[-1]["data"]["counts"]
