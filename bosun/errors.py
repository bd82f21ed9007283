"""Errors the supervisor raises, each with a stable code and HTTP status for the API."""

from __future__ import annotations


class BosunError(Exception):
    """Base class of supervisor errors; ``code`` is stable for scripts, ``status`` is HTTP."""

    code = "internal"
    status = 500


class InvalidArgument(BosunError):
    """Raised for a request that can never succeed as written."""

    code = "invalid_argument"
    status = 400


class NoSuchContainer(BosunError):
    """Raised when no container with the id exists (or it was deleted)."""

    code = "not_found"
    status = 404

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container {container_id} not found")


class NotFound(BosunError):
    """Raised when a process, checkpoint or other object inside a container does not exist."""

    code = "not_found"
    status = 404


class AlreadyExists(BosunError):
    """Raised when a create names an id that is in use."""

    code = "already_exists"
    status = 409


class NotAllowed(BosunError):
    """Raised when the container's state does not allow the command; nothing was journaled."""

    code = "not_allowed"
    status = 409


class VersionMismatch(BosunError):
    """Raised when ``--if-version`` names a version the container has moved past."""

    code = "conflict"
    status = 409

    def __init__(self, container_id: str, expected: int, actual: int) -> None:
        self.container_id = container_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"container {container_id} is at version {actual}, not {expected}: "
            "it changed since it was read; read it again and retry"
        )


class CommandFailed(BosunError):
    """Raised when the runtime or shim failed a command; the failure outcome was journaled."""

    code = "runtime_failed"
    status = 502


class JournalFailed(BosunError):
    """Raised when the journal cannot be written; the message states what the runtime and the journal hold now."""

    code = "journal_unavailable"
    status = 503
