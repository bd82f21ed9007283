"""Client commands run through ``cli.main`` against a fake API server on a tmp socket."""

from __future__ import annotations

import io
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bosun import cli
from tests.cli.conftest import FakeApi, container


@dataclass
class Result:
    status: int
    out: str
    err: str


def run(api: FakeApi | Path, *argv: str) -> Result:
    socket_path = api.socket_path if isinstance(api, FakeApi) else api
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["--socket", str(socket_path), *argv], stdout=out, stderr=err)
    return Result(status, out.getvalue(), err.getvalue())


def test_missing_daemon_prints_one_line(tmp_path: Path) -> None:
    socket_path = tmp_path / "none.sock"
    result = run(socket_path, "ps")
    assert result.status == 1
    assert result.out == ""
    assert result.err == (
        f"bosun daemon is not running: no socket at {socket_path} "
        "(start it with 'bosun daemon', or set --socket / BOSUN_SOCKET)\n"
    )


def test_socket_from_env_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    socket_path = tmp_path / "env.sock"
    monkeypatch.setenv("BOSUN_SOCKET", str(socket_path))
    err = io.StringIO()
    assert cli.main(["ps"], stdout=io.StringIO(), stderr=err) == 1
    assert f"no socket at {socket_path}" in err.getvalue()


def test_api_error_printed_with_prefix(fake_api: FakeApi) -> None:
    error = {"error": {"code": "not_allowed", "message": "pausing container web: state is stopped, allowed in running"}}
    fake_api.reply("POST", "/v1/containers/web/pause", 409, error)
    result = run(fake_api, "pause", "web")
    assert result.status == 1
    assert result.err == "bosun: pausing container web: state is stopped, allowed in running\n"


def test_ps_table(fake_api: FakeApi) -> None:
    containers = [
        container("web", labels={"tier": "front", "app": "shop"}),
        container("db", state="stopped", pid=None, exit_status=137, version=12),
    ]
    fake_api.reply("GET", "/v1/containers", 200, {"containers": containers})
    lines = run(fake_api, "ps").out.splitlines()
    assert lines[0].split() == ["ID", "STATE", "PID", "EXIT", "BUNDLE", "LABELS", "VERSION"]
    assert lines[1].split() == ["db", "stopped", "-", "137", "/srv/bundles/db", "-", "12"]
    assert lines[2].split() == ["web", "running", "4242", "-", "/srv/bundles/web", "app=shop,tier=front", "4"]
    # Columns are aligned: every row has its STATE where the header has it.
    assert {line.index(line.split()[1]) for line in lines} == {lines[0].index("STATE")}


def test_ps_json_is_raw_reply(fake_api: FakeApi) -> None:
    reply = {"containers": [container("web")]}
    fake_api.reply("GET", "/v1/containers", 200, reply)
    assert json.loads(run(fake_api, "ps", "--json").out) == reply


def test_create_sends_absolute_bundle(fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    fake_api.reply("POST", "/v1/containers", 201, container("web", state="created"))
    result = run(fake_api, "create", "--label", "tier=web", "web", "bundles/web")
    assert result.status == 0
    assert result.out == "web\n"
    assert fake_api.requests[0].body == {
        "id": "web", "bundle": str(tmp_path / "bundles/web"), "labels": {"tier": "web"},
    }


def test_create_conflicting_labels_is_usage_error(fake_api: FakeApi) -> None:
    result = run(fake_api, "create", "--label", "a=1", "--label", "a=2", "web", "/b")
    assert result.status == 2
    assert "label a is given twice" in result.err
    assert fake_api.requests == []


def test_start_sends_checkpoint_and_version(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/start", 200, container("web"))
    result = run(fake_api, "start", "--checkpoint", "cp1", "--if-version", "3", "web")
    assert (result.status, result.out) == (0, "")
    assert fake_api.requests[0].body == {"checkpoint": "cp1", "if_version": 3}


def test_exec_prints_nothing(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/exec", 200, container("web"))
    result = run(fake_api, "exec", "--env", "A=1", "--cwd", "/srv", "web", "e1", "--", "ls", "-l")
    assert (result.status, result.out, result.err) == (0, "", "")
    assert fake_api.requests[0].body == {"exec_id": "e1", "args": ["ls", "-l"], "env": ["A=1"], "cwd": "/srv"}
    assert fake_api.requests[0].headers["X-Bosun-Command"].endswith("exec --env A=1 --cwd /srv web e1 -- ls -l")


def test_kill_sends_all(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/kill", 200, container("web"))
    run(fake_api, "kill", "-s", "KILL", "--all", "web")
    assert fake_api.requests[0].body == {"signal": "KILL", "all": True}


def test_update_sends_resources(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/update", 200, container("web"))
    run(fake_api, "update", "--memory", "1g", "--pids-limit", "10", "--if-version", "2", "web")
    assert fake_api.requests[0].body == {
        "resources": {"memory": {"limit": 1 << 30}, "pids": {"limit": 10}}, "if_version": 2,
    }


def test_delete_prints_id(fake_api: FakeApi) -> None:
    fake_api.reply("DELETE", "/v1/containers/web", 200, container("web", state="deleted"))
    result = run(fake_api, "delete", "--force", "web")
    assert result.out == "web\n"
    assert urllib.parse.parse_qs(fake_api.requests[0].query) == {"force": ["true"]}


def test_checkpoint_commands(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/checkpoints", 200, container("web"))
    fake_api.reply("DELETE", "/v1/containers/web/checkpoints/cp1", 200, container("web"))
    checkpoints = [{"name": "cp1", "path": "/p/cp1", "created_at": "2024-05-01T12:00:00.5Z", "leave_running": True}]
    fake_api.reply("GET", "/v1/containers/web/checkpoints", 200, {"checkpoints": checkpoints})

    assert run(fake_api, "checkpoint", "create", "--leave-running", "--shell-job", "web", "cp1").status == 0
    assert fake_api.requests[0].body == {"name": "cp1", "leave_running": True, "options": ["--shell-job"]}

    lines = run(fake_api, "checkpoint", "list", "web").out.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "LEFT", "RUNNING", "PATH"]
    assert lines[1].split() == ["cp1", "2024-05-01", "12:00:00", "yes", "/p/cp1"]

    assert run(fake_api, "checkpoint", "delete", "--if-version", "5", "web", "cp1").status == 0
    assert fake_api.requests[-1].query == "if_version=5"


@pytest.mark.parametrize(("exit_status", "expected"), [(0, 0), (3, 3), (137, 137)])
def test_wait_exits_with_status(fake_api: FakeApi, exit_status: int, expected: int) -> None:
    fake_api.reply("GET", "/v1/containers/web/wait", 200, container("web", state="stopped", exit_status=exit_status))
    result = run(fake_api, "wait", "web")
    assert result.status == expected
    assert result.out == f"{exit_status}\n"


def test_wait_timeout_fails(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers/web/wait", 200, container("web"))
    result = run(fake_api, "wait", "--timeout", "2", "web")
    assert result.status == 1
    assert result.err == "bosun: timed out after 2 s waiting for container web to exit\n"
    assert fake_api.requests[0].query == "timeout=2"


LOG_LINES = [
    {"time": "2024-05-01T12:00:01.5Z", "stream": "stdout", "text": "hello"},
    {"time": "2024-05-01T12:00:02.5Z", "stream": "stderr", "text": "oops"},
    {"time": "2024-05-01T12:00:03.5Z", "stream": "stdout", "text": "bye"},
]


def test_logs_split_streams(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers/web/logs", 200, LOG_LINES)
    result = run(fake_api, "logs", "web")
    assert result.out == "hello\nbye\n"
    assert result.err == "oops\n"
    assert fake_api.requests[0].query == ""


def test_logs_prefixes_on_request(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers/web/logs", 200, LOG_LINES)
    result = run(fake_api, "logs", "-f", "--since", "2024-05-01T12:00:00Z", "-t", "--stream-prefix", "web")
    assert result.out.splitlines()[0] == "2024-05-01T12:00:01.5Z stdout: hello"
    assert result.err == "2024-05-01T12:00:02.5Z stderr: oops\n"
    query = urllib.parse.parse_qs(fake_api.requests[0].query)
    assert query == {"follow": ["true"], "since": ["2024-05-01T12:00:00Z"]}


def test_run_streams_then_exits_with_status(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers", 201, container("job"))
    fake_api.reply("GET", "/v1/containers/job/logs", 200, LOG_LINES)
    fake_api.reply("GET", "/v1/containers/job/wait", 200, container("job", state="stopped", exit_status=7))
    fake_api.reply("DELETE", "/v1/containers/job", 200, container("job", state="deleted"))

    result = run(fake_api, "run", "--rm", "job", "/b")
    assert result.status == 7
    assert result.out == "hello\nbye\n"
    assert result.err == "oops\n"
    assert [(request.method, request.path) for request in fake_api.requests] == [
        ("POST", "/v1/containers"),
        ("GET", "/v1/containers/job/logs"),
        ("GET", "/v1/containers/job/wait"),
        ("DELETE", "/v1/containers/job"),
    ]
    assert fake_api.requests[0].body["start"] is True


def test_run_detach_prints_id(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers", 201, container("job"))
    result = run(fake_api, "run", "-d", "job", "/b")
    assert (result.status, result.out) == (0, "job\n")
    assert len(fake_api.requests) == 1


def test_run_rm_with_detach_is_usage_error(fake_api: FakeApi) -> None:
    result = run(fake_api, "run", "--rm", "-d", "job", "/b")
    assert result.status == 2
    assert "--rm cannot be used with --detach" in result.err
    assert fake_api.requests == []


EVENTS = [
    {
        "seq": 7, "stream": "container/web", "version": 3, "type": "PauseRequested",
        "data": {"requested_by": {"uid": 0}}, "recorded_at": "2024-05-01T12:00:05.123456Z",
        "command_id": "c0ffee0123456789", "host": "h", "hash": "ab" * 32, "recovery": False,
    },
    {
        "seq": 9, "stream": "container/web", "version": 4, "type": "ProcessExited",
        "data": {"process": "init", "status": 255, "reason": "exit status lost"},
        "recorded_at": "2024-05-01T12:10:00.000001Z", "command_id": None, "host": "h",
        "hash": "cd" * 32, "recovery": True,
    },
]


def test_events_one_line_each(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/events", 200, EVENTS)
    lines = run(fake_api, "events", "--since", "6").out.splitlines()
    assert lines[0] == "7 2024-05-01 12:00:05 container/web PauseRequested"
    assert lines[1] == (
        "9 2024-05-01 12:10:00 container/web ProcessExited (recovery) "
        "process=init status=255 reason=exit status lost"
    )


def test_events_json_lines(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/events", 200, EVENTS)
    lines = run(fake_api, "--json", "events").out.splitlines()
    assert [json.loads(line) for line in lines] == EVENTS


def test_history_table_marks_recovery(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers/web/history", 200, {"events": EVENTS})
    lines = run(fake_api, "history", "web").out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "VERSION", "TYPE", "COMMAND", "DETAILS"]
    assert lines[1].split() == ["7", "2024-05-01", "12:00:05", "3", "PauseRequested", "c0ffee012345", "-"]
    assert "ProcessExited (recovery)" in lines[2]
    assert lines[2].endswith("process=init status=255 reason=exit status lost")


def test_info_shows_fields_and_processes(fake_api: FakeApi) -> None:
    processes = [
        {"id": "e1", "pid": 5000, "state": "running", "exit_status": None, "signal": None, "oom": False,
         "exited_at": None, "source": None, "reason": None, "args": ["sleep", "9"]},
        {"id": "init", "pid": 4242, "state": "running", "exit_status": None, "signal": None, "oom": False,
         "exited_at": None, "source": None, "reason": None, "args": ["sh"]},
    ]
    pending = [{"command_id": "abc", "type": "PauseRequested", "seq": 11}]
    fake_api.reply("GET", "/v1/containers/web", 200, container("web", processes=processes, pending=pending))
    out = run(fake_api, "info", "web").out
    assert "state:       running" in out
    assert "created:     2024-05-01 12:00:00" in out
    process_lines = out.split("processes:\n")[1].splitlines()
    assert process_lines[1].split()[0] == "init"
    assert process_lines[2].split()[0] == "e1"
    assert "pending commands:" in out
    assert "PauseRequested" in out


def test_top_table(fake_api: FakeApi) -> None:
    processes = [{"pid": 10, "ppid": 1, "user": "root", "cmdline": ["sleep", "60"], "cpu_percent": 0.25, "rss": 4096}]
    fake_api.reply("GET", "/v1/containers/web/top", 200, {"processes": processes})
    lines = run(fake_api, "top", "web").out.splitlines()
    assert lines[0].split() == ["PID", "PPID", "USER", "CPU%", "RSS", "COMMAND"]
    assert lines[1].split() == ["10", "1", "root", "0.2", "4096", "sleep", "60"]


def test_stats_flattened(fake_api: FakeApi) -> None:
    stats = {"memory": {"usage": {"usage": 1024}}, "pids": {"current": 3}}
    fake_api.reply("GET", "/v1/containers/web/stats", 200, {"stats": stats})
    lines = run(fake_api, "stats", "web").out.splitlines()
    assert lines[1].split() == ["memory.usage.usage", "1024"]
    assert lines[2].split() == ["pids.current", "3"]


AUDIT_BAD: dict[str, Any] = {
    "ok": False,
    "containers": [
        {"id": "web", "belief": "running", "reality": "stopped",
         "findings": [{"kind": "exit_unrecorded", "process": "init", "detail": "exit file shows status 0"}]},
        {"id": "db", "belief": "running", "reality": "running", "findings": []},
    ],
    "open_intents": [{"id": "web", "type": "PauseRequested", "seq": 12}],
    "crashed_runs": [],
    "unknown_runtime_containers": ["stray"],
    "journal": {"ok": True, "events_checked": 40, "first_bad_seq": None, "reason": None},
}


def test_audit_problems_exit_one(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/audit", 200, AUDIT_BAD)
    result = run(fake_api, "audit")
    assert result.status == 1
    lines = result.out.splitlines()
    assert lines[0] == "audit: problems found"
    assert "journal: ok, 40 events checked" in lines
    assert "  web: believed running, found stopped, 1 finding" in lines
    assert "    - exit_unrecorded (init): exit file shows status 0" in lines
    assert "  db: believed running, found running, ok" in lines
    assert "  - id=web type=PauseRequested seq=12" in lines
    assert "  - stray" in lines


def test_audit_ok_exit_zero(fake_api: FakeApi) -> None:
    report = {**AUDIT_BAD, "ok": True, "containers": [], "open_intents": [], "unknown_runtime_containers": []}
    fake_api.reply("GET", "/v1/audit", 200, report)
    result = run(fake_api, "audit")
    assert result.status == 0
    assert result.out.startswith("audit: ok\n")


def test_audit_json_still_exits_one(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/audit", 200, AUDIT_BAD)
    result = run(fake_api, "audit", "--json")
    assert result.status == 1
    assert json.loads(result.out) == AUDIT_BAD


def test_mutating_json_prints_container(fake_api: FakeApi) -> None:
    reply = container("web", state="paused")
    fake_api.reply("POST", "/v1/containers/web/pause", 200, reply)
    assert json.loads(run(fake_api, "pause", "--json", "web").out) == reply
