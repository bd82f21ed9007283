"""Journal stream names: ``container/<id>`` for a container, ``daemon/<host>`` for a daemon."""

from __future__ import annotations

CONTAINER_PREFIX = "container"
DAEMON_PREFIX = "daemon"
_KINDS = (CONTAINER_PREFIX, DAEMON_PREFIX)


def _check_name(kind: str, name: str) -> None:
    # A slash in the id would make parse_stream ambiguous.
    if not name or "/" in name:
        msg = f"invalid {kind} name {name!r}: must be non-empty and contain no '/'"
        raise ValueError(msg)


def container_stream(container_id: str) -> str:
    """Return the stream name of a container's events."""
    _check_name("container", container_id)
    return f"{CONTAINER_PREFIX}/{container_id}"


def daemon_stream(host: str) -> str:
    """Return the stream name of the daemon events of ``host``."""
    _check_name("host", host)
    return f"{DAEMON_PREFIX}/{host}"


def parse_stream(stream: str) -> tuple[str, str]:
    """Split a stream name into its kind (``container`` or ``daemon``) and its id.

    Raises ``ValueError`` naming the stream when it has another form.
    """
    kind, _, name = stream.partition("/")
    if kind not in _KINDS or not name or "/" in name:
        msg = f"invalid stream name {stream!r}: expected container/<id> or daemon/<host>"
        raise ValueError(msg)
    return kind, name
