"""Table and text rendering of API objects."""

from __future__ import annotations

import pytest

from bosun import output


def test_table_pads_all_but_last_column() -> None:
    text = output.format_table(("A", "LONGER", "C"), [["x", "y", "z"], ["wide", None, "last"]])
    assert text.splitlines() == [
        "A     LONGER  C",
        "x     y       z",
        "wide  -       last",
    ]


def test_table_has_no_trailing_spaces() -> None:
    text = output.format_table(("A", "B"), [["x", ""]])
    assert all(line == line.rstrip() for line in text.splitlines())


def test_table_cells_flatten_newlines() -> None:
    assert output.format_table(("A",), [["two\nlines"]]).splitlines()[1] == "two lines"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:05.123456Z", "2024-05-01 12:00:05"),
        ("2024-05-01T12:00:05+00:00", "2024-05-01 12:00:05"),
        (None, "-"),
        ("soon", "soon"),
    ],
)
def test_short_time_cuts_to_seconds(value: str | None, expected: str) -> None:
    assert output.short_time(value) == expected


def test_shorten_marks_cut() -> None:
    assert output.shorten("abcdef", 5) == "ab..."
    assert output.shorten("abc", 5) == "abc"


def test_details_skip_caller_and_none() -> None:
    data = {"requested_by": {"uid": 0}, "signal": 9, "process": "init", "reason": None, "labels": {"a": "b"}}
    assert output.format_details(data) == 'signal=9 process=init labels={"a":"b"}'


def test_labels_sorted() -> None:
    assert output.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert output.format_labels({}) == "-"


def test_processes_show_exit_details() -> None:
    processes = [{"id": "init", "pid": 1, "state": "exited", "exit_status": 137, "signal": 9, "oom": True,
                  "exited_at": "2024-05-01T12:00:05.5Z", "source": "recovery", "reason": None, "args": ["sh"]}]
    row = output.format_processes(processes).splitlines()[1]
    assert "137 (signal 9, oom)" in row
    assert "2024-05-01 12:00:05" in row
    assert "recovery" in row


def test_audit_broken_journal_line() -> None:
    report = {"ok": False, "journal": {"ok": False, "first_bad_seq": 12, "reason": "hash does not match"}}
    lines = output.format_audit(report).splitlines()
    assert lines[0] == "audit: problems found"
    assert lines[1] == "journal: broken at seq 12: hash does not match"


def test_stats_empty() -> None:
    assert output.format_stats({}) == "no stats"
