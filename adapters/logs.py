"""Read the container logs that conmon writes in the ``k8s-file`` format.

Each line of such a file is ``TIME STREAM TAG TEXT``: an RFC 3339 time with nanoseconds, then
``stdout`` or ``stderr``, then a tag. Tag ``F`` means TEXT ends a line of output. Tag ``P`` means
conmon split a long line, or wrote output that had no newline yet, and the line continues in the
next ``P`` or ``F`` entry of the same stream. The readers here join partial entries back into
whole lines.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]

_TIME_PATTERN = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)$")


@dataclasses.dataclass(frozen=True)
class LogLine:
    """One line of container output; ``time`` is when its last part was written."""

    time: datetime.datetime
    stream: Stream
    text: str


def parse_time(text: str) -> datetime.datetime:
    """Parse an RFC 3339 time with up to nanosecond precision into an aware datetime.

    Digits past microseconds are dropped, because ``datetime`` stores nothing finer.
    """
    match = _TIME_PATTERN.match(text)
    if match is None:
        msg = f"invalid log time {text!r}: expected RFC 3339, for example 2024-01-02T03:04:05.123Z"
        raise ValueError(msg)
    seconds, fraction, zone = match.groups()
    microseconds = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.datetime.fromisoformat(f"{seconds}.{microseconds}{zone}")


class LogParser:
    """Turn k8s-file entries into ``LogLine`` values, joining partial entries per stream.

    Feed it one entry at a time (without the trailing newline); it returns the finished line, if
    any. Malformed entries are logged and skipped, so one bad write does not hide the rest.
    """

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}

    def feed(self, entry: str) -> LogLine | None:
        """Parse one entry; return the line it completes, or None for a partial or bad entry."""
        parts = entry.split(" ", 3)
        if len(parts) < 3:
            logger.warning("skipping malformed k8s-file log entry %r", entry[:200])
            return None
        time_text, stream, tag = parts[:3]
        text = parts[3] if len(parts) == 4 else ""
        if stream not in ("stdout", "stderr"):
            logger.warning("skipping k8s-file log entry with unknown stream %r", stream)
            return None
        try:
            written = parse_time(time_text)
        except ValueError:
            logger.warning("skipping k8s-file log entry with invalid time %r", time_text)
            return None

        # The tag may carry more flags after a colon; only the first letter matters here.
        if tag.startswith("P"):
            self._pending.setdefault(stream, []).append(text)
            return None
        pieces = self._pending.pop(stream, [])
        pieces.append(text)
        return LogLine(time=written, stream=stream, text="".join(pieces))  # type: ignore[arg-type]

    def flush(self, now: datetime.datetime | None = None) -> list[LogLine]:
        """Return the partial lines still pending (output that never got its newline)."""
        stamp = now or datetime.datetime.now(datetime.UTC)
        lines = [
            LogLine(time=stamp, stream=stream, text="".join(pieces))  # type: ignore[arg-type]
            for stream, pieces in self._pending.items()
            if pieces
        ]
        self._pending.clear()
        return lines


def parse_log(entries: Iterable[str], since: datetime.datetime | None = None) -> Iterator[LogLine]:
    """Parse k8s-file entries into whole lines, keeping those written at or after ``since``.

    A partial line left at the end is returned too, because the container may have exited
    without writing its newline.
    """
    parser = LogParser()
    for entry in entries:
        line = parser.feed(entry.rstrip("\n"))
        if line is not None and _is_after(line, since):
            yield line
    for line in parser.flush():
        if _is_after(line, since):
            yield line


def read_log(path: Path | str, since: datetime.datetime | None = None) -> list[LogLine]:
    """Return every whole line in the k8s-file log at ``path`` written at or after ``since``.

    A missing file reads as empty: conmon creates it only when the container starts.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as log_file:
            return list(parse_log(log_file, since))
    except FileNotFoundError:
        return []


def follow_log(
    path: Path | str,
    since: datetime.datetime | None = None,
    stop: threading.Event | None = None,
    poll_interval: float = 0.2,
) -> Iterator[LogLine]:
    """Yield lines of the k8s-file log at ``path`` as conmon writes them, until ``stop`` is set.

    Existing lines come first (filtered by ``since``), then new ones. Only whole entries are
    parsed: a write that has no newline yet waits for the next poll. Without ``stop`` the
    generator runs until the caller closes it. When conmon rotates the file (it gets shorter
    or is replaced), reading restarts at its beginning.
    """
    stop = stop or threading.Event()
    parser = LogParser()
    position = 0
    inode: int | None = None
    # Bytes, not text, so that positions are byte offsets and a multi-byte character split
    # across two reads is decoded only once its entry is whole.
    buffer = b""

    while True:
        try:
            with open(path, "rb") as log_file:
                status = os.fstat(log_file.fileno())
                if inode is not None and (status.st_ino != inode or status.st_size < position):
                    logger.debug("log file %s was rotated; reading it from the start", path)
                    position, buffer = 0, b""
                inode = status.st_ino
                log_file.seek(position)
                chunk = log_file.read()
                position += len(chunk)
        except FileNotFoundError:
            chunk = b""

        buffer += chunk
        *entries, buffer = buffer.split(b"\n")
        for entry in entries:
            line = parser.feed(entry.decode("utf-8", errors="replace"))
            if line is not None and _is_after(line, since):
                yield line

        if stop.is_set():
            return
        stop.wait(poll_interval)


def _is_after(line: LogLine, since: datetime.datetime | None) -> bool:
    return since is None or line.time >= since
