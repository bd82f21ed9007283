"""The daemon's HTTP/JSON API on a Unix socket, served by aiohttp.

Request bodies are validated by pydantic models that forbid unknown fields and coerce nothing,
so malformed JSON, unknown fields and wrong types get a 4xx JSON error before any handler runs.
The same models generate the OpenAPI document served at ``/openapi.json``.

Supervisor calls block (runtime commands, journal commits), so handlers run them in a thread
pool; per-container locks inside the supervisor keep one container's commands in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shlex
import socket
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
from aiohttp import ClientConnectionResetError, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bosun.errors import BosunError, InvalidArgument, NotFound
from bosun.ids import InvalidIdentifier, validate_id
from bosun.validation import InvalidRequest, parse_signal
from bosun.views import container_json, event_json
from fsm.fold import ContainerState
from fsm.rules import ProcessStatus
from fsm.streams import container_stream
from journal import JournalError, parse_time

logger = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_VERSION = "1.0.0"
API_KEY: web.AppKey[Any] = web.AppKey("api", object)
MAX_BODY_BYTES = 1 << 20


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateBody(Body):
    id: str = Field(description="container id: letters and digits with single . _ - between, at most 76")
    bundle: str = Field(description="absolute path of the OCI bundle directory")
    labels: dict[str, str] = Field(default_factory=dict)
    start: bool = False


class VersionedBody(Body):
    if_version: int | None = Field(default=None, description="fail with 409 unless the container is at this version")


class StartBody(VersionedBody):
    checkpoint: str | None = None


class KillBody(VersionedBody):
    signal: str | int = "SIGTERM"
    process: str = "init"
    all: bool = False


class ExecBody(VersionedBody):
    exec_id: str
    args: list[str]
    env: list[str] = Field(default_factory=list)
    cwd: str = "/"


class MemoryResources(Body):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None


class CpuResources(Body):
    shares: int | None = None
    quota: int | None = None
    period: int | None = None


class PidsResources(Body):
    limit: int | None = None


class Resources(Body):
    memory: MemoryResources | None = None
    cpu: CpuResources | None = None
    pids: PidsResources | None = None


class UpdateBody(VersionedBody):
    resources: Resources


class CheckpointBody(VersionedBody):
    name: str
    leave_running: bool = False
    options: list[str] = Field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler_name: str
    summary: str
    body: type[Body] | None = None
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)
    stream: bool = False
    success: int = 200


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/version", "version", "Daemon version, runtime, shim and journal"),
    Route("GET", "/v1/containers", "list_containers", "List containers that are not deleted"),
    Route("POST", "/v1/containers", "create", "Create (and optionally start) a container", CreateBody, success=201),
    Route("GET", "/v1/containers/{id}", "info", "One container's state"),
    Route("DELETE", "/v1/containers/{id}", "delete", "Delete a container",
          query=(("force", "boolean", "kill a live container first"), ("if_version", "integer", "expected version"))),
    Route("POST", "/v1/containers/{id}/start", "start", "Start, or restore from a checkpoint", StartBody),
    Route("POST", "/v1/containers/{id}/pause", "pause", "Freeze a running container", VersionedBody),
    Route("POST", "/v1/containers/{id}/resume", "resume", "Thaw a paused container", VersionedBody),
    Route("POST", "/v1/containers/{id}/kill", "kill", "Signal the init, all, or one exec process", KillBody),
    Route("POST", "/v1/containers/{id}/exec", "exec", "Run an extra process in the container", ExecBody),
    Route("POST", "/v1/containers/{id}/update", "update", "Change cgroup limits", UpdateBody),
    Route("GET", "/v1/containers/{id}/checkpoints", "list_checkpoints", "List checkpoints"),
    Route("POST", "/v1/containers/{id}/checkpoints", "checkpoint", "Checkpoint with CRIU", CheckpointBody),
    Route("DELETE", "/v1/containers/{id}/checkpoints/{name}", "checkpoint_delete", "Delete a checkpoint"),
    Route("GET", "/v1/containers/{id}/wait", "wait", "Wait for the init process to exit",
          query=(("timeout", "number", "seconds to wait; the reply has exit_status null on timeout"),)),
    Route("GET", "/v1/containers/{id}/stats", "stats", "One resource-use sample from the runtime"),
    Route("GET", "/v1/containers/{id}/top", "top", "Processes in the container"),
    Route("GET", "/v1/containers/{id}/logs", "logs", "Container output as newline-delimited JSON",
          query=(("follow", "boolean", "keep streaming until the process exits"), ("since", "string", "RFC 3339 time"),
                 ("exec", "string", "an exec process's output instead of the init's")),
          stream=True),
    Route("GET", "/v1/containers/{id}/history", "history", "Every event of the container's stream"),
    Route("POST", "/v1/containers/{id}/processes/{process}/exit-notice", "exit_notice",
          "Tell the daemon a process exited (conmon's exit command)"),
    Route("GET", "/v1/events", "events", "Journal events as newline-delimited JSON",
          query=(("since", "integer", "only events with a greater seq"), ("follow", "boolean", "keep streaming"),
                 ("id", "string", "only this container's events")),
          stream=True),
    Route("GET", "/v1/audit", "audit", "Belief against reality, open intents, crashed runs, chain verdict"),
)


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of every route from the pydantic models."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Object": {"type": "object"},
    }
    paths: dict[str, Any] = {}
    for route in ROUTES:
        parameters: list[dict[str, Any]] = []
        for name in ("id", "name", "process"):
            if "{" + name + "}" in route.path:
                parameters.append({
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$", "maxLength": 76},
                })
        for name, json_type, description in route.query:
            parameters.append({"name": name, "in": "query", "required": False,
                               "schema": {"type": json_type}, "description": description})
        error_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        media = "application/x-ndjson" if route.stream else "application/json"
        operation: dict[str, Any] = {
            "operationId": route.handler_name,
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                str(route.success): {"description": "success", "content": {media: {"schema": {"$ref": "#/components/schemas/Object"}}}},
                "400": {"description": "invalid request", **error_response},
                "404": {"description": "container or object not found", **error_response},
                "409": {"description": "state does not allow the command, or version conflict", **error_response},
                "422": {"description": "body does not match the schema", **error_response},
            },
        }
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas[name] = definition
            schemas[route.body.__name__] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "bosun daemon API", "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every error to a JSON reply with a stable code; log only the unexpected ones."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, "not_found" if exc.status == 404 else "http_error", exc.reason)
        raise
    except BosunError as exc:
        return error_response(exc.status, exc.code, str(exc))
    except (InvalidIdentifier, InvalidRequest) as exc:
        return error_response(400, "invalid_argument", str(exc))
    except JournalError as exc:
        return error_response(503, "journal_unavailable", str(exc))
    except Exception:
        logger.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; the daemon log has the details")


def peer_credentials(request: web.Request) -> dict[str, Any]:
    """Return the client's uid, gid, pid and command line from the socket's peer credentials."""
    who: dict[str, Any] = {}
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family == socket.AF_UNIX:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        who = {"uid": uid, "gid": gid, "pid": pid}
        try:
            who["cmdline"] = shlex.join(psutil.Process(pid).cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    if "cmdline" not in who and request.headers.get("X-Bosun-Command"):
        # The client states its command line; the kernel's credentials above are preferred.
        who["cmdline"] = request.headers["X-Bosun-Command"][:4096]
    return who


class Api:
    """Request handlers; each turns a request into one supervisor call."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.supervisor = daemon.supervisor
        self.store = daemon.store
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="bosun-api")

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(function, *args, **kwargs))

    @staticmethod
    async def body(request: web.Request, model: type[Body]) -> Any:
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidArgument(f"request body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are allowed")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            # JSONDecodeError, UnicodeDecodeError, and the int() limit on integers of over
            # 4300 digits are all ValueErrors.
            raise InvalidArgument(f"malformed JSON body: {exc}") from None
        except RecursionError:
            raise InvalidArgument("malformed JSON body: arrays or objects are nested too deeply") from None
        if not isinstance(data, dict):
            raise InvalidArgument("request body must be a JSON object")
        try:
            # A JSON escape such as \ud800 decodes to a lone surrogate, which the journal
            # cannot store as UTF-8.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"invalid JSON body: {exc.reason} at {exc.object[exc.start:exc.end]!r}; "
                                  "strings must be valid Unicode") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
            )
            raise _Unprocessable(f"invalid request body: {problems}") from None

    @staticmethod
    def container_id(request: web.Request) -> str:
        return validate_id(request.match_info["id"])

    @staticmethod
    def query_bool(request: web.Request, name: str) -> bool:
        value = request.query.get(name, "false").lower()
        if value in ("1", "true", "yes"):
            return True
        if value in ("0", "false", "no", ""):
            return False
        raise InvalidArgument(f"invalid query parameter {name}={value!r}: use true or false")

    @staticmethod
    def query_int(request: web.Request, name: str) -> int | None:
        value = request.query.get(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise InvalidArgument(f"invalid query parameter {name}={value!r}: use an integer") from None
        if not 0 <= number < 1 << 62:
            raise InvalidArgument(f"invalid query parameter {name}={value!r}: use an integer from 0 to 2^62")
        return number

    # -- handlers ---------------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(self.daemon.describe())

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def list_containers(self, request: web.Request) -> web.Response:
        return web.json_response({"containers": self.supervisor.views()})

    async def create(self, request: web.Request) -> web.Response:
        body = await self.body(request, CreateBody)
        state = await self.call(
            self.supervisor.create,
            body.id,
            body.bundle,
            labels=body.labels,
            start=body.start,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state), status=201)

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(container_json(self.supervisor.get(self.container_id(request))))

    async def delete(self, request: web.Request) -> web.Response:
        state = await self.call(
            self.supervisor.delete,
            self.container_id(request),
            force=self.query_bool(request, "force"),
            if_version=self.query_int(request, "if_version"),
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def start(self, request: web.Request) -> web.Response:
        body = await self.body(request, StartBody)
        state = await self.call(
            self.supervisor.start,
            self.container_id(request),
            checkpoint=body.checkpoint,
            if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def pause(self, request: web.Request) -> web.Response:
        body = await self.body(request, VersionedBody)
        state = await self.call(
            self.supervisor.pause, self.container_id(request), if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def resume(self, request: web.Request) -> web.Response:
        body = await self.body(request, VersionedBody)
        state = await self.call(
            self.supervisor.resume, self.container_id(request), if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def kill(self, request: web.Request) -> web.Response:
        body = await self.body(request, KillBody)
        signal = parse_signal(body.signal)
        state = await self.call(
            self.supervisor.kill,
            self.container_id(request),
            signal,
            process=body.process,
            all_processes=body.all,
            if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def exec(self, request: web.Request) -> web.Response:
        body = await self.body(request, ExecBody)
        state = await self.call(
            self.supervisor.exec,
            self.container_id(request),
            body.exec_id,
            body.args,
            env=body.env,
            cwd=body.cwd,
            if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def update(self, request: web.Request) -> web.Response:
        body = await self.body(request, UpdateBody)
        resources = body.resources.model_dump(exclude_none=True)
        resources = {group: values for group, values in resources.items() if values}
        state = await self.call(
            self.supervisor.update,
            self.container_id(request),
            resources,
            if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def list_checkpoints(self, request: web.Request) -> web.Response:
        state = self.supervisor.get(self.container_id(request))
        return web.json_response({"checkpoints": container_json(state)["checkpoints"]})

    async def checkpoint(self, request: web.Request) -> web.Response:
        body = await self.body(request, CheckpointBody)
        state = await self.call(
            self.supervisor.checkpoint,
            self.container_id(request),
            body.name,
            leave_running=body.leave_running,
            options=body.options,
            if_version=body.if_version,
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def checkpoint_delete(self, request: web.Request) -> web.Response:
        name = validate_id(request.match_info["name"], "checkpoint name")
        state = await self.call(
            self.supervisor.checkpoint_delete,
            self.container_id(request),
            name,
            if_version=self.query_int(request, "if_version"),
            requested_by=peer_credentials(request),
        )
        return web.json_response(container_json(state))

    async def wait(self, request: web.Request) -> web.Response:
        container_id = self.container_id(request)
        raw_timeout = request.query.get("timeout")
        timeout: float | None = None
        if raw_timeout is not None:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                raise InvalidArgument(f"invalid query parameter timeout={raw_timeout!r}: use seconds") from None
            if not 0 <= timeout <= 86400 * 365:
                raise InvalidArgument(f"invalid query parameter timeout={raw_timeout!r}: use 0 to 31536000 seconds")
        state = await self.call(self.supervisor.wait, container_id, timeout)
        if state is None:
            state = self.supervisor.get_any(container_id)
        return web.json_response(container_json(state))

    async def stats(self, request: web.Request) -> web.Response:
        stats = await self.call(self.supervisor.stats, self.container_id(request))
        return web.json_response({"stats": stats})

    async def top(self, request: web.Request) -> web.Response:
        processes = await self.call(self.supervisor.top, self.container_id(request))
        return web.json_response({"processes": processes})

    async def history(self, request: web.Request) -> web.Response:
        container_id = self.container_id(request)
        self.supervisor.get_any(container_id)
        events = await self.call(self.store.read_stream, container_stream(container_id))
        windows = await self.call(self.daemon.recovery_windows)
        return web.json_response({"events": [event_json(event, windows) for event in events]})

    async def exit_notice(self, request: web.Request) -> web.Response:
        container_id = self.container_id(request)
        process = request.match_info["process"]
        if process != "init":
            validate_id(process, "exec id")
        recorded = await self.call(self.supervisor.check_exit, container_id, process)
        return web.json_response({"recorded": recorded})

    async def audit(self, request: web.Request) -> web.Response:
        report = await self.call(self.daemon.audit)
        return web.json_response(report)

    async def logs(self, request: web.Request) -> web.StreamResponse:
        container_id = self.container_id(request)
        follow = self.query_bool(request, "follow")
        since = None
        if request.query.get("since"):
            try:
                since = parse_time(request.query["since"])
            except ValueError:
                raise InvalidArgument(f"invalid query parameter since={request.query['since']!r}: use an RFC 3339 time") from None
        exec_id = request.query.get("exec")
        state = self.supervisor.get_any(container_id)
        if exec_id is None:
            init = state.processes.get("init")
            log_path = (init.ref or {}).get("log_path") if init is not None else None
        else:
            log_path = _exec_log_path(state, validate_id(exec_id, "exec id"))

        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if not log_path:
            await response.write_eof()
            return response

        try:
            await self._stream_log(response, container_id, log_path, since, follow, exec_id)
        except (ConnectionResetError, ClientConnectionResetError):
            logger.debug("container %s: logs follower disconnected", container_id)
            return response
        await response.write_eof()
        return response

    async def _stream_log(
        self, response: web.StreamResponse, container_id: str, log_path: str, since: Any, follow: bool,
        exec_id: str | None,
    ) -> None:
        from adapters.logs import LogParser

        # Read the file incrementally: whole entries only, so a line being written is not cut.
        parser = LogParser()
        position = 0
        buffer = b""
        while True:
            chunk, position = await self.call(_read_from, log_path, position)
            buffer += chunk
            *entries, buffer = buffer.split(b"\n")
            for entry in entries:
                line = parser.feed(entry.decode("utf-8", errors="replace"))
                if line is not None and (since is None or line.time >= since):
                    record = {"time": line.time.isoformat(), "stream": line.stream, "text": line.text}
                    await response.write(json.dumps(record).encode() + b"\n")
            if not follow:
                return
            if exec_id is None:
                exited = await self.call(self.supervisor.wait, container_id, 0.25) is not None
            else:
                await asyncio.sleep(0.25)
                exited = not _exec_running(self.supervisor.get_any(container_id), exec_id)
            if exited:
                follow = False  # one more read picks up what conmon wrote before the exit

    async def events(self, request: web.Request) -> web.StreamResponse:
        since = self.query_int(request, "since") or 0
        follow = self.query_bool(request, "follow")
        streams = None
        if request.query.get("id"):
            streams = [container_stream(validate_id(request.query["id"]))]

        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            await self._stream_events(response, since, follow, streams)
        except (ConnectionResetError, ClientConnectionResetError):
            # The client went away, as a follower stopped with Ctrl-C does; nothing to reply to.
            logger.debug("events follower disconnected")
            return response
        await response.write_eof()
        return response

    async def _stream_events(
        self, response: web.StreamResponse, since: int, follow: bool, streams: list[str] | None
    ) -> None:
        windows = await self.call(self.daemon.recovery_windows)
        after = since
        while True:
            batch = await self.call(self.store.read_all, after_seq=after, limit=500, streams=streams)
            for event in batch:
                await response.write(json.dumps(event_json(event, windows)).encode() + b"\n")
            if batch:
                after = batch[-1].seq
                continue
            if not follow or self.daemon.stopping:
                break
            head = await self.call(self.store.last_seq)
            await self.call(self.store.wait_for_events, max(after, head), 1.0)


class _Unprocessable(BosunError):
    code = "invalid_argument"
    status = 422


def _exec_log_path(state: ContainerState, exec_id: str) -> str:
    """Return the log file of exec process ``exec_id``, running or exited; raise NotFound if none.

    The fold drops an exec process once its exit is folded, but its conmon log stays in
    the exec's directory until the exec id is used again or the container is deleted.
    """
    process = state.processes.get(exec_id)
    if process is not None and (process.ref or {}).get("log_path"):
        return str(process.ref["log_path"])
    if state.state_dir:
        path = Path(state.state_dir) / "exec" / exec_id / "output.log"
        if path.is_file():
            return str(path)
    raise NotFound(f"container {state.id} has no log of exec process {exec_id}; "
                   "the exec id may be wrong or the container deleted")


def _exec_running(state: ContainerState, exec_id: str) -> bool:
    process = state.processes.get(exec_id)
    return process is not None and process.status != ProcessStatus.EXITED


def _read_from(path: str, position: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as handle:
            handle.seek(position)
            chunk = handle.read()
    except FileNotFoundError:
        return b"", position
    return chunk, position + len(chunk)


def build_app(daemon: Any) -> web.Application:
    """Build the aiohttp application serving ``daemon``'s supervisor and journal."""
    api = Api(daemon)
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/openapi.json", api.openapi)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, getattr(api, route.handler_name))
    app[API_KEY] = api

    async def shutdown_executor(app: web.Application) -> None:
        api.executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_executor)
    return app
