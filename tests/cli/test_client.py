"""The Unix-socket client against a fake API server started by each test."""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path

import pytest

from bosun.client import ApiError, Client, ClientError, DaemonUnavailable, ProtocolError, command_header
from tests.cli.conftest import Chunked, FakeApi, container


def test_missing_socket_raises_daemon_unavailable(tmp_path: Path) -> None:
    socket_path = tmp_path / "absent.sock"
    with pytest.raises(DaemonUnavailable) as error:
        Client(socket_path).list_containers()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("bosun daemon is not running: ")
    assert f"no socket at {socket_path}" in message
    assert "'bosun daemon'" in message
    assert "--socket / BOSUN_SOCKET" in message


def test_refused_socket_raises_daemon_unavailable(tmp_path: Path) -> None:
    # A bound socket that never listens refuses connections, as a dead daemon's socket does.
    socket_path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    try:
        with pytest.raises(DaemonUnavailable, match=f"connection refused at {socket_path}"):
            Client(socket_path).version()
    finally:
        stale.close()


def test_json_reply_decoded(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers", 200, {"containers": [container("web")]})
    reply = Client(fake_api.socket_path).list_containers()
    assert reply["containers"][0]["id"] == "web"


def test_command_header_sent(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/version", 200, {"version": "0.1.0"})
    Client(fake_api.socket_path, argv=["bosun", "exec", "web", "e1", "--", "sh", "-c", "echo hi"]).version()
    assert fake_api.requests[0].headers["X-Bosun-Command"] == "bosun exec web e1 -- sh -c 'echo hi'"


def test_command_header_escapes_newlines() -> None:
    header = command_header(["bosun", "exec", "web", "e1", "--", "printf", "a\nb"])
    assert "\n" not in header
    assert "\\n" in header


def test_command_header_cut_when_long() -> None:
    header = command_header(["bosun", "x" * 10000])
    assert len(header) == 4096
    assert header.endswith("...")


def test_error_reply_raises_api_error(fake_api: FakeApi) -> None:
    error = {"error": {"code": "not_allowed", "message": "pausing container web: state is stopped"}}
    fake_api.reply("POST", "/v1/containers/web/pause", 409, error)
    with pytest.raises(ApiError) as raised:
        Client(fake_api.socket_path).pause("web")
    assert raised.value.status == 409
    assert raised.value.code == "not_allowed"
    assert raised.value.message == "pausing container web: state is stopped"


def test_error_reply_without_json_keeps_status(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/audit", 500, b"internal trouble")
    with pytest.raises(ApiError) as raised:
        Client(fake_api.socket_path).audit()
    assert raised.value.status == 500
    assert raised.value.code == "http_error"
    assert "HTTP 500" in raised.value.message
    assert "internal trouble" in raised.value.message


def test_non_json_reply_raises_protocol_error(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/version", 200, b"<html>")
    with pytest.raises(ProtocolError, match="not JSON"):
        Client(fake_api.socket_path).version()


def test_stream_yields_each_line(fake_api: FakeApi) -> None:
    events = [{"seq": 1, "type": "CreateRequested"}, {"seq": 2, "type": "Created"}]
    fake_api.reply("GET", "/v1/events", 200, events)
    assert list(Client(fake_api.socket_path).events(since=0, follow=True, container_id="web")) == events
    query = urllib.parse.parse_qs(fake_api.requests[0].query)
    assert query == {"since": ["0"], "follow": ["true"], "id": ["web"]}


def test_stream_lines_split_across_chunks(fake_api: FakeApi) -> None:
    chunks = [b'{"seq": 1}\n{"se', b'q": 2}\n', b"\n", b'{"seq": 3}\n']
    fake_api.reply("GET", "/v1/events", 200, Chunked(chunks))
    assert list(Client(fake_api.socket_path).events(follow=True)) == [{"seq": 1}, {"seq": 2}, {"seq": 3}]


def test_stream_error_raises_before_first_line(fake_api: FakeApi) -> None:
    fake_api.reply("GET", "/v1/containers/ghost/logs", 404, {"error": {"code": "not_found", "message": "container ghost not found"}})
    with pytest.raises(ApiError, match="container ghost not found"):
        next(Client(fake_api.socket_path).logs("ghost"))


def test_create_body(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers", 201, container("web"))
    Client(fake_api.socket_path).create("web", "/b", labels={"tier": "web"}, start=True)
    assert fake_api.requests[0].body == {"id": "web", "bundle": "/b", "labels": {"tier": "web"}, "start": True}


def test_kill_body(fake_api: FakeApi) -> None:
    fake_api.reply("POST", "/v1/containers/web/kill", 200, container("web"))
    Client(fake_api.socket_path).kill("web", signal=9, process="e1", if_version=4)
    assert fake_api.requests[0].body == {"signal": 9, "process": "e1", "if_version": 4}


def test_delete_query(fake_api: FakeApi) -> None:
    fake_api.reply("DELETE", "/v1/containers/web", 200, container("web", state="deleted"))
    Client(fake_api.socket_path).delete("web", force=True, if_version=6)
    assert urllib.parse.parse_qs(fake_api.requests[0].query) == {"force": ["true"], "if_version": ["6"]}


def test_delete_without_flags_sends_no_query(fake_api: FakeApi) -> None:
    fake_api.reply("DELETE", "/v1/containers/web", 200, container("web", state="deleted"))
    Client(fake_api.socket_path).delete("web")
    assert fake_api.requests[0].query == ""


def test_container_id_quoted_in_path(fake_api: FakeApi) -> None:
    with pytest.raises(ApiError):
        Client(fake_api.socket_path).get("a/b")
    assert fake_api.requests[0].path == "/v1/containers/a%2Fb"


def test_socket_path_not_a_socket(tmp_path: Path) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("")
    with pytest.raises(ClientError):
        Client(plain).version()
