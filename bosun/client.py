"""HTTP/1.1 client of the bosun daemon's API over its Unix socket.

Standard library only: this module is on the path of every client command, which must return
in well under 100 ms, so it imports neither aiohttp nor anything from ``journal`` or ``fsm``.
"""

from __future__ import annotations

import errno
import http.client
import json
import shlex
import socket
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# Seconds a request may take before the client gives up, unless the call passes its own.
# Commands such as start and delete --force wait for the runtime, so this is generous.
DEFAULT_TIMEOUT = 120.0

# Longest X-Bosun-Command value sent. aiohttp, which serves the API, rejects header fields
# longer than its max_field_size (8190 bytes by default).
MAX_COMMAND_HEADER = 4096


class _UseDefault:
    """Type of the marker that means "the client's own timeout" (None means no timeout)."""


_USE_DEFAULT = _UseDefault()


class ClientError(Exception):
    """Base class of errors the client raises."""


class DaemonUnavailable(ClientError):
    """Raised when no daemon listens on the socket (missing, refused, or not a socket)."""


class ApiError(ClientError):
    """Raised for a non-2xx reply; ``code`` is the API's stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


class ProtocolError(ClientError):
    """Raised when the reply is not what the API promises (not JSON, cut off)."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` whose transport is an AF_UNIX stream socket at ``socket_path``."""

    def __init__(self, socket_path: Path, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        # The host is only what goes into the Host header; nothing is resolved.
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self.socket_path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def command_header(argv: Sequence[str]) -> str:
    """Quote ``argv`` for the X-Bosun-Command header.

    Header values must be single-line Latin-1, so control and non-ASCII characters are sent as
    backslash escapes, and a value longer than ``MAX_COMMAND_HEADER`` is cut and ends in "...".
    """
    quoted = shlex.join(argv)
    if not quoted.isascii() or not quoted.isprintable():
        quoted = quoted.encode("unicode_escape").decode("ascii")
    if len(quoted) > MAX_COMMAND_HEADER:
        quoted = quoted[: MAX_COMMAND_HEADER - 3] + "..."
    return quoted


def not_running_message(cause: str) -> str:
    """Build the one-line message for a daemon that cannot be reached; ``cause`` names the socket."""
    return (
        f"bosun daemon is not running: {cause} "
        "(start it with 'bosun daemon', or set --socket / BOSUN_SOCKET)"
    )


class Client:
    """A caller of the daemon's API that opens a new connection for each request."""

    def __init__(
        self,
        socket_path: Path,
        *,
        argv: Sequence[str] = (),
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.command = command_header(argv) if argv else ""
        self.timeout = timeout

    # -- transport --------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> UnixHTTPConnection:
        connection = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            connection.connect()
        except FileNotFoundError:
            connection.close()
            cause = f"no socket at {self.socket_path}"
            raise DaemonUnavailable(not_running_message(cause)) from None
        except ConnectionRefusedError:
            connection.close()
            cause = f"connection refused at {self.socket_path}"
            raise DaemonUnavailable(not_running_message(cause)) from None
        except OSError as exc:
            connection.close()
            if exc.errno in (errno.ENOTSOCK, errno.ENOTDIR):
                cause = f"{self.socket_path} is not a socket"
                raise DaemonUnavailable(not_running_message(cause)) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                msg = (
                    f"cannot connect to the bosun daemon at {self.socket_path}: permission denied "
                    "(the socket is owner-only; run as the user that started the daemon)"
                )
                raise ClientError(msg) from None
            msg = f"cannot connect to the bosun daemon at {self.socket_path}: {exc.strerror or exc}"
            raise ClientError(msg) from None
        return connection

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        timeout: float | None,
    ) -> tuple[UnixHTTPConnection, http.client.HTTPResponse]:
        target = path
        if query:
            pairs = {key: _query_value(value) for key, value in query.items() if value is not None}
            if pairs:
                target = f"{path}?{urllib.parse.urlencode(pairs)}"
        headers = {"Accept": "application/json"}
        if self.command:
            headers["X-Bosun-Command"] = self.command
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"

        connection = self._connect(timeout)
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            msg = f"no reply from the bosun daemon at {self.socket_path} within {timeout:g} s to {method} {path}"
            raise ClientError(msg) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            connection.close()
            msg = f"the bosun daemon at {self.socket_path} closed the connection during {method} {path}: {exc}"
            raise ClientError(msg) from None

        if not 200 <= response.status < 300:
            try:
                raw = response.read()
            finally:
                connection.close()
            raise _api_error(response.status, response.reason, raw)
        return connection, response

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        timeout: float | None | _UseDefault = _USE_DEFAULT,
    ) -> Any:
        """Send one request and return the decoded JSON reply.

        Raises ``ApiError`` for a non-2xx reply, ``DaemonUnavailable`` when nothing listens on
        the socket and ``ClientError`` for other transport failures.
        """
        effective = self.timeout if isinstance(timeout, _UseDefault) else timeout
        connection, response = self._send(method, path, body=body, query=query, timeout=effective)
        try:
            raw = response.read()
        except TimeoutError:
            msg = f"no reply from the bosun daemon at {self.socket_path} within {effective:g} s to {method} {path}"
            raise ClientError(msg) from None
        finally:
            connection.close()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            msg = f"invalid reply to {method} {path}: not JSON ({exc})"
            raise ProtocolError(msg) from None

    def stream(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """Send one request and yield each line of its newline-delimited JSON reply.

        The connection has no read timeout, because a followed stream stays quiet while nothing
        happens. The connection is closed when the generator is closed or exhausted.
        """
        connection, response = self._send(method, path, query=query, timeout=None)
        try:
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    msg = f"invalid line in the reply to {method} {path}: not JSON ({exc})"
                    raise ProtocolError(msg) from None
        except http.client.IncompleteRead:
            msg = f"the bosun daemon at {self.socket_path} cut off the reply to {method} {path}"
            raise ProtocolError(msg) from None
        finally:
            connection.close()

    # -- API --------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/v1/version")

    def list_containers(self) -> dict[str, Any]:
        return self.request("GET", "/v1/containers")

    def create(
        self, container_id: str, bundle: str, *, labels: Mapping[str, str] | None = None, start: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id": container_id, "bundle": bundle}
        if labels:
            body["labels"] = dict(labels)
        if start:
            body["start"] = True
        return self.request("POST", "/v1/containers", body=body)

    def get(self, container_id: str) -> dict[str, Any]:
        return self.request("GET", _container_path(container_id))

    def start(
        self, container_id: str, *, checkpoint: str | None = None, if_version: int | None = None
    ) -> dict[str, Any]:
        body = _without_none({"checkpoint": checkpoint, "if_version": if_version})
        return self.request("POST", _container_path(container_id, "start"), body=body)

    def pause(self, container_id: str, *, if_version: int | None = None) -> dict[str, Any]:
        body = _without_none({"if_version": if_version})
        return self.request("POST", _container_path(container_id, "pause"), body=body)

    def resume(self, container_id: str, *, if_version: int | None = None) -> dict[str, Any]:
        body = _without_none({"if_version": if_version})
        return self.request("POST", _container_path(container_id, "resume"), body=body)

    def kill(
        self,
        container_id: str,
        *,
        signal: str | int = "SIGTERM",
        process: str | None = None,
        all_processes: bool = False,
        if_version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"signal": signal}
        if process is not None:
            body["process"] = process
        if all_processes:
            body["all"] = True
        if if_version is not None:
            body["if_version"] = if_version
        return self.request("POST", _container_path(container_id, "kill"), body=body)

    def exec(
        self,
        container_id: str,
        exec_id: str,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        if_version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"exec_id": exec_id, "args": list(args)}
        if env:
            body["env"] = list(env)
        if cwd is not None:
            body["cwd"] = cwd
        if if_version is not None:
            body["if_version"] = if_version
        return self.request("POST", _container_path(container_id, "exec"), body=body)

    def update(
        self, container_id: str, resources: Mapping[str, Any], *, if_version: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"resources": dict(resources)}
        if if_version is not None:
            body["if_version"] = if_version
        return self.request("POST", _container_path(container_id, "update"), body=body)

    def list_checkpoints(self, container_id: str) -> dict[str, Any]:
        return self.request("GET", _container_path(container_id, "checkpoints"))

    def create_checkpoint(
        self,
        container_id: str,
        name: str,
        *,
        leave_running: bool = False,
        options: Sequence[str] = (),
        if_version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if leave_running:
            body["leave_running"] = True
        if options:
            body["options"] = list(options)
        if if_version is not None:
            body["if_version"] = if_version
        return self.request("POST", _container_path(container_id, "checkpoints"), body=body)

    def delete_checkpoint(
        self, container_id: str, name: str, *, if_version: int | None = None
    ) -> dict[str, Any]:
        path = _container_path(container_id, "checkpoints", name)
        return self.request("DELETE", path, query={"if_version": if_version})

    def delete(
        self, container_id: str, *, force: bool = False, if_version: int | None = None
    ) -> dict[str, Any]:
        query = {"force": True if force else None, "if_version": if_version}
        return self.request("DELETE", _container_path(container_id), query=query)

    def wait(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Block until the container's init exit is journaled; ``exit_status`` is None on timeout."""
        # The daemon replies when its own timeout ends, so the socket waits a little longer than that.
        socket_timeout = None if timeout is None else timeout + 30.0
        return self.request(
            "GET", _container_path(container_id, "wait"), query={"timeout": timeout}, timeout=socket_timeout
        )

    def stats(self, container_id: str) -> dict[str, Any]:
        return self.request("GET", _container_path(container_id, "stats"))

    def top(self, container_id: str) -> dict[str, Any]:
        return self.request("GET", _container_path(container_id, "top"))

    def logs(
        self, container_id: str, *, follow: bool = False, since: str | None = None, exec_id: str | None = None
    ) -> Iterator[Any]:
        query = {"follow": True if follow else None, "since": since, "exec": exec_id}
        return self.stream("GET", _container_path(container_id, "logs"), query=query)

    def history(self, container_id: str) -> dict[str, Any]:
        return self.request("GET", _container_path(container_id, "history"))

    def events(
        self, *, since: int | None = None, follow: bool = False, container_id: str | None = None
    ) -> Iterator[Any]:
        query = {"since": since, "follow": True if follow else None, "id": container_id}
        return self.stream("GET", "/v1/events", query=query)

    def audit(self) -> dict[str, Any]:
        return self.request("GET", "/v1/audit")


def _container_path(container_id: str, *parts: str) -> str:
    segments = ["v1", "containers", container_id, *parts]
    return "/" + "/".join(urllib.parse.quote(segment, safe="") for segment in segments)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _api_error(status: int, reason: str, raw: bytes) -> ApiError:
    """Decode an error reply; a reply without the API's error object keeps the HTTP reason."""
    try:
        decoded = json.loads(raw)
        error = decoded["error"]
        return ApiError(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", errors="replace").strip()
        detail = f": {text[:200]}" if text else ""
        return ApiError(status, "http_error", f"HTTP {status} {reason}{detail}")
