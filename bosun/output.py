"""Human output of the CLI: aligned tables and short renderings of API objects.

No colour and no terminal detection, so the output is the same in a pipe and on a screen.
Scripts should use ``--json``, which prints the API's JSON unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Widest a free-text cell (labels, event data) is printed in a table before it is cut.
MAX_DETAIL_WIDTH = 80
EMPTY = "-"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Render rows under headers with columns padded to their widest cell, two spaces apart.

    The last column is not padded, so no line ends in spaces. ``None`` prints as "-".
    """
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))

    lines = []
    for row in [list(headers), *cells]:
        padded = [value.ljust(widths[index]) for index, value in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("\n", " ")


def short_time(value: str | None) -> str:
    """Shorten an ISO 8601 time to seconds: ``2024-01-02T03:04:05.678901Z`` → ``2024-01-02 03:04:05``.

    Times are UTC in the API, so the zone is left out. A value of another form is returned as is.
    """
    if not value:
        return EMPTY
    if len(value) >= 19 and value[10] in "T " and value[4] == "-" and value[13] == ":":
        return f"{value[:10]} {value[11:19]}"
    return value


def shorten(text: str, width: int = MAX_DETAIL_WIDTH) -> str:
    """Cut ``text`` to ``width`` characters, ending in "..." when it was cut."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..."


def compact_json(value: Any) -> str:
    """Render a JSON value on one line, without spaces after separators."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def format_labels(labels: Mapping[str, str] | None) -> str:
    """Render labels as ``k=v,k2=v2`` sorted by key, "-" when there are none."""
    if not labels:
        return EMPTY
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def format_details(data: Mapping[str, Any] | None) -> str:
    """Render event data as ``key=value`` pairs on one line, cut to ``MAX_DETAIL_WIDTH``.

    The caller's identity (``requested_by``) is left out: ``history --json`` shows it.
    """
    if not data:
        return ""
    parts = []
    for key, value in data.items():
        if key == "requested_by" or value is None:
            continue
        rendered = value if isinstance(value, str) else compact_json(value)
        parts.append(f"{key}={rendered}")
    return shorten(" ".join(parts))


def exit_cell(container: Mapping[str, Any]) -> str:
    """Render a container's exit status, "-" while init has not exited."""
    status = container.get("exit_status")
    return EMPTY if status is None else str(status)


# -- containers -----------------------------------------------------------------------------

CONTAINER_HEADERS = ("ID", "STATE", "PID", "EXIT", "BUNDLE", "LABELS", "VERSION")


def container_row(container: Mapping[str, Any]) -> list[Any]:
    """Return the ``ps`` row of one container."""
    return [
        container.get("id"),
        container.get("state"),
        container.get("pid"),
        exit_cell(container),
        container.get("bundle"),
        format_labels(container.get("labels")),
        container.get("version"),
    ]


def format_containers(containers: Sequence[Mapping[str, Any]]) -> str:
    """Render the ``ps`` table, sorted by id."""
    ordered = sorted(containers, key=lambda container: str(container.get("id")))
    return format_table(CONTAINER_HEADERS, [container_row(container) for container in ordered])


def format_container(container: Mapping[str, Any]) -> str:
    """Render ``info``: the container's fields, then its processes, checkpoints and pending commands."""
    fields = [
        ("id", container.get("id")),
        ("state", container.get("state")),
        ("version", container.get("version")),
        ("bundle", container.get("bundle")),
        ("runtime", container.get("runtime")),
        ("pid", container.get("pid")),
        ("exit status", container.get("exit_status")),
        ("labels", format_labels(container.get("labels"))),
        ("created", short_time(container.get("created_at"))),
        ("started", short_time(container.get("started_at"))),
        ("finished", short_time(container.get("finished_at"))),
    ]
    resources = container.get("resources")
    if resources:
        fields.append(("resources", compact_json(resources)))
    width = max(len(name) for name, _ in fields) + 1
    sections = ["\n".join(f"{(name + ':').ljust(width)} {_cell(value)}" for name, value in fields)]

    processes = container.get("processes") or []
    if processes:
        sections.append("processes:\n" + _indent(format_processes(processes)))
    checkpoints = container.get("checkpoints") or []
    if checkpoints:
        sections.append("checkpoints:\n" + _indent(format_checkpoints(_checkpoint_list(checkpoints))))
    pending = container.get("pending") or []
    if pending:
        rows = [[item.get("seq"), item.get("type"), item.get("command_id")] for item in pending]
        sections.append("pending commands:\n" + _indent(format_table(("SEQ", "TYPE", "COMMAND"), rows)))
    anomalies = container.get("anomalies") or []
    if anomalies:
        sections.append("anomalies:\n" + _indent("\n".join(_anomaly_line(item) for item in anomalies)))
    return "\n\n".join(sections)


def format_processes(processes: Sequence[Mapping[str, Any]]) -> str:
    """Render a container's processes: init first, then execs by id."""
    ordered = sorted(processes, key=lambda process: (process.get("id") != "init", str(process.get("id"))))
    rows = []
    for process in ordered:
        exit_text = process.get("exit_status")
        if exit_text is not None:
            notes = []
            if process.get("signal"):
                notes.append(f"signal {process['signal']}")
            if process.get("oom"):
                notes.append("oom")
            if process.get("reason"):
                notes.append(str(process["reason"]))
            if notes:
                exit_text = f"{exit_text} ({', '.join(notes)})"
        args = process.get("args")
        rows.append([
            process.get("id"),
            process.get("state"),
            process.get("pid"),
            exit_text,
            short_time(process.get("exited_at")) if process.get("exited_at") else None,
            process.get("source"),
            shorten(" ".join(args)) if args else None,
        ])
    return format_table(("ID", "STATE", "PID", "EXIT", "EXITED", "SEEN BY", "ARGS"), rows)


def _checkpoint_list(checkpoints: Any) -> list[Mapping[str, Any]]:
    # The container object may list checkpoints or map names to them.
    if isinstance(checkpoints, Mapping):
        return [{"name": name, **value} for name, value in checkpoints.items()]
    return list(checkpoints)


def format_checkpoints(checkpoints: Sequence[Mapping[str, Any]]) -> str:
    """Render ``checkpoint list``, oldest first."""
    ordered = sorted(checkpoints, key=lambda item: str(item.get("created_at") or ""))
    rows = [
        [item.get("name"), short_time(item.get("created_at")), bool(item.get("leave_running")), item.get("path")]
        for item in ordered
    ]
    return format_table(("NAME", "CREATED", "LEFT RUNNING", "PATH"), rows)


def _anomaly_line(anomaly: Any) -> str:
    if isinstance(anomaly, Mapping):
        return f"seq {anomaly.get('seq')} {anomaly.get('type')}: {anomaly.get('reason')}"
    return str(anomaly)


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


# -- events ---------------------------------------------------------------------------------


def event_line(event: Mapping[str, Any]) -> str:
    """Render one event of ``events``: seq, time, stream, type and short data."""
    marker = " (recovery)" if event.get("recovery") else ""
    details = format_details(event.get("data"))
    parts = [
        str(event.get("seq")),
        short_time(event.get("recorded_at")),
        str(event.get("stream")),
        f"{event.get('type')}{marker}",
    ]
    if details:
        parts.append(details)
    return " ".join(parts)


def format_history(events: Sequence[Mapping[str, Any]]) -> str:
    """Render ``history`` with one row per event, marking the events that recovery appended."""
    rows = []
    for event in events:
        marker = " (recovery)" if event.get("recovery") else ""
        command_id = event.get("command_id")
        rows.append([
            event.get("seq"),
            short_time(event.get("recorded_at")),
            event.get("version"),
            f"{event.get('type')}{marker}",
            command_id[:12] if command_id else None,
            format_details(event.get("data")),
        ])
    return format_table(("SEQ", "TIME", "VERSION", "TYPE", "COMMAND", "DETAILS"), rows)


# -- stats and top --------------------------------------------------------------------------


def format_stats(stats: Mapping[str, Any]) -> str:
    """Render runtime stats as ``dotted.key  value`` lines, nested objects flattened."""
    rows = [[key, value] for key, value in _flatten(stats)]
    if not rows:
        return "no stats"
    return format_table(("METRIC", "VALUE"), rows)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        flat: list[tuple[str, Any]] = []
        for key in sorted(value):
            flat.extend(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        if all(not isinstance(item, (Mapping, list)) for item in value):
            return [(prefix, " ".join(str(item) for item in value))]
        flat = []
        for index, item in enumerate(value):
            flat.extend(_flatten(item, f"{prefix}.{index}"))
        return flat
    return [(prefix, value)]


def format_top(processes: Sequence[Mapping[str, Any]]) -> str:
    """Render ``top`` with one row per process, ordered by pid, and RSS in bytes."""
    rows = []
    for process in sorted(processes, key=lambda item: item.get("pid") or 0):
        cpu = process.get("cpu_percent")
        cmdline = process.get("cmdline")
        if isinstance(cmdline, list):
            cmdline = " ".join(cmdline)
        rows.append([
            process.get("pid"),
            process.get("ppid"),
            process.get("user"),
            f"{cpu:.1f}" if isinstance(cpu, (int, float)) else cpu,
            process.get("rss"),
            cmdline,
        ])
    return format_table(("PID", "PPID", "USER", "CPU%", "RSS", "COMMAND"), rows)


# -- audit ----------------------------------------------------------------------------------


def format_audit(report: Mapping[str, Any]) -> str:
    """Render ``audit``: the verdict, the journal check, then each finding under its heading."""
    lines = ["audit: ok" if report.get("ok") else "audit: problems found"]

    journal = report.get("journal") or {}
    if journal.get("ok", True):
        lines.append(f"journal: ok, {journal.get('events_checked', 0)} events checked")
    else:
        lines.append(f"journal: broken at seq {journal.get('first_bad_seq')}: {journal.get('reason')}")

    containers = report.get("containers") or []
    lines.append(f"containers: {len(containers)}")
    for container in containers:
        findings = container.get("findings") or []
        verdict = "ok" if not findings else f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
        lines.append(
            f"  {container.get('id')}: believed {container.get('belief')}, "
            f"found {container.get('reality')}, {verdict}"
        )
        for finding in findings:
            process = finding.get("process")
            where = f" ({process})" if process else ""
            lines.append(f"    - {finding.get('kind')}{where}: {finding.get('detail')}")

    for key, title in (
        ("open_intents", "open intents"),
        ("crashed_runs", "crashed daemon runs"),
        ("unknown_runtime_containers", "runtime containers unknown to the journal"),
    ):
        items = report.get(key) or []
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  - {_item_text(item)}" for item in items)
    return "\n".join(lines)


def _item_text(item: Any) -> str:
    if isinstance(item, Mapping):
        return " ".join(
            f"{key}={value if isinstance(value, str) else compact_json(value)}"
            for key, value in item.items()
            if value is not None
        )
    return str(item)
