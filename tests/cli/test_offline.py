"""``bosun journal ...`` on a journal file in the test's tmp directory."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bosun import cli
from bosun.offline import sqlite_file
from fsm import events as ev
from journal import EventStore, NewEvent


@dataclass
class Result:
    status: int
    out: str
    err: str


def run(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv), stdout=out, stderr=err)
    return Result(status, out.getvalue(), err.getvalue())


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def lifecycle(container_id: str, exit_status: int) -> list[list[NewEvent]]:
    """Return the batches of a create, start and exit, each batch one command or fact."""
    create_id, start_id = f"{container_id}-create", f"{container_id}-start"
    created = [
        NewEvent("CreateRequested", ev.CreateRequested(
            bundle=f"/srv/{container_id}", runtime="runc", labels={"app": container_id}, process=None,
        ).to_data(), create_id),
        NewEvent("Created", ev.Created(init={"pid": 100}, state_dir=f"/run/bosun/{container_id}").to_data(), create_id),
    ]
    started = [
        NewEvent("StartRequested", ev.StartRequested().to_data(), start_id),
        NewEvent("Started", ev.Started().to_data(), start_id),
    ]
    exited = [NewEvent("ProcessExited", ev.ProcessExited(
        process="init", status=exit_status, signal=None, oom=False,
        exited_at="2024-05-01T12:00:00.000000Z", source="shim",
    ).to_data())]
    return [created, started, exited]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal with two containers: web (seq 1-5, exits 0) and db (seq 6-7, created)."""
    path = tmp_path / "journal.db"
    store = EventStore.open(url_of(path), host="test-host")
    try:
        for batch in lifecycle("web", 0):
            store.append("container/web", batch, expected_version=store.stream_version("container/web"))
        store.append("container/db", lifecycle("db", 0)[0], expected_version=0)
    finally:
        store.close()
    return path


def drop_triggers_and_edit(path: Path, seq: int) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TRIGGER events_no_update")
        connection.execute("UPDATE events SET data = ? WHERE seq = ?", ('{"tampered":true}', seq))


def test_sqlite_file_from_urls() -> None:
    assert sqlite_file("sqlite:////var/lib/bosun/journal.db") == Path("/var/lib/bosun/journal.db")
    assert sqlite_file("sqlite:///relative.db") == Path("relative.db")
    assert sqlite_file("sqlite+pysqlite:////a%20b.db?timeout=5") == Path("/a b.db")
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql://host/db") is None


def test_migrate_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    result = run("journal", "migrate", "--journal", url_of(path))
    assert result.status == 0
    assert result.out == "journal schema revision none -> 0001\n"
    assert path.exists()


def test_migrate_current_journal(journal_path: Path) -> None:
    result = run("journal", "migrate", "--journal", url_of(journal_path))
    assert (result.status, result.out) == (0, "journal schema revision 0001: already current\n")


HEAD_LINE = re.compile(r"journal ok: 7 events, head 7:[0-9a-f]{64}\n")


def test_verify_ok(journal_path: Path) -> None:
    result = run("journal", "verify", "--journal", url_of(journal_path))
    assert result.status == 0
    assert HEAD_LINE.fullmatch(result.out)


def head_of(journal_path: Path) -> str:
    return run("journal", "verify", "--journal", url_of(journal_path)).out.split()[-1]


def drop_newest(path: Path, count: int) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TRIGGER events_no_delete")
        connection.execute("DELETE FROM events WHERE seq > (SELECT max(seq) FROM events) - ?", (count,))


def test_verify_expected_head_holds(journal_path: Path) -> None:
    head = head_of(journal_path)

    result = run("journal", "verify", "--journal", url_of(journal_path), "--expect-head", head)

    assert result.status == 0
    assert result.out == f"journal ok: 7 events, head {head}\n"


def test_verify_expected_head_detects_truncation(journal_path: Path) -> None:
    head = head_of(journal_path)
    drop_newest(journal_path, 2)

    plain = run("journal", "verify", "--journal", url_of(journal_path))
    checked = run("journal", "verify", "--journal", url_of(journal_path), "--expect-head", head)

    assert plain.status == 0
    assert checked.status == 1
    assert checked.out.startswith("journal broken at seq 6: the journal ends at seq 5, before the expected head seq 7")


def test_verify_expected_head_with_other_hash_fails(journal_path: Path) -> None:
    wrong = "7:" + "0" * 64

    result = run("journal", "verify", "--journal", url_of(journal_path), "--expect-head", wrong)

    assert result.status == 1
    assert result.out.startswith("journal broken at seq 7: event seq 7 has hash ")


@pytest.mark.parametrize("value", ["7", "seven:" + "a" * 64, "0:" + "a" * 64, "7:" + "A" * 64, "7:abc"])
def test_verify_rejects_malformed_head(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["journal", "verify", "--expect-head", value])

    assert exit_info.value.code == 2
    assert "use SEQ:HASH as 'bosun journal verify' prints it" in capsys.readouterr().err


def test_verify_uses_env_journal(journal_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_JOURNAL", url_of(journal_path))
    assert run("journal", "verify").status == 0


def test_verify_tampered_names_seq(journal_path: Path) -> None:
    drop_triggers_and_edit(journal_path, 3)
    result = run("journal", "verify", "--journal", url_of(journal_path))
    assert result.status == 1
    assert result.out.startswith("journal broken at seq 3: ")
    assert "2 events before it verified" in result.out


def test_verify_tampered_json(journal_path: Path) -> None:
    drop_triggers_and_edit(journal_path, 3)
    result = run("journal", "verify", "--json", "--journal", url_of(journal_path))
    report = json.loads(result.out)
    assert result.status == 1
    assert report["ok"] is False
    assert report["first_bad_seq"] == 3


def test_verify_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an sqlite database, only text " * 100)
    result = run("journal", "verify", "--journal", url_of(path))
    assert result.status == 1
    assert str(path) in result.err
    assert "file is not a database" in result.err
    assert result.err.startswith("bosun: ")


def test_verify_missing_file_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    result = run("journal", "verify", "--journal", url_of(path))
    assert result.status == 1
    assert f"journal file {path} not found" in result.err
    assert not path.exists()


def test_export_lines_carry_hashes(journal_path: Path) -> None:
    result = run("journal", "export", "--journal", url_of(journal_path))
    events = [json.loads(line) for line in result.out.splitlines()]
    assert result.status == 0
    assert [event["seq"] for event in events] == list(range(1, 8))
    assert all(len(event["hash"]) == 64 for event in events)
    assert events[0]["type"] == "CreateRequested"
    assert events[0]["stream"] == "container/web"


def test_backup_copy_verifies(journal_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backups" / "copy.db"
    result = run("journal", "backup", "--journal", url_of(journal_path), str(copy))
    assert result.status == 0
    assert result.out == f"journal backed up to {copy}: head seq 7\n"
    verified = run("journal", "verify", "--journal", url_of(copy))
    assert verified.status == 0
    assert HEAD_LINE.fullmatch(verified.out)


def test_backup_existing_destination_fails(journal_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_text("keep me")
    result = run("journal", "backup", "--journal", url_of(journal_path), str(copy))
    assert result.status == 1
    assert "already exists" in result.err
    assert copy.read_text() == "keep me"


def replay_json(journal_path: Path, *extra: str) -> dict[str, dict]:
    result = run("journal", "replay", "--json", "--journal", url_of(journal_path), *extra)
    assert result.status == 0, result.err
    return {item["id"]: item for item in json.loads(result.out)["containers"]}


def test_replay_until_seq(journal_path: Path) -> None:
    containers = replay_json(journal_path, "--until", "4")
    assert containers["web"]["state"] == "running"
    assert containers["web"]["version"] == 4
    assert containers["web"]["exit_status"] is None
    assert "db" not in containers


def test_replay_until_seq_with_pending(journal_path: Path) -> None:
    web = replay_json(journal_path, "--until", "3")["web"]
    assert web["state"] == "created"
    assert web["pending"] == [{"command_id": "web-start", "type": "StartRequested", "seq": 3}]


def test_replay_whole_journal(journal_path: Path) -> None:
    containers = replay_json(journal_path)
    assert containers["web"]["state"] == "stopped"
    assert containers["web"]["exit_status"] == 0
    assert containers["web"]["labels"] == {"app": "web"}
    assert containers["db"]["state"] == "created"
    assert containers["db"]["pid"] == 100


def test_replay_until_time(journal_path: Path) -> None:
    with closing(sqlite3.connect(journal_path)) as connection:
        first_time = connection.execute("SELECT recorded_at FROM events WHERE seq = 1").fetchone()[0]
    assert set(replay_json(journal_path, "--until", first_time)) == {"web"}
    assert replay_json(journal_path, "--until", "2000-01-01T00:00:00Z") == {}


def test_replay_one_container(journal_path: Path) -> None:
    assert set(replay_json(journal_path, "--id", "db")) == {"db"}


def test_replay_unknown_container_fails(journal_path: Path) -> None:
    result = run("journal", "replay", "--journal", url_of(journal_path), "--id", "ghost")
    assert result.status == 1
    assert result.err == "bosun: container ghost not found in the journal\n"


def test_replay_invalid_until_fails(journal_path: Path) -> None:
    result = run("journal", "replay", "--journal", url_of(journal_path), "--until", "yesterday")
    assert result.status == 1
    assert "invalid --until 'yesterday'" in result.err


def test_replay_table(journal_path: Path) -> None:
    result = run("journal", "replay", "--journal", url_of(journal_path), "--until", "5")
    lines = result.out.splitlines()
    assert result.status == 0
    assert lines[0].startswith("state after seq 5 (")
    assert lines[1].split() == ["ID", "STATE", "PID", "EXIT", "BUNDLE", "LABELS", "VERSION"]
    assert lines[2].split() == ["web", "stopped", "100", "0", "/srv/web", "app=web", "5"]
