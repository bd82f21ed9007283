"""Fixtures of the CLI tests: a fake daemon API on a Unix socket in the test's tmp directory."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

# A route returns (status, body). A list body is sent as newline-delimited JSON, and a Chunked
# body is sent with chunked transfer encoding, one chunk per item.
Route = Callable[["Request"], tuple[int, Any]]


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Chunked:
    chunks: list[bytes]


@dataclass
class FakeApi:
    """Replies to each (method, path) from ``routes`` and records every request it got."""

    socket_path: Path
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        self.routes[(method, path)] = lambda request: (status, body)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler_class(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:
            return "unix"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(self.command, path, query, dict(self.headers), json.loads(raw) if raw else None)
            api.requests.append(request)

            route = api.routes.get((self.command, path))
            if route is None:
                status, body = 404, {"error": {"code": "not_found", "message": f"no route {self.command} {path}"}}
            else:
                status, body = route(request)

            if isinstance(body, Chunked):
                self.send_response(status)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in [*body.chunks, b""]:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                return

            if isinstance(body, list):
                payload = b"".join(json.dumps(item).encode() + b"\n" for item in body)
                content_type = "application/x-ndjson"
            elif isinstance(body, bytes):
                payload, content_type = body, "text/plain"
            else:
                payload, content_type = json.dumps(body).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[FakeApi]:
    socket_path = tmp_path / "bosun.sock"
    api = FakeApi(socket_path)
    server = _UnixHTTPServer(str(socket_path), _handler_class(api))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-bosun-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def container(container_id: str = "web", **fields: Any) -> dict[str, Any]:
    """Return an API Container object with plausible defaults."""
    value: dict[str, Any] = {
        "id": container_id,
        "state": "running",
        "version": 4,
        "bundle": f"/srv/bundles/{container_id}",
        "runtime": "runc",
        "labels": {},
        "pid": 4242,
        "exit_status": None,
        "created_at": "2024-05-01T12:00:00.123456Z",
        "started_at": "2024-05-01T12:00:01.000000Z",
        "finished_at": None,
        "processes": [],
        "checkpoints": [],
        "resources": {},
        "pending": [],
        "anomalies": [],
    }
    value.update(fields)
    return value
