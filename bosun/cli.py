"""The ``bosun`` command line: the daemon, the client commands and the offline journal commands.

Every client command talks to the daemon through ``bosun.client`` and must return in well under
100 ms, so this module imports only the standard library and bosun's light modules. The daemon
(aiohttp, SQLAlchemy) is imported inside ``cmd_daemon``, and ``bosun.offline`` imports ``journal``
and ``fsm`` inside each journal command.

Exit status: 0 on success, 1 when a command fails (the message goes to stderr as
``bosun: <message>``), 2 for a usage error, 130 after Ctrl-C. ``wait`` and ``run`` exit with the
container's exit status, and ``audit`` with 1 when it found problems.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bosun import config, offline, output
from bosun.client import ApiError, Client, ClientError, DaemonUnavailable
from bosun.offline import OfflineError

PROGRAM = "bosun"
LOG_LEVELS = ("debug", "info", "warning", "error")
CHECKPOINT_OPTIONS = ("tcp-established", "ext-unix-sk", "shell-job", "file-locks")
_SIZE_PATTERN = re.compile(r"(\d+)([kmg]?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


class UsageError(Exception):
    """Raised by a command for arguments that argparse cannot check alone (exit status 2)."""


class CommandFailed(Exception):
    """Raised by a command that failed with a message of its own (exit status ``status``)."""

    def __init__(self, message: str, status: int = 1) -> None:
        self.status = status
        super().__init__(message)


# -- argument types -------------------------------------------------------------------------


def parse_label(value: str) -> tuple[str, str]:
    """Read ``--label key=value``. The key must be non-empty, but the value may be empty."""
    key, separator, label_value = value.partition("=")
    if not separator:
        msg = f"invalid label {value!r}: use key=value"
        raise argparse.ArgumentTypeError(msg)
    if not key:
        msg = f"invalid label {value!r}: the key before '=' must not be empty"
        raise argparse.ArgumentTypeError(msg)
    return key, label_value


def parse_env(value: str) -> str:
    """Read ``--env NAME=VALUE`` with a non-empty name."""
    name, separator, _ = value.partition("=")
    if not separator or not name:
        msg = f"invalid environment variable {value!r}: use NAME=VALUE with a non-empty NAME"
        raise argparse.ArgumentTypeError(msg)
    return value


def parse_size(value: str) -> int:
    """Read a byte count: plain bytes, or a number with a binary k, m or g suffix (1k = 1024)."""
    match = _SIZE_PATTERN.fullmatch(value.strip())
    if match is None:
        msg = f"invalid size {value!r}: use bytes, or a number with k, m or g (1k = 1024 bytes), e.g. 512m"
        raise argparse.ArgumentTypeError(msg)
    number, unit = match.groups()
    return int(number) * _SIZE_UNITS[unit.lower()]


def parse_integer(value: str) -> int:
    """Read a whole number, negative values included (cpu quota -1 means no limit)."""
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {value!r}") from None


def parse_version(value: str) -> int:
    """Read ``--if-version``: a stream version, 0 or more."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        msg = f"invalid version {value!r}: use the container's version from 'bosun info', a whole number"
        raise argparse.ArgumentTypeError(msg)
    return number


def parse_seq(value: str) -> int:
    """Read an event seq, 0 or more."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"invalid seq {value!r}: use a whole number, 0 or more")
    return number


def parse_head(value: str) -> tuple[int, str]:
    """Read ``SEQ:HASH`` as ``bosun journal verify`` prints a journal's head."""
    seq, separator, digest = value.partition(":")
    if not separator or not seq.isdigit() or int(seq) < 1 or not _HASH_PATTERN.fullmatch(digest):
        msg = (f"invalid head {value!r}: use SEQ:HASH as 'bosun journal verify' prints it, "
               "a seq of 1 or more and a SHA-256 of 64 lowercase hex digits")
        raise argparse.ArgumentTypeError(msg)
    return int(seq), digest


def parse_seconds(value: str) -> float:
    """Read a duration in seconds, more than 0."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}: use seconds, more than 0")
    return seconds


def signal_value(value: str) -> str | int:
    """Convert a numeric signal to a number and keep a name as written, because the daemon checks both."""
    return int(value) if value.isdigit() else value


# -- parser ---------------------------------------------------------------------------------


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # The options are accepted before and after the subcommand. Below the top level their
    # default is SUPPRESS, so a subcommand parser sets them only when they are given and never
    # overwrites a value given before the subcommand.
    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--root", default=default(None), metavar="DIR",
        help=f"the daemon's state directory (default: $BOSUN_ROOT, else {config.DEFAULT_ROOT})",
    )
    group.add_argument(
        "--socket", default=default(None), metavar="PATH",
        help=f"the daemon's API socket (default: $BOSUN_SOCKET, else <root>/{config.SOCKET_NAME})",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False),
        help="print the API's JSON instead of tables and text",
    )


def _add_if_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--if-version", type=parse_version, metavar="N",
        help="do it only if the container is still at version N (see 'bosun info'); else fail",
    )


def _add_journal_option(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    parser.add_argument(
        "--journal", default=None if top_level else argparse.SUPPRESS, metavar="URL",
        help=f"the journal's SQLAlchemy URL (default: $BOSUN_JOURNAL, else {config.DEFAULT_JOURNAL})",
    )


class _Commands:
    """Adds subcommand parsers that all accept the global options."""

    def __init__(self, parser: argparse.ArgumentParser, title: str, dest: str) -> None:
        self.subparsers = parser.add_subparsers(title=title, dest=dest, metavar="COMMAND")
        self.subparsers.required = True

    def add(self, name: str, handler: Callable[..., int] | None, help_text: str) -> argparse.ArgumentParser:
        parser = self.subparsers.add_parser(name, help=help_text, description=help_text)
        _add_global_options(parser, top_level=False)
        if handler is not None:
            parser.set_defaults(handler=handler)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of every command."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Run OCI containers under a supervisor that journals every lifecycle change.",
    )
    _add_global_options(parser, top_level=True)
    commands = _Commands(parser, "commands", "command")

    _add_daemon_parser(commands)
    _add_lifecycle_parsers(commands)
    _add_inspection_parsers(commands)
    _add_checkpoint_parsers(commands)
    _add_journal_parsers(commands)
    return parser


def _add_daemon_parser(commands: _Commands) -> None:
    daemon = commands.add("daemon", cmd_daemon, "run the supervisor daemon in the foreground")
    _add_journal_option(daemon, top_level=True)
    daemon.add_argument(
        "--runtime", default="runc", metavar="NAME|PATH",
        help="the OCI runtime binary: a name on PATH or a path (default: runc)",
    )
    daemon.add_argument(
        "--runtime-arg", action="append", default=[], dest="runtime_args", metavar="ARG",
        help="an extra global argument for every runtime call; repeat for more, and write "
        "--runtime-arg=--flag for a value that starts with '-'",
    )
    daemon.add_argument(
        "--shim", default="conmon", metavar="PATH", help="the conmon binary (default: conmon on PATH)",
    )
    daemon.add_argument(
        "--start-timeout", type=parse_seconds, default=30.0, metavar="S",
        help="seconds a create or start may take before it is killed and fails (default: 30)",
    )
    daemon.add_argument(
        "--keep-env-values", action="store_true",
        help="journal environment variable values of exec and process specs in clear (default: redacted)",
    )
    # A crash point kills the daemon with SIGKILL on purpose; only the crash tests use it.
    daemon.add_argument("--crash-at", metavar="POINT", help=argparse.SUPPRESS)
    daemon.add_argument(
        "--orphan-policy", choices=config.ORPHAN_POLICIES, default="kill",
        help="what recovery does with a live container process whose shim is gone (default: kill)",
    )
    daemon.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="the lowest level logged to stderr (default: info)",
    )


def _add_lifecycle_parsers(commands: _Commands) -> None:
    run = commands.add("run", cmd_run, "create and start a container, show its output and exit with its status")
    run.add_argument("--rm", action="store_true", help="delete the container after it exits")
    run.add_argument("-d", "--detach", action="store_true", help="print the id and return once it runs")
    _add_label_option(run)
    run.add_argument("id", metavar="ID")
    run.add_argument("bundle", metavar="BUNDLE", help="the OCI bundle directory")

    create = commands.add("create", cmd_create, "create a container from an OCI bundle")
    _add_label_option(create)
    create.add_argument("id", metavar="ID")
    create.add_argument("bundle", metavar="BUNDLE", help="the OCI bundle directory")

    start = commands.add("start", cmd_start, "start a created container, or restore it from a checkpoint")
    start.add_argument("--checkpoint", metavar="NAME", help="restore from this checkpoint")
    _add_if_version(start)
    start.add_argument("id", metavar="ID")

    exec_parser = commands.add("exec", cmd_exec, "run another process in a running container")
    exec_parser.add_argument(
        "--env", action="append", default=[], type=parse_env, metavar="NAME=VALUE",
        help="set an environment variable; repeat for more",
    )
    exec_parser.add_argument("--cwd", metavar="DIR", help="the working directory inside the container")
    _add_if_version(exec_parser)
    exec_parser.add_argument("id", metavar="ID")
    exec_parser.add_argument("exec_id", metavar="EXEC_ID", help="a name for the new process")
    exec_parser.add_argument("args", nargs="+", metavar="ARG", help="the command, after '--'")
    exec_parser.usage = f"{PROGRAM} exec [options] ID EXEC_ID -- ARG..."

    kill = commands.add("kill", cmd_kill, "send a signal to a container's init, an exec, or all its processes")
    kill.add_argument(
        "-s", "--signal", default="SIGTERM", type=signal_value, metavar="SIG",
        help="a name (SIGKILL, KILL) or number (default: SIGTERM)",
    )
    target = kill.add_mutually_exclusive_group()
    target.add_argument("--exec", dest="process", metavar="EXEC_ID", help="signal this exec process instead of init")
    target.add_argument("--all", action="store_true", dest="all_processes", help="signal every process")
    _add_if_version(kill)
    kill.add_argument("id", metavar="ID")

    for name, handler, help_text in (
        ("pause", cmd_pause, "freeze every process of a running container"),
        ("resume", cmd_resume, "thaw a paused container"),
    ):
        parser = commands.add(name, handler, help_text)
        _add_if_version(parser)
        parser.add_argument("id", metavar="ID")

    delete = commands.add("delete", cmd_delete, "delete a created or stopped container")
    delete.add_argument("-f", "--force", action="store_true", help="kill a live container first")
    _add_if_version(delete)
    delete.add_argument("id", metavar="ID")

    update = commands.add("update", cmd_update, "change a container's resource limits")
    update.add_argument("--memory", type=parse_size, metavar="BYTES", help="memory limit: bytes, or 16m, 1g")
    update.add_argument("--cpu-shares", type=parse_integer, metavar="N", help="relative CPU weight")
    update.add_argument("--cpu-quota", type=parse_integer, metavar="N", help="CPU time per period in µs, -1 for none")
    update.add_argument("--cpu-period", type=parse_integer, metavar="N", help="CPU period in µs")
    update.add_argument("--pids-limit", type=parse_integer, metavar="N", help="maximum processes, -1 for none")
    _add_if_version(update)
    update.add_argument("id", metavar="ID")

    wait = commands.add("wait", cmd_wait, "wait for a container's init to exit, print its status and exit with it")
    wait.add_argument("--timeout", type=parse_seconds, metavar="S", help="give up after S seconds (exit 1)")
    wait.add_argument("id", metavar="ID")


def _add_label_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label", action="append", default=[], type=parse_label, dest="labels", metavar="KEY=VALUE",
        help="attach a label; repeat for more",
    )


def _add_inspection_parsers(commands: _Commands) -> None:
    commands.add("ps", cmd_ps, "list containers")

    for name, handler, help_text in (
        ("info", cmd_info, "show a container's state, processes and checkpoints"),
        ("stats", cmd_stats, "show a live container's resource use"),
        ("top", cmd_top, "list the processes in a live container"),
        ("history", cmd_history, "show a container's journaled events"),
    ):
        commands.add(name, handler, help_text).add_argument("id", metavar="ID")

    logs = commands.add("logs", cmd_logs, "print a container's output: stdout to stdout, stderr to stderr")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the process exits")
    logs.add_argument("--exec", dest="process", metavar="EXEC_ID",
                      help="print this exec process's output instead of the init's")
    logs.add_argument("--since", metavar="TIME", help="only output written after this ISO 8601 time")
    logs.add_argument("-t", "--timestamps", action="store_true", help="start each line with its time")
    logs.add_argument("--stream-prefix", action="store_true", help="start each line with 'stdout: ' or 'stderr: '")
    logs.add_argument("id", metavar="ID")

    events = commands.add("events", cmd_events, "print journaled events, one per line")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument("--since", type=parse_seq, metavar="SEQ", help="only events after this seq")
    events.add_argument("--id", dest="container_id", metavar="ID", help="only this container's events")

    commands.add("audit", cmd_audit, "compare the journal with reality; exit 1 when they differ")


def _add_checkpoint_parsers(commands: _Commands) -> None:
    checkpoint = commands.add("checkpoint", None, "create, list and delete checkpoints (CRIU)")
    sub = _Commands(checkpoint, "checkpoint commands", "checkpoint_command")

    create = sub.add("create", cmd_checkpoint_create, "dump a running container into a named checkpoint")
    create.add_argument("--leave-running", action="store_true", help="keep the container running after the dump")
    for option in CHECKPOINT_OPTIONS:
        create.add_argument(
            f"--{option}", action="append_const", const=f"--{option}", dest="options",
            help=f"pass --{option} to the runtime's checkpoint",
        )
    _add_if_version(create)
    create.add_argument("id", metavar="ID")
    create.add_argument("name", metavar="NAME")

    sub.add("list", cmd_checkpoint_list, "list a container's checkpoints").add_argument("id", metavar="ID")

    delete = sub.add("delete", cmd_checkpoint_delete, "delete a checkpoint")
    _add_if_version(delete)
    delete.add_argument("id", metavar="ID")
    delete.add_argument("name", metavar="NAME")


def _add_journal_parsers(commands: _Commands) -> None:
    journal = commands.add("journal", None, "work on the journal file directly, without the daemon")
    _add_journal_option(journal, top_level=True)
    sub = _Commands(journal, "journal commands", "journal_command")

    for name, handler, help_text in (
        ("export", cmd_journal_export, "print every event with its hash as one JSON object per line"),
        ("migrate", cmd_journal_migrate, "upgrade the journal schema to this bosun's revision"),
    ):
        _add_journal_option(sub.add(name, handler, help_text))

    verify = sub.add("verify", cmd_journal_verify, "check the hash chain; exit 1 naming the first bad seq")
    _add_journal_option(verify)
    verify.add_argument(
        "--expect-head", type=parse_head, metavar="SEQ:HASH",
        help="also require the event at SEQ to have HASH, as an earlier verify printed them "
             "(detects events removed from the journal's end)",
    )

    replay = sub.add("replay", cmd_journal_replay, "show each container's state as of an earlier event")
    _add_journal_option(replay)
    replay.add_argument(
        "--until", metavar="SEQ|TIME",
        help="fold only events up to this seq or ISO 8601 time (default: all)",
    )
    replay.add_argument("--id", dest="container_id", metavar="ID", help="only this container")

    backup = sub.add("backup", cmd_journal_backup, "copy a live SQLite journal consistently to PATH")
    _add_journal_option(backup)
    backup.add_argument("path", metavar="PATH", type=Path)


# -- helpers --------------------------------------------------------------------------------


class Context:
    """The state of one command run: parsed arguments, settings, the client and output streams."""

    def __init__(self, args: argparse.Namespace, argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> None:
        self.args = args
        self.argv = [PROGRAM, *argv]
        self.stdout = stdout
        self.stderr = stderr
        self._client: Client | None = None

    @property
    def settings(self) -> config.ClientSettings:
        return config.client_settings(self.args.root, self.args.socket)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings.socket, argv=self.argv)
        return self._client

    @property
    def journal_url(self) -> str:
        return config.resolve_journal(getattr(self.args, "journal", None))

    def print(self, text: str, *, stream: TextIO | None = None) -> None:
        target = stream or self.stdout
        target.write(text + "\n")
        target.flush()

    def print_json(self, value: Any) -> None:
        self.print(json.dumps(value, indent=2, ensure_ascii=False))


def _exit_code(status: Any) -> int:
    """Map a container exit status to a process exit status (0-255)."""
    if isinstance(status, int) and not isinstance(status, bool) and 0 <= status <= 255:
        return status
    return 255


def _done(context: Context, reply: Any, text: str | None = None) -> int:
    """Finish a mutating command: the reply in JSON mode, else ``text`` if any."""
    if context.args.json:
        context.print_json(reply)
    elif text is not None:
        context.print(text)
    return 0


def _labels(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in pairs:
        if key in labels and labels[key] != value:
            raise UsageError(f"label {key} is given twice with different values: {labels[key]!r} and {value!r}")
        labels[key] = value
    return labels


# -- commands: daemon -----------------------------------------------------------------------


def cmd_daemon(context: Context) -> int:
    args = context.args
    root = config.resolve_root(args.root)
    settings = config.DaemonSettings(
        root=root,
        journal_url=config.resolve_journal(args.journal),
        socket=config.resolve_socket(args.socket, root),
        runtime=args.runtime,
        runtime_args=tuple(args.runtime_args),
        shim=args.shim,
        start_timeout=args.start_timeout,
        keep_env_values=args.keep_env_values,
        crash_at=args.crash_at,
        orphan_policy=args.orphan_policy,
    )
    _configure_logging(args.log_level)

    from bosun import daemon  # The daemon imports aiohttp and SQLAlchemy, which no client command may load.

    return daemon.run(settings)


def _configure_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # transitions logs every state callback at Info; the journal already records each transition.
    logging.getLogger("transitions").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


# -- commands: lifecycle --------------------------------------------------------------------


def cmd_create(context: Context) -> int:
    args = context.args
    reply = context.client.create(args.id, os.path.abspath(args.bundle), labels=_labels(args.labels))
    return _done(context, reply, str(reply.get("id", args.id)))


def cmd_run(context: Context) -> int:
    args = context.args
    if args.rm and args.detach:
        raise UsageError("--rm cannot be used with --detach: the client deletes the container after waiting for it")
    client = context.client
    labels = _labels(args.labels)
    reply = client.create(args.id, os.path.abspath(args.bundle), labels=labels, start=True)
    if args.detach:
        return _done(context, reply, str(reply.get("id", args.id)))

    try:
        for entry in client.logs(args.id, follow=True):
            if context.args.json:
                context.print(json.dumps(entry, ensure_ascii=False))
            else:
                _write_log_entry(context, entry, timestamps=False, stream_prefix=False)
        container = client.wait(args.id)
    except KeyboardInterrupt:
        msg = f"interrupted; container {args.id} keeps running (stop it with 'bosun kill {args.id}')"
        raise CommandFailed(msg, status=130) from None

    status = container.get("exit_status")
    if args.rm:
        client.delete(args.id)
    if context.args.json:
        context.print(json.dumps(container, ensure_ascii=False))
    if status is None:
        raise CommandFailed(f"container {args.id} ended without a recorded exit status (state {container.get('state')})")
    return _exit_code(status)


def cmd_start(context: Context) -> int:
    args = context.args
    reply = context.client.start(args.id, checkpoint=args.checkpoint, if_version=args.if_version)
    return _done(context, reply)


def cmd_exec(context: Context) -> int:
    args = context.args
    reply = context.client.exec(
        args.id, args.exec_id, args.args, env=args.env, cwd=args.cwd, if_version=args.if_version
    )
    return _done(context, reply)


def cmd_kill(context: Context) -> int:
    args = context.args
    reply = context.client.kill(
        args.id,
        signal=args.signal,
        process=args.process,
        all_processes=args.all_processes,
        if_version=args.if_version,
    )
    return _done(context, reply)


def cmd_pause(context: Context) -> int:
    return _done(context, context.client.pause(context.args.id, if_version=context.args.if_version))


def cmd_resume(context: Context) -> int:
    return _done(context, context.client.resume(context.args.id, if_version=context.args.if_version))


def cmd_delete(context: Context) -> int:
    args = context.args
    reply = context.client.delete(args.id, force=args.force, if_version=args.if_version)
    return _done(context, reply, args.id)


def update_resources(args: argparse.Namespace) -> dict[str, Any]:
    """Build the OCI ``linux.resources`` object of ``update`` from its flags."""
    resources: dict[str, Any] = {}
    if args.memory is not None:
        resources["memory"] = {"limit": args.memory}
    cpu = {
        key: value
        for key, value in (("shares", args.cpu_shares), ("quota", args.cpu_quota), ("period", args.cpu_period))
        if value is not None
    }
    if cpu:
        resources["cpu"] = cpu
    if args.pids_limit is not None:
        resources["pids"] = {"limit": args.pids_limit}
    if not resources:
        raise UsageError(
            "update needs at least one of --memory, --cpu-shares, --cpu-quota, --cpu-period, --pids-limit"
        )
    return resources


def cmd_update(context: Context) -> int:
    args = context.args
    reply = context.client.update(args.id, update_resources(args), if_version=args.if_version)
    return _done(context, reply)


def cmd_wait(context: Context) -> int:
    args = context.args
    container = context.client.wait(args.id, timeout=args.timeout)
    status = container.get("exit_status")
    if context.args.json:
        context.print_json(container)
    if status is None:
        if container.get("state") == "deleted":
            raise CommandFailed(f"container {args.id} was deleted with no exit status recorded")
        raise CommandFailed(f"timed out after {args.timeout:g} s waiting for container {args.id} to exit")
    if not context.args.json:
        context.print(str(status))
    return _exit_code(status)


# -- commands: inspection -------------------------------------------------------------------


def cmd_ps(context: Context) -> int:
    reply = context.client.list_containers()
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_containers(reply.get("containers", [])))
    return 0


def cmd_info(context: Context) -> int:
    reply = context.client.get(context.args.id)
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_container(reply))
    return 0


def cmd_stats(context: Context) -> int:
    reply = context.client.stats(context.args.id)
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_stats(reply.get("stats") or {}))
    return 0


def cmd_top(context: Context) -> int:
    reply = context.client.top(context.args.id)
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_top(reply.get("processes", [])))
    return 0


def cmd_history(context: Context) -> int:
    reply = context.client.history(context.args.id)
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_history(reply.get("events", [])))
    return 0


def _write_log_entry(context: Context, entry: Any, *, timestamps: bool, stream_prefix: bool) -> None:
    stream_name = entry.get("stream")
    target = context.stderr if stream_name == "stderr" else context.stdout
    text = str(entry.get("text", ""))
    if not text.endswith("\n"):
        text += "\n"
    prefix = ""
    if timestamps:
        prefix += f"{entry.get('time')} "
    if stream_prefix:
        prefix += f"{stream_name}: "
    target.write(prefix + text)
    target.flush()


def cmd_logs(context: Context) -> int:
    args = context.args
    for entry in context.client.logs(args.id, follow=args.follow, since=args.since, exec_id=args.process):
        if args.json:
            context.print(json.dumps(entry, ensure_ascii=False))
        else:
            _write_log_entry(context, entry, timestamps=args.timestamps, stream_prefix=args.stream_prefix)
    return 0


def cmd_events(context: Context) -> int:
    args = context.args
    for event in context.client.events(since=args.since, follow=args.follow, container_id=args.container_id):
        if args.json:
            context.print(json.dumps(event, ensure_ascii=False))
        else:
            context.print(output.event_line(event))
    return 0


def cmd_audit(context: Context) -> int:
    report = context.client.audit()
    if context.args.json:
        context.print_json(report)
    else:
        context.print(output.format_audit(report))
    return 0 if report.get("ok") else 1


# -- commands: checkpoints ------------------------------------------------------------------


def cmd_checkpoint_create(context: Context) -> int:
    args = context.args
    reply = context.client.create_checkpoint(
        args.id,
        args.name,
        leave_running=args.leave_running,
        options=args.options or [],
        if_version=args.if_version,
    )
    return _done(context, reply)


def cmd_checkpoint_list(context: Context) -> int:
    reply = context.client.list_checkpoints(context.args.id)
    if context.args.json:
        context.print_json(reply)
    else:
        context.print(output.format_checkpoints(reply.get("checkpoints", [])))
    return 0


def cmd_checkpoint_delete(context: Context) -> int:
    args = context.args
    reply = context.client.delete_checkpoint(args.id, args.name, if_version=args.if_version)
    return _done(context, reply)


# -- commands: journal ----------------------------------------------------------------------


def cmd_journal_verify(context: Context) -> int:
    return offline.verify(context.journal_url, context.stdout, as_json=context.args.json,
                          expected_head=context.args.expect_head)


def cmd_journal_export(context: Context) -> int:
    return offline.export(context.journal_url, context.stdout)


def cmd_journal_migrate(context: Context) -> int:
    return offline.migrate(context.journal_url, context.stdout)


def cmd_journal_replay(context: Context) -> int:
    args = context.args
    return offline.replay(
        context.journal_url, context.stdout, until=args.until, container_id=args.container_id, as_json=args.json
    )


def cmd_journal_backup(context: Context) -> int:
    return offline.backup(context.journal_url, context.args.path, context.stdout)


# -- entry point ----------------------------------------------------------------------------


def _fail(stderr: TextIO, message: str, status: int) -> int:
    stderr.write(f"{PROGRAM}: {message}\n")
    stderr.flush()
    return status


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one command and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    context = Context(args, argv, stdout, stderr)

    try:
        return args.handler(context)
    except UsageError as exc:
        return _fail(stderr, str(exc), 2)
    except CommandFailed as exc:
        return _fail(stderr, str(exc), exc.status)
    except ApiError as exc:
        return _fail(stderr, exc.message, 1)
    except DaemonUnavailable as exc:
        # The message already starts with "bosun daemon", so no program prefix is added.
        stderr.write(f"{exc}\n")
        return 1
    except ClientError as exc:
        return _fail(stderr, str(exc), 1)
    except KeyboardInterrupt:
        return _fail(stderr, "interrupted", 130)
    except OfflineError as exc:
        return _fail(stderr, str(exc), 1)
    except BrokenPipeError:
        # The reader went away (``bosun journal export | head``), which is not an error. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        if stdout is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
