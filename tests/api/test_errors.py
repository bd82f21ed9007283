"""Bad requests to the API get a 4xx JSON error and change nothing.

Each case checks the status, the error code and message, and that no journal event, state
directory or runtime container was added by the rejected request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bosun.ids import ID_RULE
from tests.api.support import SimulatedServer


def error_of(reply: Any) -> dict[str, str]:
    body = reply.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]


class Snapshot:
    """What a rejected request must not change: events, state directories, runtime containers."""

    def __init__(self, server: SimulatedServer) -> None:
        self.server = server
        self.events = server.event_count()
        self.state_dirs = server.state_dirs()
        self.runtime = server.runtime_containers()

    def assert_unchanged(self) -> None:
        assert self.server.event_count() == self.events
        assert self.server.state_dirs() == self.state_dirs
        assert self.server.runtime_containers() == self.runtime


@pytest.fixture
def running(server: SimulatedServer) -> Iterator[SimulatedServer]:
    """The server with one running container, "web"."""
    bundle = server.bundle("web")
    reply = server.request("POST", "/v1/containers", json={"id": "web", "bundle": str(bundle), "start": True})
    assert reply.status_code == 201, reply.text
    yield server


BAD_IDS = ["..", ".", "a/b", "../etc", "a..b", "a__b", "-a", "a-", ".a", "a.", "a\x00b", "x" * 77, "a b", "é"]


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
def test_create_bad_id_rejected(server: SimulatedServer, bad_id: str) -> None:
    bundle = server.bundle("bundle")
    before = Snapshot(server)

    reply = server.request("POST", "/v1/containers", json={"id": bad_id, "bundle": str(bundle)})

    assert reply.status_code == 400
    error = error_of(reply)
    assert error["code"] == "invalid_argument"
    assert error["message"] == f"invalid container id {bad_id!r}: use {ID_RULE}"
    before.assert_unchanged()


def test_create_empty_id_rejected(server: SimulatedServer) -> None:
    bundle = server.bundle("bundle")
    before = Snapshot(server)

    reply = server.request("POST", "/v1/containers", json={"id": "", "bundle": str(bundle)})

    assert reply.status_code == 400
    assert ID_RULE in error_of(reply)["message"]
    before.assert_unchanged()


def test_create_max_length_id_accepted(server: SimulatedServer) -> None:
    bundle = server.bundle("bundle")

    reply = server.request("POST", "/v1/containers", json={"id": "x" * 76, "bundle": str(bundle)})

    assert reply.status_code == 201, reply.text


@pytest.mark.parametrize("path", ["/v1/containers/%2E%2E", "/v1/containers/a%2Fb", "/v1/containers/a%00b",
                                  "/v1/containers/" + "x" * 77])
def test_path_bad_id_rejected(server: SimulatedServer, path: str) -> None:
    reply = server.request("GET", path)

    assert reply.status_code == 400
    error = error_of(reply)
    assert error["code"] == "invalid_argument"
    assert ID_RULE in error["message"]


@pytest.mark.parametrize("exec_id", ["..", "a/b", "", "a\x00b", "x" * 77, "-a", "a-"], ids=repr)
def test_exec_bad_id_rejected(running: SimulatedServer, exec_id: str) -> None:
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/exec", json={"exec_id": exec_id, "args": ["true"]})

    assert reply.status_code == 400
    assert error_of(reply)["message"] == f"invalid exec id {exec_id!r}: use {ID_RULE}"
    before.assert_unchanged()


@pytest.mark.parametrize("name", ["..", "a/b", "", "a\x00b", "x" * 77, "_a"], ids=repr)
def test_checkpoint_bad_name_rejected(running: SimulatedServer, name: str) -> None:
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/checkpoints", json={"name": name})

    assert reply.status_code == 400
    assert error_of(reply)["message"] == f"invalid checkpoint name {name!r}: use {ID_RULE}"
    before.assert_unchanged()


def test_restore_bad_checkpoint_name_rejected(running: SimulatedServer) -> None:
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/start", json={"checkpoint": "../x"})

    assert reply.status_code == 400
    assert ID_RULE in error_of(reply)["message"]
    before.assert_unchanged()


def test_duplicate_container_id_rejected(running: SimulatedServer) -> None:
    bundle = running.bundle("other")
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers", json={"id": "web", "bundle": str(bundle)})

    assert reply.status_code == 409
    error = error_of(reply)
    assert error["code"] == "already_exists"
    assert "container web already exists" in error["message"]
    before.assert_unchanged()


def test_duplicate_live_exec_id_rejected(running: SimulatedServer) -> None:
    first = running.request("POST", "/v1/containers/web/exec", json={"exec_id": "probe", "args": ["sleep", "9"]})
    assert first.status_code == 200, first.text
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/exec", json={"exec_id": "probe", "args": ["sleep", "9"]})

    assert reply.status_code == 409
    error = error_of(reply)
    assert error["code"] == "already_exists"
    assert "exec process probe already runs in container web" in error["message"]
    before.assert_unchanged()


def test_exited_exec_id_reusable(running: SimulatedServer) -> None:
    first = running.request("POST", "/v1/containers/web/exec", json={"exec_id": "probe", "args": ["true"]})
    assert first.status_code == 200, first.text
    running.world.exit_process("web", "probe", 0)
    running.world.drain()

    reply = running.request("POST", "/v1/containers/web/exec", json={"exec_id": "probe", "args": ["true"]})

    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{bad", "malformed JSON body"),
        (b"\xff\xfe", "malformed JSON body"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"id": "a", "bundle": "/b", "labels": {"k": "\\ud800"}}', "strings must be valid Unicode"),
        (b'{"id": "a", "bundle": "/b", "start": ' + b"9" * 5000 + b"}", "malformed JSON body"),
    ],
    ids=["syntax", "not-utf8", "array", "deep-nesting", "lone-surrogate", "huge-integer"],
)
def test_create_malformed_json_rejected(server: SimulatedServer, raw: bytes, fragment: str) -> None:
    before = Snapshot(server)

    reply = server.request("POST", "/v1/containers", data=raw, headers={"Content-Type": "application/json"})

    assert reply.status_code == 400
    error = error_of(reply)
    assert error["code"] == "invalid_argument"
    assert fragment in error["message"]
    before.assert_unchanged()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": "a", "bundle": "/b", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"id": 5, "bundle": "/b"}, "id: Input should be a valid string"),
        ({"id": "a", "bundle": "/b", "start": "yes"}, "start: Input should be a valid boolean"),
        ({"id": "a", "bundle": "/b", "labels": {"k": 1}}, "labels.k: Input should be a valid string"),
        ({"bundle": "/b"}, "id: Field required"),
    ],
    ids=["unknown-field", "id-int", "start-string", "label-int", "missing-id"],
)
def test_create_schema_mismatch_rejected(server: SimulatedServer, body: dict[str, Any], fragment: str) -> None:
    before = Snapshot(server)

    reply = server.request("POST", "/v1/containers", json=body)

    assert reply.status_code == 422
    error = error_of(reply)
    assert error["code"] == "invalid_argument"
    assert fragment in error["message"]
    before.assert_unchanged()


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("kill", {"signal": "SIGFOO"}, "invalid signal 'SIGFOO'"),
        ("kill", {"signal": 0}, "invalid signal 0"),
        ("kill", {"signal": 99}, "invalid signal 99"),
        ("kill", {"signal": "\u00b2"}, "invalid signal '\u00b2'"),
        ("kill", {"signal": "9" * 5000}, "invalid signal '999"),
        ("kill", {"signal": 1.5}, "signal"),
        ("update", {"resources": {"memory": {"limit": -5}}}, "memory.limit=-5 is outside"),
        ("update", {"resources": {"memory": {"limit": 1}}}, "memory.limit=1 is outside"),
        ("update", {"resources": {"memory": {"limit": 1 << 60}}}, f"memory.limit={1 << 60} is outside"),
        ("update", {"resources": {"cpu": {"shares": 0}}}, "cpu.shares=0 is outside"),
        ("update", {"resources": {}}, "give at least one of"),
        ("update", {"resources": {"memory": {"limit": "1g"}}}, "Input should be a valid integer"),
        ("exec", {"exec_id": "e1", "args": []}, "args must be a non-empty list"),
        ("exec", {"exec_id": "e1", "args": [""]}, "args must be a non-empty list"),
        ("exec", {"exec_id": "e1", "args": ["true"], "env": ["NOEQUALS"]}, "use KEY=VALUE"),
        ("exec", {"exec_id": "e1", "args": ["true"], "cwd": "relative"}, "must be an absolute path"),
        ("exec", {"exec_id": "init", "args": ["true"]}, "names the container's init process"),
        ("checkpoints", {"name": "c1", "options": ["--evil"]}, "invalid checkpoint option '--evil'"),
    ],
)
def test_bad_command_changes_nothing(running: SimulatedServer, path: str, body: dict[str, Any], fragment: str) -> None:
    version = running.request("GET", "/v1/containers/web").json()["version"]
    before = Snapshot(running)

    reply = running.request("POST", f"/v1/containers/web/{path}", json=body)

    assert 400 <= reply.status_code < 500
    assert fragment in error_of(reply)["message"]
    assert running.request("GET", "/v1/containers/web").json()["version"] == version
    before.assert_unchanged()


def test_command_wrong_state_changes_nothing(running: SimulatedServer) -> None:
    version = running.request("GET", "/v1/containers/web").json()["version"]
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/resume", json={})

    assert reply.status_code == 409
    error = error_of(reply)
    assert error["code"] == "not_allowed"
    assert "cannot resume container web: state is running" in error["message"]
    assert running.request("GET", "/v1/containers/web").json()["version"] == version
    before.assert_unchanged()


def test_missing_checkpoint_delete_not_found(running: SimulatedServer) -> None:
    before = Snapshot(running)

    reply = running.request("DELETE", "/v1/containers/web/checkpoints/nope")

    assert reply.status_code == 404
    assert error_of(reply)["message"] == "checkpoint nope of container web not found; checkpoints: none"
    before.assert_unchanged()


def test_existing_checkpoint_name_rejected(running: SimulatedServer) -> None:
    made = running.request("POST", "/v1/containers/web/checkpoints", json={"name": "cp1", "leave_running": True})
    assert made.status_code == 200, made.text
    before = Snapshot(running)

    reply = running.request("POST", "/v1/containers/web/checkpoints", json={"name": "cp1", "leave_running": True})

    assert reply.status_code == 409
    assert "checkpoint cp1 of container web already exists" in error_of(reply)["message"]
    before.assert_unchanged()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PUT", "/v1/containers", 405), ("GET", "/v1/nothing", 404), ("GET", "/v1/containers/web/wait?timeout=x", 400),
     ("DELETE", "/v1/containers/web?force=maybe", 400), ("GET", "/v1/events?since=-1", 400)],
)
def test_bad_route_or_query_json_error(running: SimulatedServer, method: str, path: str, status: int) -> None:
    reply = running.request(method, path)

    assert reply.status_code == status
    error_of(reply)


def test_error_body_is_json_content(server: SimulatedServer) -> None:
    reply = server.request("POST", "/v1/containers", data=b"{bad")

    assert reply.headers["Content-Type"].startswith("application/json")
    assert json.loads(reply.text)["error"]["code"] == "invalid_argument"
