"""The k8s-file log reader: whole and partial lines, both streams, the since filter, following."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

from adapters.logs import LogLine, follow_log, parse_time, read_log

UTC = datetime.UTC


def at(second: int, microsecond: int = 0) -> datetime.datetime:
    return datetime.datetime(2024, 5, 1, 12, 0, second, microsecond, tzinfo=UTC)


def test_parse_time_keeps_microseconds() -> None:
    assert parse_time("2024-05-01T12:00:07.123456789+00:00") == at(7, 123456)
    assert parse_time("2024-05-01T12:00:07Z") == at(7)
    assert parse_time("2024-05-01T14:00:07.5+02:00") == at(7, 500000)


def test_parse_time_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match="invalid log time '1714564807'"):
        parse_time("1714564807")


def test_read_log_joins_partial_lines_per_stream(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text(
        "2024-05-01T12:00:01.000000001+00:00 stdout P hello \n"
        "2024-05-01T12:00:02.000000001+00:00 stderr F warning: disk low\n"
        "2024-05-01T12:00:03.000000001+00:00 stdout P big \n"
        "2024-05-01T12:00:04.000000001+00:00 stdout F world\n"
        "2024-05-01T12:00:05.000000001+00:00 stdout F \n"
    )

    lines = read_log(log)

    assert lines == [
        LogLine(time=at(2), stream="stderr", text="warning: disk low"),
        LogLine(time=at(4), stream="stdout", text="hello big world"),
        LogLine(time=at(5), stream="stdout", text=""),
    ]


def test_read_log_keeps_spaces_in_text(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("2024-05-01T12:00:01Z stdout F   indented  text \n")

    assert read_log(log)[0].text == "  indented  text "


def test_read_log_returns_trailing_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("2024-05-01T12:00:01Z stdout F done\n2024-05-01T12:00:02Z stdout P no newline\n")

    lines = read_log(log)

    assert [line.text for line in lines] == ["done", "no newline"]


def test_read_log_since_filters_by_time(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text(
        "2024-05-01T12:00:01Z stdout F first\n"
        "2024-05-01T12:00:02Z stderr F second\n"
        "2024-05-01T12:00:03Z stdout F third\n"
    )

    lines = read_log(log, since=at(2))

    assert [line.text for line in lines] == ["second", "third"]


def test_read_log_skips_malformed_entries(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text(
        "garbage\n"
        "2024-05-01T12:00:01Z stdin F wrong stream\n"
        "yesterday stdout F wrong time\n"
        "2024-05-01T12:00:02Z stdout F kept\n"
    )

    assert [line.text for line in read_log(log)] == ["kept"]


def test_read_log_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_log(tmp_path / "not-written-yet.log") == []


def test_follow_log_yields_lines_as_written(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("2024-05-01T12:00:01Z stdout F before\n")
    stop = threading.Event()
    seen: list[str] = []
    third_seen = threading.Event()

    def reader() -> None:
        for line in follow_log(log, stop=stop, poll_interval=0.01):
            seen.append(line.text)
            if len(seen) == 3:
                third_seen.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with open(log, "a") as writer:
            # An entry split across two writes is read only once it is whole.
            writer.write("2024-05-01T12:00:02Z stdout P after ")
            writer.flush()
            writer.write("one \n2024-05-01T12:00:03Z stdout F part two\n")
            writer.flush()
            writer.write("2024-05-01T12:00:04Z stderr F after two\n")
        assert third_seen.wait(30)
    finally:
        stop.set()
        thread.join()

    assert seen == ["before", "after one part two", "after two"]


def test_follow_log_applies_since(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("2024-05-01T12:00:01Z stdout F old\n2024-05-01T12:00:09Z stdout F new\n")
    stop = threading.Event()
    stop.set()

    lines = list(follow_log(log, since=at(5), stop=stop))

    assert [line.text for line in lines] == ["new"]
