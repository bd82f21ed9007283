"""Argument parsing of every command, and the argument types' error messages."""

from __future__ import annotations

import argparse

import pytest

from bosun import cli


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# -- global options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("--root", "/r", "--socket", "/s", "--json", "ps"),
        ("ps", "--root", "/r", "--socket", "/s", "--json"),
        ("--root", "/r", "ps", "--socket", "/s", "--json"),
    ],
    ids=["before", "after", "mixed"],
)
def test_global_options_any_position(argv: tuple[str, ...]) -> None:
    args = parse(*argv)
    assert args.root == "/r"
    assert args.socket == "/s"
    assert args.json is True


def test_global_options_default_to_none() -> None:
    args = parse("ps")
    assert args.root is None
    assert args.socket is None
    assert args.json is False


def test_global_options_after_nested_command() -> None:
    args = parse("checkpoint", "list", "web", "--json", "--socket", "/s")
    assert args.json is True
    assert args.socket == "/s"


def test_missing_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "COMMAND" in usage_error(capsys)


# -- lifecycle commands ---------------------------------------------------------------------


def test_run_flags() -> None:
    args = parse("run", "--rm", "--label", "tier=web", "--label", "owner=", "web", "/b")
    assert args.rm is True
    assert args.detach is False
    assert args.labels == [("tier", "web"), ("owner", "")]
    assert (args.id, args.bundle) == ("web", "/b")
    assert args.handler is cli.cmd_run


def test_run_detach_short_flag() -> None:
    assert parse("run", "-d", "web", "/b").detach is True


def test_create_flags() -> None:
    args = parse("create", "--label", "a=b=c", "web", "/b")
    assert args.labels == [("a", "b=c")]
    assert args.handler is cli.cmd_create


@pytest.mark.parametrize(
    ("label", "message"),
    [("novalue", "use key=value"), ("=x", "key before '=' must not be empty")],
    ids=["no-equals", "empty-key"],
)
def test_invalid_label_rejected(capsys: pytest.CaptureFixture[str], label: str, message: str) -> None:
    err = usage_error(capsys, "create", "--label", label, "web", "/b")
    assert message in err
    assert repr(label) in err


def test_start_flags() -> None:
    args = parse("start", "--checkpoint", "cp1", "--if-version", "7", "web")
    assert args.checkpoint == "cp1"
    assert args.if_version == 7
    assert args.id == "web"


def test_exec_args_after_double_dash() -> None:
    args = parse("exec", "--env", "A=1", "--env", "B=", "--cwd", "/tmp", "web", "e1", "--", "sh", "-c", "echo --x")
    assert args.env == ["A=1", "B="]
    assert args.cwd == "/tmp"
    assert (args.id, args.exec_id) == ("web", "e1")
    assert args.args == ["sh", "-c", "echo --x"]


def test_exec_without_args_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, "exec", "web", "e1")


def test_exec_invalid_env_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "exec", "--env", "=1", "web", "e1", "--", "true")
    assert "NAME=VALUE" in err


def test_kill_defaults() -> None:
    args = parse("kill", "web")
    assert args.signal == "SIGTERM"
    assert args.process is None
    assert args.all_processes is False
    assert args.if_version is None


def test_kill_flags() -> None:
    args = parse("kill", "--signal", "9", "--exec", "e1", "--if-version", "3", "web")
    assert args.signal == 9
    assert args.process == "e1"
    assert args.if_version == 3


def test_kill_all_with_exec_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, "kill", "--all", "--exec", "e1", "web")


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_resume_flags(command: str) -> None:
    args = parse(command, "--if-version", "0", "web")
    assert args.if_version == 0
    assert args.id == "web"


def test_negative_if_version_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid version '-1'" in usage_error(capsys, "pause", "--if-version", "-1", "web")


def test_delete_flags() -> None:
    args = parse("delete", "-f", "--if-version", "2", "web")
    assert args.force is True
    assert args.if_version == 2


def test_wait_flags() -> None:
    assert parse("wait", "--timeout", "2.5", "web").timeout == 2.5
    assert parse("wait", "web").timeout is None


def test_wait_zero_timeout_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert "more than 0" in usage_error(capsys, "wait", "--timeout", "0", "web")


def test_update_flags() -> None:
    args = parse(
        "update", "--memory", "16m", "--cpu-shares", "512", "--cpu-quota", "-1",
        "--cpu-period", "100000", "--pids-limit", "64", "--if-version", "5", "web",
    )
    assert cli.update_resources(args) == {
        "memory": {"limit": 16 * 1024 * 1024},
        "cpu": {"shares": 512, "quota": -1, "period": 100000},
        "pids": {"limit": 64},
    }
    assert args.if_version == 5


def test_update_without_flags_raises_usage_error() -> None:
    with pytest.raises(cli.UsageError, match="at least one of --memory"):
        cli.update_resources(parse("update", "web"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("1k", 1024), ("16m", 16 << 20), ("1G", 1 << 30), ("0", 0)],
)
def test_size_accepts_bytes_and_suffixes(text: str, expected: int) -> None:
    assert cli.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "12x", "1.5g", "-1", "m", "1kb", "1 g"])
def test_size_rejects_other_forms(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
        cli.parse_size(text)


def test_update_invalid_memory_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "update", "--memory", "12x", "web")
    assert "invalid size '12x'" in err


# -- inspection commands --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "stats", "top", "history"])
def test_single_id_commands(command: str) -> None:
    assert parse(command, "web").id == "web"


def test_ps_has_no_arguments() -> None:
    assert parse("ps").handler is cli.cmd_ps


def test_logs_flags() -> None:
    args = parse("logs", "-f", "--since", "2024-05-01T00:00:00Z", "--timestamps", "--stream-prefix", "web")
    assert args.follow is True
    assert args.since == "2024-05-01T00:00:00Z"
    assert args.timestamps is True
    assert args.stream_prefix is True


def test_logs_defaults_plain() -> None:
    args = parse("logs", "web")
    assert (args.follow, args.timestamps, args.stream_prefix, args.since) == (False, False, False, None)


def test_events_flags() -> None:
    args = parse("events", "--follow", "--since", "10", "--id", "web")
    assert args.follow is True
    assert args.since == 10
    assert args.container_id == "web"


def test_events_invalid_since_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid seq 'x'" in usage_error(capsys, "events", "--since", "x")


def test_audit_parses() -> None:
    assert parse("audit").handler is cli.cmd_audit


# -- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_create_flags() -> None:
    args = parse(
        "checkpoint", "create", "--leave-running", "--tcp-established", "--ext-unix-sk",
        "--shell-job", "--file-locks", "--if-version", "4", "web", "cp1",
    )
    assert args.leave_running is True
    assert args.options == ["--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks"]
    assert (args.id, args.name, args.if_version) == ("web", "cp1", 4)


def test_checkpoint_create_defaults() -> None:
    args = parse("checkpoint", "create", "web", "cp1")
    assert args.leave_running is False
    assert args.options is None


def test_checkpoint_list_and_delete() -> None:
    assert parse("checkpoint", "list", "web").handler is cli.cmd_checkpoint_list
    args = parse("checkpoint", "delete", "--if-version", "1", "web", "cp1")
    assert (args.id, args.name, args.if_version) == ("web", "cp1", 1)
    assert args.handler is cli.cmd_checkpoint_delete


def test_checkpoint_without_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, "checkpoint")


# -- daemon and journal ---------------------------------------------------------------------


def test_daemon_defaults() -> None:
    args = parse("daemon")
    assert args.runtime == "runc"
    assert args.runtime_args == []
    assert args.shim == "conmon"
    assert args.start_timeout == 30.0
    assert args.keep_env_values is False
    assert args.crash_at is None
    assert args.orphan_policy == "kill"
    assert args.log_level == "info"
    assert args.journal is None


def test_daemon_flags() -> None:
    args = parse(
        "daemon", "--journal", "sqlite:////tmp/j.db", "--runtime", "/usr/bin/crun",
        "--runtime-arg=--systemd-cgroup", "--runtime-arg", "debug", "--shim", "/opt/conmon",
        "--start-timeout", "5", "--keep-env-values", "--crash-at", "start:after-intent",
        "--orphan-policy", "kill", "--log-level", "debug",
    )
    assert args.journal == "sqlite:////tmp/j.db"
    assert args.runtime == "/usr/bin/crun"
    assert args.runtime_args == ["--systemd-cgroup", "debug"]
    assert args.shim == "/opt/conmon"
    assert args.start_timeout == 5.0
    assert args.keep_env_values is True
    assert args.crash_at == "start:after-intent"
    assert args.log_level == "debug"


def test_daemon_help_hides_crash_at(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("daemon", "--help")
    assert "--crash-at" not in capsys.readouterr().out


def test_daemon_unknown_orphan_policy_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice" in usage_error(capsys, "daemon", "--orphan-policy", "ignore")


@pytest.mark.parametrize("command", ["verify", "export", "migrate"])
def test_journal_option_on_either_level(command: str) -> None:
    assert parse("journal", "--journal", "sqlite:///a.db", command).journal == "sqlite:///a.db"
    assert parse("journal", command, "--journal", "sqlite:///b.db").journal == "sqlite:///b.db"
    assert parse("journal", command).journal is None


def test_journal_replay_flags() -> None:
    args = parse("journal", "replay", "--until", "42", "--id", "web", "--json")
    assert args.until == "42"
    assert args.container_id == "web"
    assert args.json is True


def test_journal_backup_path() -> None:
    assert str(parse("journal", "backup", "/tmp/copy.db").path) == "/tmp/copy.db"
